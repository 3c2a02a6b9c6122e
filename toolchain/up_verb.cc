// gantry up FILE: the app until Ctrl-C, as `modal serve` does: build, plan
// and apply, print the endpoints and the schedules, stream the logs, (with
// --watch) re-apply what an edit changed, and on SIGINT or SIGTERM stop
// every container it started. With no agents registered (or --local) it
// runs on the embedded local agent; otherwise on the registered agents, and
// the app leaves them when it stops.

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <map>
#include <string>
#include <vector>

#include "core/gantry_home.h"
#include "core/wall_clock.h"
#include "planner/agent_client.h"
#include "spec/loader.h"
#include "toolchain/app_apply.h"
#include "toolchain/app_plan.h"
#include "toolchain/exit_code.h"
#include "toolchain/local_agent.h"
#include "toolchain/reporter.h"
#include "toolchain/source_watch.h"
#include "toolchain/stop_signals.h"
#include "toolchain/verbs.h"

namespace toolchain {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct UpCommand {
  std::string file;
  LocalAgentFlags local;
  int port = 7070;
  bool watch = false;
  bool force_local = false;         // --local
  std::vector<std::string> agents;  // --agent: only these registered agents
  std::string push_to;              // --push-to: where agents pull the images from
  bool insecure = false;
  std::string local_option;  // the first option given that only the local agent takes, or ""
};

// Where the app runs: the embedded local agent, or registered agents. Both
// are a fleet the planner applies to and the loop below reads over the
// agents' API, so the two differ only in how they start and stop.
struct UpTarget {
  std::unique_ptr<LocalAgent> local;  // null on registered agents
  planner::Fleet fleet;
  // On registered agents: the app's up lock (UpLockPath), held while this up
  // serves it, so that apply, destroy and another up leave it alone.
  std::optional<planner::StateLock> up_lock;
  fs::path up_lock_file;

