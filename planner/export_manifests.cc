#include "planner/export_manifests.h"

#include <yaml-cpp/yaml.h>

#include <regex>

#include "core/canonical_json.h"
#include "core/quantity.h"

namespace planner {
namespace {

using Json = nlohmann::ordered_json;

// Plain scalars that YAML 1.1 or 1.2 readers (kubectl's, Python's) would
// not read as a string.
bool NeedsQuotes(const std::string& text) {
  static const std::regex kNotString(
      R"(|~|null|Null|NULL|true|True|TRUE|false|False|FALSE|yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF|y|Y|n|N|)"
      R"([-+]?[0-9][0-9_]*(\.[0-9_]*)?([eE][-+]?[0-9]+)?|[-+]?\.[0-9]+([eE][-+]?[0-9]+)?|)"
      R"(0x[0-9a-fA-F]+|0o[0-7]+|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)|[0-9]+(:[0-5]?[0-9])+)");
  return std::regex_match(text, kNotString);
}

void Emit(YAML::Emitter& out, const Json& value) {
  switch (value.type()) {
    case Json::value_t::object:
      out << YAML::BeginMap;
      for (const auto& [key, member] : value.items()) {
        out << YAML::Key << key << YAML::Value;
        Emit(out, member);
      }
      out << YAML::EndMap;
      break;
    case Json::value_t::array:
      out << YAML::BeginSeq;
      for (const Json& item : value) Emit(out, item);
      out << YAML::EndSeq;
      break;
    case Json::value_t::string: {
      const auto& text = value.get_ref<const std::string&>();
      if (NeedsQuotes(text)) out << YAML::DoubleQuoted;
      out << text;
      break;
    }
    case Json::value_t::null:
      out << YAML::Null;
      break;
    default:  // booleans and numbers: their JSON text is their YAML text
      out << value.dump();
  }
}

}  // namespace

std::string ManifestYaml(const Json& document) {
  YAML::Emitter out;
  out.SetIndent(2);
  out.SetSeqFormat(YAML::Block);
  Emit(out, document);
  return std::string(out.c_str()) + "\n";
}

std::string ManifestStream(const std::vector<Json>& documents) {
  std::string stream;
  for (const Json& document : documents) {
    if (!stream.empty()) stream += "---\n";
    stream += ManifestYaml(document);
  }
  return stream;
}

std::vector<std::string> UnexportableFieldWarnings(const spec::App& app) {
  std::vector<std::string> warnings;
  if (app.budget) {
    std::string limits;
    // Whole amounts as integers: "40", not "40.0".
    if (app.budget->daily_usd)
      limits += " daily_usd " + core::CanonicalJson(*app.budget->daily_usd);
    if (app.budget->monthly_usd)
      limits += " monthly_usd " + core::CanonicalJson(*app.budget->monthly_usd);
    warnings.push_back("budget:" + limits +
                       ": the target has no spending cap and nothing meters usage; set a quota or "
                       "a billing alert there");
  }
  const spec::Web default_web;
  const spec::Retries default_retries;
  for (const auto& [name, function] : app.functions) {
    const std::string path = "functions." + name + ".";
    if (function.web) {
      const spec::Web& web = *function.web;
      if (web.auth != default_web.auth)
        warnings.push_back(path + "web.auth: " + core::WebAuthName(web.auth) +
                           " is gantry's router's check; the endpoint is exported without "
                           "authentication: put an authenticating proxy or gateway in front");
      if (web.queue_timeout != default_web.queue_timeout)
        warnings.push_back(path + "web.queue_timeout: " + core::FormatDuration(web.queue_timeout) +
                           " is not exported: the target's ingress decides how long a request "
                           "waits");
      if (web.max_queued != default_web.max_queued)
        warnings.push_back(path + "web.max_queued: " + std::to_string(web.max_queued) +
                           " is not exported: the target's ingress decides how many requests wait");
    } else if (function.retries.backoff != default_retries.backoff) {
      warnings.push_back(path +
                         "retries.backoff: " + core::FormatDuration(function.retries.backoff) +
                         " is not exported: the target retries with its own backoff");
    }
    if (function.buffer_containers != 0)
      warnings.push_back(path + "buffer_containers: " + std::to_string(function.buffer_containers) +
                         " is not exported: the target keeps no idle containers beyond the "
                         "minimum");
  }
  return warnings;
}

std::string GoDuration(std::chrono::milliseconds duration) {
  if (duration.count() % 1000 == 0) return std::to_string(duration.count() / 1000) + "s";
  return std::to_string(duration.count()) + "ms";
}

long long WholeSeconds(std::chrono::milliseconds duration) {
  return (duration.count() + 999) / 1000;
}

bool IsExportedManifestOf(const std::string& text, const std::string& app) {
  try {
    YAML::Node labels = YAML::Load(text)["metadata"]["labels"];
    return labels.IsMap() &&
           labels["app.kubernetes.io/managed-by"].as<std::string>("") == "gantry" &&
           labels["app.kubernetes.io/name"].as<std::string>("") == app;
  } catch (const YAML::Exception&) {
    return false;
  }
}

}  // namespace planner
