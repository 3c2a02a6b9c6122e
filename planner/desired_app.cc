#include "planner/desired_app.h"

#include <set>

#include "core/function_modes.h"
#include "planner/cost_estimate.h"
#include "spec/canonical.h"

namespace planner {
namespace {

using nlohmann::json;

// The share of max_inputs a web function's autoscaler aims at: target_inputs of
// max_inputs, all of them when the spec does not say.
double TargetUtilisation(const spec::Function& function) {
  if (!function.target_inputs) return 1.0;
  return static_cast<double>(*function.target_inputs) / function.max_inputs;
}

json FunctionDocument(const spec::Function& function, const json& image, const Replica& replica) {
  json document = {{"image", image},
                   {"command", function.command},
                   {"env", function.env},
                   {"cpu", function.cpu},
                   {"memory_bytes", function.memory},
                   {"timeout_ms", function.timeout.count()},
                   {"retries", function.retries.max},
                   {"retry_backoff_ms", function.retries.backoff.count()},
                   {"min_containers", replica.min_containers},
                   {"max_containers", replica.max_containers},
                   {"buffer_containers", function.buffer_containers},
                   {"scaledown_window_ms", function.scaledown_window.count()},
                   {"max_inputs", function.max_inputs},
                   {"target_utilisation", TargetUtilisation(function)},
                   {"secrets", function.secrets},
                   {"volumes", function.volumes}};
  if (function.web) {
    document["web"] = {{"port_env", function.web->port_env},
                       {"health_path", function.web->health_path},
                       {"auth", core::WebAuthName(function.web->auth)},
                       {"queue_timeout_ms", function.web->queue_timeout.count()},
                       {"max_queued", function.web->max_queued},
                       {"startup_timeout_ms", function.web->startup_timeout.count()}};
  }
  if (function.schedule && replica.owns_schedule) {
    json schedule = {{"overlap", core::OverlapName(function.schedule->overlap)},
                     {"catch_up", function.schedule->catch_up}};
    if (function.schedule->every) {
      schedule["every_ms"] = function.schedule->every->count();
    } else {
      schedule["cron"] = function.schedule->cron;
      schedule["timezone"] = function.schedule->timezone;
    }
    document["schedule"] = std::move(schedule);
  }
  if (!replica.gpu_type.empty())
    document["gpu"] = {{"type", replica.gpu_type}, {"count", replica.gpu_count}};
  return document;
}

}  // namespace

std::map<std::string, json> AppDocuments(const AppDocumentInputs& inputs) {
  struct AgentPart {
    json functions = json::object();
    std::set<std::string> secrets;
    std::set<std::string> volumes;
    bool needs_key = false;
  };
  std::map<std::string, AgentPart> parts;
  for (const auto& [name, replicas] : inputs.placement->functions) {
    auto function = inputs.app->functions.find(name);
    if (function == inputs.app->functions.end()) continue;
    const spec::Function& spec_function = function->second;
    auto digest = inputs.image_digests.find(spec_function.image);
    json image = {{"digest", digest == inputs.image_digests.end() ? "" : digest->second}};
    if (auto reference = inputs.image_references.find(spec_function.image);
        reference != inputs.image_references.end())
      image["reference"] = reference->second;
    for (const Replica& replica : replicas) {
      AgentPart& part = parts[replica.agent];
      part.functions[name] = FunctionDocument(spec_function, image, replica);
      part.secrets.insert(spec_function.secrets.begin(), spec_function.secrets.end());
      for (const auto& [path, volume] : spec_function.volumes) part.volumes.insert(volume);
      if (spec_function.web && spec_function.web->auth == core::WebAuth::kKey)
        part.needs_key = true;
    }
  }
  std::map<std::string, json> documents;
  for (auto& [agent, part] : parts) {
    json secrets = json::object();
    for (const std::string& secret : part.secrets) {
      auto values = inputs.secrets->find(secret);
      secrets[secret] = values == inputs.secrets->end() ? json::object() : json(values->second);
    }
    json document = {
        {"functions", std::move(part.functions)},
        {"secrets", std::move(secrets)},
        {"volumes", std::vector<std::string>(part.volumes.begin(), part.volumes.end())}};
    if (part.needs_key && !inputs.web_key_sha256.empty())
      document["web_key_sha256"] = inputs.web_key_sha256;
    documents.emplace(agent, std::move(document));
  }
  // Each agent enforces its share of the budget, in place: no container restarts for it.
  for (const AgentBudget& part : inputs.budget)
    if (auto document = documents.find(part.agent); document != documents.end())
      document->second["budget"] = spec::BudgetToJson(part.budget);
  return documents;
}

json HashSecretValues(json document, std::string_view key) {
  if (!document.is_object() || !document.contains("secrets")) return document;
  for (auto& [secret, pairs] : document["secrets"].items()) {
    for (auto& [name, value] : pairs.items()) {
      if (value.is_string()) value = SecretValueHash(key, secret, name, value.get<std::string>());
    }
  }
  return document;
}

}  // namespace planner
