#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "planner/cost_estimate.h"
#include "planner/placement.h"
#include "planner/secret_values.h"
#include "spec/app.h"

namespace planner {

/// What the planner makes of an app for the agents: for each agent that the
/// placement uses, the app's member of that agent's desired state
/// (schemas/desired_state.schema.json, `apps.APP`) exactly as the agent
/// writes it back in GET /v1/desired, so the two compare as JSON.
///
/// An agent gets only what its functions use: their secrets, volumes and
/// the app key's hash; a schedule goes only to the agent that owns it.
struct AppDocumentInputs {
  const spec::App* app = nullptr;
  std::map<std::string, std::string> image_digests;  // image name -> manifest digest
  /// Image name -> where agents pull it from ("REGISTRY/NAME@sha256:…"); an
  /// image without one must be in the agents' store already.
  std::map<std::string, std::string> image_references;
  const Placement* placement = nullptr;
  const std::map<std::string, SecretPairs>* secrets = nullptr;  // values, or hashes
  std::string web_key_sha256;  // hex sha256 of the app key ("" when no function needs one)
  /// Each agent's part of the app's budget (CostEstimate::budget); empty without one.
  std::vector<AgentBudget> budget;
};

/// Agent name -> the app document for it.
std::map<std::string, nlohmann::json> AppDocuments(const AppDocumentInputs& inputs);

/// `document` with every secret value replaced by its SecretValueHash keyed
/// with `key` (the agent's token): how plans and state hold what was pushed.
nlohmann::json HashSecretValues(nlohmann::json document, std::string_view key);

}  // namespace planner