  // The apply of `app` to this target, without asking.
  ApplyCommand Apply(const UpCommand& command, const spec::App& app) const {
    ApplyCommand apply;
    apply.plan.file = command.file;
    apply.plan.app = app;
    apply.plan.store = command.local.store;
    apply.plan.quiet = command.local.quiet;
    apply.plan.fleet = fleet;
    apply.plan.push_to = command.push_to;
    apply.plan.insecure = command.insecure;
    apply.plan.from_up = up_lock.has_value();
    if (local) apply.plan.state = local->StatePath(app.name).string();
    apply.yes = true;
    return apply;
  }
};

// An app that `gantry apply` or `deploy` put on the agents is not up's to
// take over, nor to remove when it stops. One that an earlier `gantry up`
// left, killed before it could remove it (its lock file still there, and
// no apply since, which removes it), is.
core::Status CheckNotDeployed(const UpCommand& command, const spec::App& app,
                              const fs::path& state_path, bool left_by_up) {
  auto state = planner::ReadState(state_path);
  if (!state) return state.error();
  if (!*state || (*state)->agents.empty() || left_by_up) return core::Ok{};
  std::string agents;
  for (const auto& [name, record] : (*state)->agents) agents += (agents.empty() ? "" : ", ") + name;
  return core::Error{core::ErrorCode::kConflict,
                     "app " + app.name + " is deployed on " + agents + " (state " +
                         state_path.string() +
                         "): gantry up would replace it and remove it when it stops; gantry "
                         "deploy " +
                         command.file + " updates it, gantry destroy " + command.file +
                         " removes it, --local serves it on this host instead",
                     {}};
}

core::Result<UpTarget> OpenTarget(const UpCommand& command, const spec::App& app) {
  UpTarget target;
  if (!command.force_local) {
    auto registered = RegisteredAgents(command.agents);
    if (!registered) return registered.error();
    target.fleet = std::move(*registered);
  }
  if (!target.fleet.agents().empty()) {
    if (!command.local_option.empty()) {
      return core::Error{core::ErrorCode::kInvalidArgument,
                         command.local_option +
                             " is an option of the embedded local agent, and agents are "
                             "registered: add --local to run there",
                         {}};
    }
    fs::path state_path = planner::DefaultStatePath(command.file, app.name);
    const fs::path up_lock = UpLockPath(state_path);
    target.up_lock_file = up_lock.string() + ".lock";
    const bool left_by_up = fs::exists(target.up_lock_file);
    std::error_code error;
    fs::create_directories(up_lock.parent_path(), error);
    auto locked = planner::StateLock::Acquire(up_lock, "gantry up", std::chrono::milliseconds(0));
    if (!locked) {
      return core::Error{
          core::ErrorCode::kConflict,
          "app " + app.name + " is served by another gantry up (" + locked.error().message + ")",
          {}};
    }
    target.up_lock.emplace(std::move(*locked));
    if (auto checked = CheckNotDeployed(command, app, state_path, left_by_up); !checked.ok()) {
      if (!left_by_up) fs::remove(target.up_lock_file, error);
      return checked.error();
    }
    return target;
  }
  LocalAgent::Options options = command.local.Options(command.port);
  options.dashboard = true;
  auto local = LocalAgent::Start(options);
  if (!local) return local.error();
  target.local = std::move(*local);
  target.fleet = target.local->fleet();
  std::printf("Local agent at %s (token in %s)\n", target.local->url().c_str(),
              target.fleet.agents().front().token_file.c_str());
  return target;
}

// Removes the app from where it ran: the local agent forgets it, registered
// agents get the plan that destroys it. Returns the exit code.
int StopTarget(const UpCommand& command, const spec::App& app, UpTarget& target) {
  if (target.local) {
    target.local->Stop();
    return kExitOk;
  }
  // Nothing to take off when the first apply failed before it changed anything.
  auto state = planner::ReadState(planner::DefaultStatePath(command.file, app.name));
  bool applied = !state || (*state && !(*state)->agents.empty());
  if (applied && PlanAndApply(target.Apply(command, app), true) != kExitOk) {
    ReportErrors({{core::ErrorCode::kUnavailable,
                   "app " + app.name + " stays on the agents: gantry destroy " + command.file +
                       " removes it",
                   {}}});
    return kExitUserError;
  }
  std::error_code error;
  fs::remove(target.up_lock_file, error);
  return kExitOk;
}

// The functions of `app` in an agent's status (GET /v1/status), or {}.
json AppFunctions(const json& status, const std::string& app) {
  if (!status.is_object()) return json::object();
  return status.value("apps", json::object())
      .value(app, json::object())
      .value("functions", json::object());
}

// One agent as the loop reads it: its client and each function's log cursor.
struct WatchedAgent {
  planner::AgentClient client;
  std::map<std::string, std::string> cursors;  // by function
  json status;                                 // the last GET /v1/status, null if it failed
};

// "12:00:01", local time.
std::string ClockTime(std::time_t seconds) {
  std::tm local{};
  localtime_r(&seconds, &local);
  char clock[16];
  std::strftime(clock, sizeof clock, "%H:%M:%S", &local);
  return clock;
}

// "site  http://127.0.0.1:7070/apps/hello/site/  (public)" per web function
// and agent that serves it, "nightly  next 2026-12-02T09:00:00+01:00" (or
// "held: WHY" while its image is not ready) per schedule, as the agents have
// them, and the local agent's dashboard.
void PrintServing(const spec::App& app, const UpTarget& target,
                  const std::vector<WatchedAgent>& agents) {
  bool endpoints = false;
  for (const auto& [name, function] : app.functions) {
    if (!function.web) continue;
    const char* auth = function.web->auth == core::WebAuth::kPublic ? "public"
                       : function.web->auth == core::WebAuth::kToken
                           ? "Authorization: Bearer (the agent token)"
                           : "Authorization: Bearer $GANTRY_APP_KEY";
    for (const WatchedAgent& agent : agents) {
      if (!AppFunctions(agent.status, app.name).contains(name)) continue;
      if (!endpoints) std::printf("\nEndpoints:\n");
      endpoints = true;
      std::printf("  %-12s %s/apps/%s/%s/  (%s)\n", name.c_str(), agent.client.agent().url.c_str(),
                  app.name.c_str(), name.c_str(), auth);
    }
  }
  bool schedules = false;
  for (const auto& [name, function] : app.functions) {
    if (!function.schedule) continue;
    if (!schedules) std::printf("\nSchedules:\n");
    schedules = true;
    std::string when = "not placed";
    for (const WatchedAgent& agent : agents) {
      const json schedule = AppFunctions(agent.status, app.name)
                                .value(name, json::object())
                                .value("schedule", json());
      if (!schedule.is_object()) continue;
      when = planner::ScheduleSummary(schedule);
    }
    std::printf("  %-12s %s\n", name.c_str(), when.c_str());
  }
  if (target.local) {
    std::printf("\nDashboard: %s  (sign in with the token in %s)\n",
                target.local->dashboard_url().c_str(),
                (target.local->agent().data_dir() / "token").c_str());
  }
  std::fflush(stdout);
}

// Asks every agent for its status (null where that fails).
void RefreshStatus(std::vector<WatchedAgent>* agents) {
  for (WatchedAgent& agent : *agents) {
    auto status = agent.client.Status();
    agent.status = status ? std::move(*status) : json();
  }
}

// Prints the log lines each function of `app` wrote on each agent since the
// last read, in time order: "12:00:01 site c-1a2b stdout: text" (the
// function as AGENT/FUNCTION when the app runs on several agents).
void PrintNewLogs(const spec::App& app, std::int64_t since_ms, std::vector<WatchedAgent>* agents) {
  std::vector<std::pair<std::int64_t, std::string>> lines;
  for (WatchedAgent& agent : *agents) {
    for (const auto& [name, function] : app.functions) {
      auto read = agent.client.Logs(app.name, name, since_ms, &agent.cursors[name]);
      if (!read) continue;  // an agent that does not answer: its status says so
      std::string who = agents->size() > 1 ? agent.client.agent().name + "/" + name : name;
      for (const json& line : *read) {
        std::int64_t time_ms = line.value("time_ms", std::int64_t{0});
        std::string source = line.value("container", line.value("call", std::string()));
        lines.emplace_back(time_ms, ClockTime(time_ms / 1000) + " " + who + " " + source + " " +
                                        line.value("stream", "") + ": " + line.value("text", ""));
      }
    }
  }
  std::stable_sort(lines.begin(), lines.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [time_ms, text] : lines) std::printf("%s\n", text.c_str());
  std::fflush(stdout);
}

// Prints "12:00:03 site: 1 container running" when the number of running
// containers of a function (over every agent) changes, and "(scaled to
// zero)" when it drops to none, so that the autoscaler can be watched at work.
void PrintScaling(const spec::App& app, const std::vector<WatchedAgent>& agents,
                  std::map<std::string, int>* running) {
  std::map<std::string, int> now;
  for (const WatchedAgent& agent : agents) {
    if (!agent.status.is_object()) return;  // a count over some agents would mislead
    const json functions = AppFunctions(agent.status, app.name);
    for (const auto& [name, function] : functions.items())
      now[name] += function.value("running_containers", 0);
  }
  for (const auto& [name, count] : now) {
    auto [last, added] = running->emplace(name, 0);
    if (!added && last->second == count) continue;
    if (added && count == 0) continue;
    last->second = count;
    std::printf("%s %s: %d container%s running%s\n", ClockTime(std::time(nullptr)).c_str(),
                name.c_str(), count, count == 1 ? "" : "s", count == 0 ? " (scaled to zero)" : "");
  }
  std::fflush(stdout);
}

// Plans and applies `app` on the target, then prints where it serves;
// whether it was applied.
bool Deploy(const UpCommand& command, const spec::App& app, const UpTarget& target,
            std::vector<WatchedAgent>* agents) {
  if (PlanAndApply(target.Apply(command, app), false) != kExitOk) return false;
  RefreshStatus(agents);
  PrintServing(app, target, *agents);
  return true;
}

// The folders an edit in which is no edit of the app: where gantry itself
// writes (the store, the local agent's data, GANTRY_HOME).
std::vector<fs::path> NotSources(const UpCommand& command, const UpTarget& target) {
  std::vector<fs::path> folders = {core::StoreOrDefault(command.local.store), core::GantryHome()};
  if (target.local) folders.push_back(target.local->agent().data_dir());
  return folders;
}

int RunUp(const UpCommand& command) {
  StopSignals signals;  // before any thread starts
  // A spec that does not load stops here, before an agent is started.
  auto app = spec::Load(command.file);
  if (!app) {
    ReportErrors(app.error());
    return kExitUserError;
  }
  auto target = OpenTarget(command, *app);
  if (!target) {
    ReportErrors({target.error()});
    return kExitUserError;
  }
  std::vector<WatchedAgent> agents;
  for (const planner::AgentEntry& entry : target->fleet.agents()) {
    auto client = planner::AgentClient::Open(entry);
    if (!client) {
      ReportErrors({client.error()});
      return kExitUserError;
    }
    agents.push_back({std::move(*client), {}, json()});
  }
  const std::int64_t since_ms = core::NowMs();
  if (!Deploy(command, *app, *target, &agents)) {
    // What an apply to registered agents did before it failed comes off again.
    return std::max<int>(kExitUserError, StopTarget(command, *app, *target));
  }
  if (auto signal = signals.WaitFor(std::chrono::milliseconds(0)))
    return std::max(kExitSignalled + *signal, StopTarget(command, *app, *target));

  std::optional<SourceWatch> watch;
  if (command.watch)
    watch.emplace(fs::path(command.file).parent_path(), NotSources(command, *target));
  std::printf("\nServing %s; logs follow. Ctrl-C stops it%s.\n", app->name.c_str(),
              command.watch ? ", and an edit of its folder re-applies it" : "");
  std::fflush(stdout);
  std::map<std::string, int> running;
  std::optional<int> signal;
  for (int tick = 0; !(signal = signals.WaitFor(std::chrono::milliseconds(250))); ++tick) {
    if (tick % 2 == 0) PrintNewLogs(*app, since_ms, &agents);
    if (tick % 4 != 0) continue;
    RefreshStatus(&agents);
    PrintScaling(*app, agents, &running);
    if (watch && watch->Changed()) {
      std::printf("\n%s changed: planning again\n", command.file.c_str());
      // A spec that no longer loads or builds leaves the app as it runs.
      auto changed = spec::Load(command.file);
      if (!changed) {
        ReportErrors(changed.error());
      } else if (changed->name != app->name) {
        ReportErrors({{core::ErrorCode::kInvalidArgument,
                       "the app's name changed from " + app->name + " to " + changed->name +
                           ": gantry up keeps serving " + app->name +
                           "; stop it and start it again to serve the new name",
                       {}}});
      } else if (Deploy(command, *changed, *target, &agents)) {
        app = std::move(changed);
      }
    }
  }
  std::printf("\nStopping %s (signal %d): draining and stopping its containers\n",
              app->name.c_str(), *signal);
  std::fflush(stdout);
  int stopped = StopTarget(command, *app, *target);
  PrintNewLogs(*app, since_ms, &agents);
  if (stopped != kExitOk) return stopped;
  std::printf("Stopped.\n");
  return kExitOk;
}

}  // namespace

