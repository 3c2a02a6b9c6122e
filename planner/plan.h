#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "planner/cost_estimate.h"
#include "planner/deploy_state.h"
#include "planner/placement.h"
#include "planner/secret_values.h"
#include "spec/app.h"

namespace planner {

/// What a plan does to one resource, in Terraform's words.
enum class Action { kNoOp, kCreate, kUpdate, kReplace, kDelete };

/// "no-op", "create", "update", "replace", "delete": as schemas/plan.schema.json spells them.
const char* ActionName(Action action);

/// One attribute of a resource before and after (null where it has none).
/// A sensitive one (a secret value) holds hashes, shown as "(sensitive)".
struct AttributeChange {
  std::string attribute;  // dotted path: "image.digest", "web.auth", "placement.gpu-a"
  nlohmann::json before;
  nlohmann::json after;
  bool sensitive = false;
  bool forces_replacement = false;
};

/// One resource of the app and what the plan does to it: an `image`,
/// `function`, `schedule`, `secret`, `volume` or the `budget`. Creates list
/// every attribute, updates and replacements the changed ones, deletes
/// every attribute they had.
struct ResourceChange {
  std::string type;
  std::string name;  // "" for the budget, which is one per app
  Action action = Action::kNoOp;
  std::vector<AttributeChange> changes;
  /// The agents it is on before or after: apply reports it failed when one of them failed.
  std::vector<std::string> agents;

  std::string Address() const;  // "function.echo", "budget"
};

/// What apply does on one agent: make `after` the app's document there (its
/// secret values hashed; apply puts the values back and checks them), or
/// remove the app when `after` is null, then delete the files of volumes the
/// app no longer has anywhere.
struct AgentChange {
  std::string agent;
  std::string url;
  /// sha256 of the app document the agent reported when the plan was made
  /// ("" when it had none): a saved plan is stale once this differs.
  std::string before_digest;
  nlohmann::json after;
  std::vector<std::string> delete_volumes;
  /// False when the agent already runs `after` and only the state records
  /// something else: apply records it without pushing.
  bool push = true;
};

/// A plan: the difference between the spec and what the agents run, as
/// resource changes for people and agent changes for apply. Saved with
/// `gantry plan --out` (schemas/plan.schema.json) and applied exactly by
/// `gantry apply PLAN`, which refuses it once the state moved on.
struct Plan {
  static constexpr int kFormatVersion = 1;

  std::string app;
  std::string source;  // the spec file, absolute: apply reads its secrets again
  bool destroy = false;
  std::string lineage;  // of the state the plan was made against; "" before the first apply
  std::int64_t serial = 0;
  std::map<std::string, std::string> images;  // image name -> manifest digest
  nlohmann::json budget;                      // canonical budget, null for none
  Placement placement;
  CostEstimate cost;
  std::vector<ResourceChange> resources;  // every resource, no-ops included, by address
  /// What changed on the agents since the last apply, found by refreshing:
  /// before = what gantry applied, after = what the agent reports.
  std::vector<ResourceChange> drift;
  std::vector<AgentChange> agents;  // only agents with something to do

  struct Summary {
    int add = 0;
    int change = 0;
    int destroy = 0;
  };
  /// Terraform's counts: a replacement is one add and one destroy.
  Summary Count() const;
  /// Whether apply would change anything on an agent or a resource (it may
  /// still have state to record: `agents` with `push` false).
  bool HasChanges() const;

  nlohmann::json ToJson() const;
  /// Reads a saved plan strictly (kInvalidArgument naming the member). The
  /// cost estimate is not read back: apply does not need it.
  static core::Result<Plan> FromJson(const nlohmann::json& document);
};

/// What the plan knows of one agent after refreshing it.
struct AgentView {
  std::string name;
  std::string url;
  std::string token;         // keys the secret value hashes; never written anywhere
  nlohmann::json reported;   // the app's document in the agent's desired state, null for none
  AgentInventory inventory;  // for placement
};

/// Everything a plan is made from; MakePlan does no I/O, so a benchmark can
/// plan 10,000 functions over 100 made-up agents.
struct PlanInputs {
  const spec::App* app = nullptr;  // the spec (for destroy only its name and volumes are used)
  bool destroy = false;
  std::map<std::string, std::string> image_digests;
  std::map<std::string, std::string> image_references;  // pushed images: where agents pull them
  std::map<std::string, SecretPairs> secrets;           // values, read at plan time
  std::string web_key_sha256;
  std::vector<AgentView> agents;     // every agent that may be used, by name
  std::optional<DeployState> state;  // nullopt before the first apply
  RateCard rates;
};

/// Where the app's functions go: Place over the agents' inventories,
/// keeping the state's placement where it still fits; kUnavailable, as in
/// MakePlan, when the state names an agent not among `agents`. MakePlan
/// starts with it; it needs no images, so a caller can run it before
/// building them and stop a plan no agent can run before anything is built.
core::Result<Placement> PlaceApp(const PlanInputs& inputs);

/// Places the app, builds each agent's document, refreshes the state with
/// what the agents report, and diffs. Fails (kConflict) when a function fits
/// nowhere, and (kUnavailable) when the state names an agent that is not
/// among `agents`: a plan never forgets what runs somewhere.
core::Result<Plan> MakePlan(const PlanInputs& inputs);

/// The plan for people, Terraform-style: each changed resource with its
/// attribute diffs (`+` create, `~` update, `-/+` replace, `-` delete; green,
/// yellow and red when `color`), what drifted, the placement, the cost
/// estimate and its warnings, and the summary line
/// "Plan: 2 to add, 1 to change, 0 to destroy." (or "No changes.").
std::string RenderPlan(const Plan& plan, bool color);

}  // namespace planner
