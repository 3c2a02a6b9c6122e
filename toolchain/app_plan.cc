#include "toolchain/app_plan.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include "core/gantry_home.h"
#include "core/sha256.h"
#include "planner/refresh.h"
#include "spec/loader.h"
#include "toolchain/app_images.h"

namespace toolchain {

namespace fs = std::filesystem;
namespace {

// The hex sha256 of the app key callers of `web.auth: key` functions send,
// from GANTRY_APP_KEY; "" when no function needs one.
core::Result<std::string> WebKeySha256(const spec::App& app) {
  bool needed = false;
  for (const auto& [name, function] : app.functions)
    needed = needed || (function.web && function.web->auth == core::WebAuth::kKey);
  if (!needed) return std::string();
  const char* key = std::getenv("GANTRY_APP_KEY");
  if (key == nullptr || *key == '\0') {
    return core::Error{core::ErrorCode::kNotFound,
                       "app " + app.name +
                           " has web functions with auth: key; set GANTRY_APP_KEY to the key "
                           "their callers will send",
                       {}};
  }
  return core::Sha256Digest(key).substr(7);  // without "sha256:"
}

}  // namespace

void AddPlanOptions(CLI::App* verb, PlanCommand* command) {
  verb->add_option("FILE", command->file, "Spec file (.yaml, .yml or .lua)")->required();
  verb->add_option("--state", command->state,
                   "State file (default: .gantry/state/APP.json beside the spec)");
  verb->add_option("--store", command->store,
                   "Content store to build images into (default: $GANTRY_HOME/store)");
  verb->add_option("--push-to", command->push_to,
                   "Push the images to REGISTRY/NAMESPACE for the agents to pull (by digest), "
                   "instead of their reading the store they were started with");
  verb->add_flag("--insecure", command->insecure,
                 "Plain HTTP to the --push-to registry (always so for loopback ones)");
  verb->add_option("--forget-agent", command->forget_agents,
                   "Stop tracking what an agent gone for good ran of the app (repeatable); its "
                   "functions are placed elsewhere");
  verb->add_option("--agent", command->agents,
                   "Use only this registered agent (repeatable; default: all of them)");
  verb->add_flag("-q,--quiet", command->quiet, "No build progress");
  verb->add_option("--lock-timeout", command->lock_timeout_seconds,
                   "Seconds apply and destroy wait for another one's state lock (default 0)");
}

bool IsSpecFile(const std::string& file) {
  std::string extension = std::filesystem::path(file).extension().string();
  return extension == ".yaml" || extension == ".yml" || extension == ".lua";
}

bool ColorOutput() {
  return isatty(STDOUT_FILENO) == 1 && std::getenv("NO_COLOR") == nullptr;
}

std::filesystem::path StatePath(const std::string& option, const std::filesystem::path& spec_file,
                                const std::string& app) {
  return option.empty() ? planner::DefaultStatePath(spec_file, app) : std::filesystem::path(option);
}

fs::path UpLockPath(const fs::path& state_path) {
  return state_path.string() + ".up";
}

core::Result<planner::Fleet> RegisteredAgents(const std::vector<std::string>& names) {
  auto fleet = planner::Fleet::Load(planner::Fleet::DefaultFile());
  if (!fleet) return fleet.error();
  return SelectAgents(std::move(*fleet), names);
}

core::Result<planner::Fleet> SelectAgents(planner::Fleet fleet,
                                          const std::vector<std::string>& names) {
  if (names.empty()) return fleet;
  for (const std::string& name : names) {
    if (!fleet.Find(name)) {
      return core::Error{core::ErrorCode::kNotFound,
                         "no agent named " + name + " is registered (gantry agents ls)",
                         {}};
    }
  }
  std::vector<std::string> others;
  for (const planner::AgentEntry& agent : fleet.agents())
    if (std::find(names.begin(), names.end(), agent.name) == names.end())
      others.push_back(agent.name);
  for (const std::string& name : others) {
    if (auto removed = fleet.Remove(name); !removed.ok()) return removed.error();
  }
  return fleet;
}

core::Result<planner::StateLock> LockState(const PlanCommand& command,
                                           const std::filesystem::path& path,
                                           const char* operation) {
  return planner::StateLock::Acquire(
      path, operation,
      std::chrono::milliseconds(static_cast<long long>(command.lock_timeout_seconds * 1000)));
}

core::Result<PreparedPlan, std::vector<core::Error>> PrepareAppPlan(const PlanCommand& command,
                                                                    bool destroy,
                                                                    const char* lock_operation) {
  using Errors = std::vector<core::Error>;
  auto app = command.app ? core::Result<spec::App, spec::Diagnostics>(*command.app)
                         : spec::Load(command.file);
  if (!app) return app.error();
  PreparedPlan prepared{std::move(*app), {}, {}, {}, {}, {}, {}, {}};
  const spec::App& spec_app = prepared.app;
  prepared.state_path = StatePath(command.state, command.file, spec_app.name);
  if (lock_operation) {
    auto lock = LockState(command, prepared.state_path, lock_operation);
    if (!lock) return Errors{lock.error()};
    prepared.lock = std::move(*lock);
    // A gantry up serving the app would remove it when it stops; one that
    // died left a lock file nobody holds, and the app is the apply's now.
    const fs::path up_lock = UpLockPath(prepared.state_path);
    if (!command.from_up && fs::exists(up_lock.string() + ".lock")) {
      auto up = planner::StateLock::Acquire(up_lock, lock_operation, std::chrono::milliseconds(0));
      if (!up) {
        return Errors{{core::ErrorCode::kConflict,
                       "app " + spec_app.name + " is served by gantry up (" + up.error().message +
                           "): stop it (Ctrl-C) first",
                       {}}};
      }
      std::error_code error;
      fs::remove(up_lock.string() + ".lock", error);
    }
  }
  auto state = planner::ReadState(prepared.state_path);
  if (!state) return Errors{state.error()};
  prepared.state = std::move(*state);
  for (const std::string& agent : command.forget_agents) {
    if (!prepared.state || prepared.state->agents.erase(agent) == 0) {
      return Errors{core::Error{core::ErrorCode::kNotFound,
                                "--forget-agent " + agent + ": the state of app " + spec_app.name +
                                    " records nothing on it",
                                {}}};
    }
    prepared.warnings.push_back("forgetting agent " + agent + ": whatever it still runs of app " +
                                spec_app.name + " is no longer managed by gantry");
  }
  auto fleet = command.fleet ? core::Result<planner::Fleet>(*command.fleet)
                             : planner::Fleet::Load(planner::Fleet::DefaultFile());
  if (!fleet) return Errors{fleet.error()};
  auto selected = SelectAgents(std::move(*fleet), command.agents);
  if (!selected) return Errors{selected.error()};
  prepared.fleet = std::move(*selected);
  if (prepared.fleet.agents().empty()) {
    return Errors{core::Error{core::ErrorCode::kNotFound,
                              "no agents registered: add one with gantry agents add NAME URL "
                              "--token-file FILE",
                              {}}};
  }

  planner::PlanInputs inputs;
  inputs.app = &spec_app;
  inputs.destroy = destroy;
  inputs.state = prepared.state;
  auto refreshed = planner::RefreshAgents(prepared.fleet, spec_app.name, prepared.state);
  if (!refreshed) return Errors{refreshed.error()};
  for (const planner::AgentView& view : refreshed->agents) {
    if (std::find(command.forget_agents.begin(), command.forget_agents.end(), view.name) !=
        command.forget_agents.end()) {
      return Errors{core::Error{core::ErrorCode::kConflict,
                                "--forget-agent " + view.name +
                                    ": the agent answers; plan without it with --agent, or "
                                    "unregister it (gantry agents rm) first",
                                {}}};
    }
  }
  inputs.agents = std::move(refreshed->agents);
  prepared.warnings.insert(prepared.warnings.end(), refreshed->warnings.begin(),
                           refreshed->warnings.end());
  if (!destroy) {
    // What needs no image comes first: a function no agent can run, or a
    // secret missing from the environment, stops the plan before anything is
    // built (a CUDA image may take an hour).
    if (auto placed = planner::PlaceApp(inputs); !placed) return Errors{placed.error()};
    auto secrets = planner::ReadSecrets(spec_app);
    if (!secrets) return Errors{secrets.error()};
    prepared.secrets = std::move(*secrets);
    inputs.secrets = prepared.secrets;
    auto web_key = WebKeySha256(spec_app);
    if (!web_key) return Errors{web_key.error()};
    inputs.web_key_sha256 = std::move(*web_key);
    auto rates = planner::RateCard::Load(core::GantryHome() / "rates.yaml");
    if (!rates) return Errors{rates.error()};
    inputs.rates = std::move(*rates);

    ImageBuildOptions build;
    build.store = core::StoreOrDefault(command.store);
    build.quiet = command.quiet;
    auto digests = BuildAppImages(spec_app, build);
    if (!digests) return Errors{digests.error()};
    inputs.image_digests = std::move(*digests);
    if (!command.push_to.empty()) {
      ImagePushOptions push;
      push.store = build.store;
      push.to = command.push_to;
      push.insecure = command.insecure;
      push.quiet = command.quiet;
      auto references = PushAppImages(inputs.image_digests, push);
      if (!references) return Errors{references.error()};
      inputs.image_references = std::move(*references);
    }
  }
  auto plan = planner::MakePlan(inputs);
  if (!plan) return Errors{plan.error()};
  prepared.plan = std::move(*plan);
  return prepared;
}

}  // namespace toolchain