void AddUpVerb(CLI::App& gantry, int* exit_code) {
  auto command = std::make_shared<UpCommand>();
  CLI::App* verb = gantry.add_subcommand(
      "up",
      "Run an app until Ctrl-C: endpoints, schedules, logs (on the registered agents, or the "
      "embedded local agent when none is registered or with --local)");
  verb->add_option("FILE", command->file, "Spec file (.yaml, .yml or .lua)")->required();
  CLI::Option* port = verb->add_option("--port", command->port,
                                       "Port of the local agent on 127.0.0.1 (0: any free port)")
                          ->capture_default_str();
  std::vector<CLI::Option*> local_only = AddLocalAgentFlags(verb, &command->local);
  CLI::Option* local =
      verb->add_flag("--local", command->force_local,
                     "Run on the embedded local agent even when agents are registered");
  CLI::Option* agent =
      verb->add_option("--agent", command->agents, "Only this registered agent (repeatable)");
  CLI::Option* push_to = verb->add_option(
      "--push-to", command->push_to,
      "REGISTRY/NAMESPACE to push the images to, for registered agents to pull them");
  verb->add_flag("--insecure", command->insecure, "Plain HTTP to that registry");
  verb->add_flag("--watch", command->watch,
                 "Re-plan and apply when a file of the spec's folder changes");
  // --store says where images are built for either; the rest are the local agent's.
  for (CLI::Option* option : {agent, push_to}) {
    option->excludes(local)->excludes(port);
    for (CLI::Option* local_option : local_only)
      if (local_option->get_name() != "--store") option->excludes(local_option);
  }
  local_only.push_back(port);
  verb->callback([command, local_only, exit_code] {
    for (CLI::Option* option : local_only) {
      if (option->count() > 0 && option->get_name() != "--store" && command->local_option.empty())
        command->local_option = option->get_name();
    }
    *exit_code = RunUp(*command);
  });
}

}  // namespace toolchain
