#include "planner/compose_export.h"

#include <catch2/catch.hpp>

#include "planner/export_test_support.h"

namespace planner {
namespace {

using Json = nlohmann::ordered_json;
using testing::FakeImageReferences;
using testing::LoadSpec;

ExportedManifests Export(const spec::App& app,
                         std::optional<std::map<std::string, SecretPairs>> secret_values = {}) {
  ComposeExportOptions options;
  options.inputs.image_references = FakeImageReferences(app);
  options.inputs.secret_values = std::move(secret_values);
  options.spec_folder = "../app";
  auto manifests = ExportCompose(app, options);
  INFO((manifests.ok() ? "" : manifests.error().message));
  REQUIRE(manifests.ok());
  REQUIRE(manifests->documents.size() == 1);
  return std::move(manifests).value();
}

TEST_CASE("every example exports to the golden compose file") {
  for (const std::string& spec_path : testing::ExportSpecs()) {
    spec::App app = LoadSpec(spec_path);
    const std::string name = std::filesystem::path(spec_path).parent_path().filename().string();
    INFO(spec_path);
    ComposeExportOptions options;
    options.inputs.image_references = FakeImageReferences(app);
    // As written to tests/export/golden.
    options.spec_folder =
        std::filesystem::path("../../..") / std::filesystem::path(spec_path).parent_path();
    auto manifests = ExportCompose(app, options);
    REQUIRE(manifests.ok());
    testing::CheckGolden(name + ".compose.yaml", testing::GoldenText(*manifests));
  }
}

TEST_CASE(
    "every function, volume and secret is in the compose file, every field mapped or warned") {
  for (const std::string& spec_path : testing::ExportSpecs()) {
    spec::App app = LoadSpec(spec_path);
    ExportedManifests manifests = Export(app);
    const Json& compose = manifests.documents[0];
    INFO(spec_path);
    for (const auto& [name, volume] : app.volumes) CHECK(compose["volumes"].contains(name));
    if (app.budget) CHECK(testing::Warned(manifests.warnings, "budget"));
    for (const auto& [name, function] : app.functions) {
      INFO("function " << name);
      REQUIRE(compose["services"].contains(name));
      const Json& service = compose["services"][name];
      const Json environment = service.value("environment", Json::object());
      const Json deploy = service["deploy"];
      const std::map<std::string, std::function<bool()>> mapped = {
          {"image",
           [&] { return service["image"] == FakeImageReferences(app).at(function.image); }},
          {"command",
           [&] {
             return function.command.empty() ||
                    service["entrypoint"].size() == function.command.size();
           }},
          {"env",
           [&] {
             for (const auto& [key, value] : function.env)
               if (!environment.contains(key)) return false;
             return true;
           }},
          {"cpu", [&] { return deploy["resources"]["limits"].contains("cpus"); }},
          {"memory", [&] { return deploy["resources"]["limits"].contains("memory"); }},
          {"gpu",
           [&] {
             return function.gpu.empty() ||
                    deploy["resources"]["reservations"]["devices"][0]["count"] ==
                        function.gpu.front().count;
           }},
          {"min_containers",
           [&] { return function.web && deploy["replicas"] == function.min_containers; }},
          {"secrets",
           [&] {
             for (const std::string& secret : function.secrets)
               for (const std::string& variable : app.secrets.at(secret).from_env)
                 if (!environment.contains(variable)) return false;
             return true;
           }},
          {"volumes", [&] { return service["volumes"].size() == function.volumes.size(); }},
          {"web.port_env", [&] { return environment[function.web->port_env] == "8080"; }},
      };
      for (const std::string& field : testing::FunctionFields(app, name)) {
        INFO("field " << field);
        auto check = mapped.find(field);
        bool exported = check != mapped.end() && check->second();
        CHECK((exported || testing::Warned(manifests.warnings, "functions." + name + "." + field)));
      }
    }
  }
}

TEST_CASE("GPUs are device reservations, job functions a profile, volumes named volumes") {
  spec::App app = LoadSpec("tests/export/everything/app.yaml");
  ExportedManifests manifests = Export(app);
  const Json& services = manifests.documents[0]["services"];
  const Json& api = services["api"];
  CHECK(
      api["deploy"]["resources"]["reservations"]["devices"] ==
      Json::array({{{"driver", "nvidia"}, {"count", 2}, {"capabilities", Json::array({"gpu"})}}}));
  CHECK(api["deploy"]["resources"]["limits"]["memory"] == "24g");
  CHECK(api["deploy"]["replicas"] == 1);
  CHECK(api["ports"] == Json::array({{{"target", 8080}}}));
  CHECK(api["volumes"] == Json::array({"cache:/cache", "weights:/weights"}));
  CHECK(services["batch"]["profiles"] == Json::array({"jobs"}));
  CHECK(services["batch"]["restart"] == "no");
  CHECK(testing::Warned(manifests.warnings, "functions.nightly.schedule"));
  CHECK(testing::Warned(manifests.warnings, "functions.api.gpu"));
}

TEST_CASE("secrets come from the host's environment or env_file, values only when given") {
  spec::App app = LoadSpec("tests/export/everything/app.yaml");
  const Json references = Export(app).documents[0]["services"]["api"];
  CHECK(references["environment"]["HF_TOKEN"] == "${HF_TOKEN:?secret hf needs HF_TOKEN set}");
  CHECK(references["env_file"] == Json::array({"../app/db.env"}));
  // A "$" of the spec's own values and command is literal.
  CHECK(references["environment"]["PRICE"] == "$$5");
  CHECK(references["entrypoint"][3] == "$$HTTP_PORT");

  const Json values =
      Export(app, std::map<std::string, SecretPairs>{{"hf", {{"HF_TOKEN", "hf_$abc"}}},
                                                     {"db", {{"DB_USER", "ana"}}}})
          .documents[0]["services"]["api"];
  CHECK(values["environment"]["HF_TOKEN"] == "hf_$$abc");
  CHECK(values["environment"]["DB_USER"] == "ana");
  CHECK_FALSE(values.contains("env_file"));
}

}  // namespace
}  // namespace planner
