#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "planner/deploy_state.h"
#include "planner/fleet.h"
#include "planner/plan.h"
#include "planner/secret_values.h"

namespace planner {

struct ApplyOptions {
  std::filesystem::path state_path;
  /// Secret values read at apply time: each must hash to what the plan holds.
  std::map<std::string, SecretPairs> secrets;
  /// How long to wait for each agent to run what it was pushed.
  std::chrono::milliseconds converge_timeout{120'000};
  /// Told each step as it happens, one line each ("gpu-a: pushed generation 7").
  std::function<void(const std::string& line)> progress;
};

/// How apply went on one agent.
struct AgentOutcome {
  std::string agent;
  bool ok = false;
  std::string message;  // what was done, or the error
};

/// How apply went for one resource: it failed if any agent it lives on failed.
struct ResourceOutcome {
  std::string address;
  Action action = Action::kNoOp;
  bool ok = true;
  std::string message;  // the failing agent's error, "" when ok
};

struct ApplyResult {
  std::vector<AgentOutcome> agents;
  std::vector<ResourceOutcome> resources;  // changed resources only
  bool ok() const;
};

/// Applies `plan` to the agents of `fleet` and records the outcome in the
/// state at `options.state_path`. The caller holds its StateLock.
///
/// Nothing is pushed unless the whole plan can be applied as it was made:
/// the state must still be the one the plan was made against (lineage and
/// serial), every agent to change must still report the app document it
/// reported then, and every secret value must still hash to what the plan
/// holds; otherwise kConflict ("the plan is stale: …") with nothing changed.
///
/// Then each agent gets its app document (the agent's generation + 1,
/// retried when another apply moved it meanwhile), volumes the app dropped
/// lose their files, and the state is written after every agent, so a
/// failure on one agent leaves what was recorded for the others right and
/// re-running apply converges. Each pushed agent is then watched until its
/// functions run as pushed (no errors; web functions with their warm
/// containers ready) or `converge_timeout` passes.
core::Result<ApplyResult> ApplyPlan(const Plan& plan, const Fleet& fleet,
                                    const std::optional<DeployState>& state,
                                    const ApplyOptions& options);

}  // namespace planner
