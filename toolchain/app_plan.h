#pragma once

#include <CLI/CLI.hpp>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "planner/deploy_state.h"
#include "planner/fleet.h"
#include "planner/plan.h"
#include "planner/secret_values.h"
#include "spec/app.h"

namespace toolchain {

/// The options `gantry plan`, `apply` and `destroy` share.
struct PlanCommand {
  std::string file;                 // the spec
  std::string state;                // --state; default .gantry/state/APP.json beside the spec
  std::string store;                // --store: where images are built
  std::vector<std::string> agents;  // --agent: only these registered agents
  /// --forget-agent: agents gone for good whose part of the app the state
  /// stops tracking (otherwise a plan stops until they can be refreshed).
  std::vector<std::string> forget_agents;
  std::string push_to;    // --push-to REGISTRY/NAMESPACE: agents pull the images from there
  bool insecure = false;  // --insecure: plain HTTP to that registry
  bool quiet = false;
  double lock_timeout_seconds = 0;  // --lock-timeout: how long apply and destroy wait for the lock
  /// The agents to plan for instead of the registered ones: the embedded
  /// local agent of `gantry up` and `gantry run`.
  std::optional<planner::Fleet> fleet;
  /// The spec as the caller loaded it from `file` (`gantry up`, `run`,
  /// `map`): planned as it is, the file not read again, so that what the
  /// caller checked is what is applied even when the file changes meanwhile.
  std::optional<spec::App> app;
  /// Set by `gantry up` on registered agents, which holds the app's up lock
  /// (UpLockPath) itself; apply and destroy otherwise refuse while one does.
  bool from_up = false;
};

/// What a `gantry up` on registered agents holds (planner::StateLock, whose
/// file is this path + ".lock") while it serves the app of `state_path`.
std::filesystem::path UpLockPath(const std::filesystem::path& state_path);

/// Registers the shared options on `verb` (FILE is positional and required).
void AddPlanOptions(CLI::App* verb, PlanCommand* command);

/// A plan and what it was made from.
struct PreparedPlan {
  spec::App app;
  std::filesystem::path state_path;
  std::optional<planner::StateLock>
      lock;  // held by apply and destroy from before the state is read
  std::optional<planner::DeployState> state;
  planner::Fleet fleet;
  std::map<std::string, planner::SecretPairs> secrets;
  planner::Plan plan;
  std::vector<std::string> warnings;  // agents left out
};

/// Loads the spec, builds its images (cached), reads its secrets, refreshes
/// the registered agents and the state, and makes the plan (or, with
/// `destroy`, the plan that removes the app everywhere). With
/// `lock_operation` ("apply", "destroy") the state's lock is taken before the
/// state is read and stays held in the result.
core::Result<PreparedPlan, std::vector<core::Error>> PrepareAppPlan(const PlanCommand& command,
                                                                    bool destroy,
                                                                    const char* lock_operation);

/// Takes the lock of the state at `path` for `operation`, waiting as long
/// as `command` allows.
core::Result<planner::StateLock> LockState(const PlanCommand& command,
                                           const std::filesystem::path& path,
                                           const char* operation);

/// The state file of the app in `spec_file` for `--state` `option`.
std::filesystem::path StatePath(const std::string& option, const std::filesystem::path& spec_file,
                                const std::string& app);

/// Whether `file` names a spec (.yaml, .yml, .lua) rather than a saved plan or an app name.
bool IsSpecFile(const std::string& file);

/// Whether stdout takes colours: a terminal, and NO_COLOR unset.
bool ColorOutput();

/// The fleet with only the agents `names` names (all when empty); an
/// unknown name is kNotFound.
core::Result<planner::Fleet> SelectAgents(planner::Fleet fleet,
                                          const std::vector<std::string>& names);
/// The registered agents ($GANTRY_HOME/agents.json), SelectAgents of them.
core::Result<planner::Fleet> RegisteredAgents(const std::vector<std::string>& names);

}  // namespace toolchain
