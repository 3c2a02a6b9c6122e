#include "planner/export_test_support.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/atomic_file.h"
#include "core/sha256.h"
#include "spec/canonical.h"
#include "spec/loader.h"

namespace planner::testing {

std::vector<std::string> ExportSpecs() {
  std::vector<std::string> specs;
  std::istringstream list(GANTRY_EXPORT_SPECS);
  for (std::string spec; std::getline(list, spec, ',');) specs.push_back(spec);
  return specs;
}

spec::App LoadSpec(const std::string& relative_path) {
  auto app = spec::Load(std::filesystem::path(GANTRY_SOURCE_DIR) / relative_path);
  INFO(relative_path << (app.ok() ? "" : ": " + app.error().front().ToString()));
  REQUIRE(app.ok());
  return std::move(app).value();
}

std::map<std::string, std::string> FakeImageReferences(const spec::App& app) {
  std::map<std::string, std::string> references;
  for (const auto& [name, image] : app.images)
    references[name] = "registry.example.com/team/" + name + "@" + core::Sha256Digest(name);
  return references;
}

std::string GoldenText(const ExportedManifests& manifests) {
  std::string text;
  for (const std::string& warning : manifests.warnings) text += "# warning: " + warning + "\n";
  return text + ManifestStream(manifests.documents);
}

void CheckGolden(const std::string& name, const std::string& text) {
  auto path = std::filesystem::path(GANTRY_SOURCE_DIR) / "tests/export/golden" / name;
  const char* update = std::getenv("GANTRY_UPDATE_GOLDEN");
  if (update != nullptr && std::string(update) == "1") {
    std::filesystem::create_directories(path.parent_path());
    REQUIRE(core::WriteFileAtomically(path, text).ok());
    return;
  }
  auto golden = core::ReadFile(path);
  INFO(path.string() << ": regenerate with GANTRY_UPDATE_GOLDEN=1 after checking the change");
  REQUIRE(golden.ok());
  CHECK(*golden == text);
}

bool Warned(const std::vector<std::string>& warnings, const std::string& path) {
  for (const std::string& warning : warnings) {
    for (std::string field = path; !field.empty();) {
      if (warning.rfind(field + ":", 0) == 0) return true;
      auto dot = field.rfind('.');
      field = dot == std::string::npos ? "" : field.substr(0, dot);
    }
  }
  return false;
}

namespace {

void AddFields(const nlohmann::json& function, std::vector<std::string>* fields) {
  for (const auto& [key, value] : function.items()) {
    if (value.is_object() && key != "env" && key != "volumes") {
      for (const auto& [sub_key, sub_value] : value.items()) fields->push_back(key + "." + sub_key);
    } else {
      fields->push_back(key);
    }
  }
}

// `path` ("web.auth") in a function's canonical JSON; null when absent.
nlohmann::json FieldValue(const nlohmann::json& function, const std::string& path) {
  std::string json_path = "/" + path;
  std::replace(json_path.begin(), json_path.end(), '.', '/');
  nlohmann::json::json_pointer field(json_path);
  return function.contains(field) ? function[field] : nlohmann::json();
}

}  // namespace

std::vector<std::string> FunctionFields(const spec::App& app, const std::string& function) {
  const nlohmann::json canonical = spec::ToCanonicalJson(app)["functions"][function];
  // The same function with every default: no image (always set), and web
  // or a schedule (with neither cron nor period) when it has one.
  spec::App defaults = app;
  const spec::Function& written = app.functions.at(function);
  spec::Function plain;
  plain.name = written.name;
  if (written.web) plain.web = spec::Web{};
  if (written.schedule) plain.schedule = spec::Schedule{};
  defaults.functions[function] = plain;
  const nlohmann::json default_canonical = spec::ToCanonicalJson(defaults)["functions"][function];
  std::vector<std::string> all;
  AddFields(canonical, &all);
  std::vector<std::string> fields;
  for (const std::string& field : all) {
    if (FieldValue(canonical, field) != FieldValue(default_canonical, field))
      fields.push_back(field);
  }
  return fields;
}

std::vector<std::string> AllFunctionFields(const spec::App& app, const std::string& function) {
  std::vector<std::string> fields;
  AddFields(spec::ToCanonicalJson(app)["functions"][function], &fields);
  return fields;
}

}  // namespace planner::testing
