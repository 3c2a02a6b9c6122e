// gantry up FILE: the app on the embedded local agent until Ctrl-C, as
// `modal serve` does: build, plan and apply, print the endpoints and the
// schedules, stream the logs, (with --watch) re-apply what an edit changed,
// and on SIGINT or SIGTERM stop every container it started.

#include <cstdio>
#include <ctime>
#include <map>
#include <string>

#include "core/gantry_home.h"
#include "spec/loader.h"
#include "toolchain/exit_code.h"
#include "toolchain/local_agent.h"
#include "toolchain/reporter.h"
#include "toolchain/source_watch.h"
#include "toolchain/stop_signals.h"
#include "toolchain/verbs.h"

namespace toolchain {
namespace {

using nlohmann::json;

struct UpCommand {
  std::string file;
  LocalAgentFlags local;
  int port = 7070;
  bool watch = false;
};

// "site  http://127.0.0.1:7070/apps/hello/site/  (public)" per web function,
// "nightly  next 2026-12-02T09:00:00+01:00" per schedule, as the agent has
// them, and where its dashboard is.
void PrintServing(const spec::App& app, LocalAgent& local) {
  const std::string& url = local.url();
  const json status = local.agent().Status();
  const json& functions = status["apps"][app.name]["functions"];
  bool endpoints = false;
  for (const auto& [name, function] : app.functions) {
    if (!function.web) continue;
    if (!endpoints) std::printf("\nEndpoints:\n");
    endpoints = true;
    const char* auth = function.web->auth == core::WebAuth::kPublic ? "public"
                       : function.web->auth == core::WebAuth::kToken
                           ? "Authorization: Bearer (the agent token)"
                           : "Authorization: Bearer $GANTRY_APP_KEY";
    std::printf("  %-12s %s/apps/%s/%s/  (%s)\n", name.c_str(), url.c_str(), app.name.c_str(),
                name.c_str(), auth);
  }
  bool schedules = false;
  for (const auto& [name, function] : app.functions) {
    if (!function.schedule) continue;
    if (!schedules) std::printf("\nSchedules:\n");
    schedules = true;
    const json schedule =
        functions.contains(name) ? functions[name].value("schedule", json()) : json();
    std::string next = schedule.is_object() ? schedule.value("next_fire", "never") : "not placed";
    std::printf("  %-12s next %s\n", name.c_str(), next.c_str());
  }
  std::printf("\nDashboard: %s  (sign in with the token in %s)\n", local.dashboard_url().c_str(),
              (local.agent().data_dir() / "token").c_str());
  std::fflush(stdout);
}

// "12:00:01", local time.
std::string ClockTime(std::time_t seconds) {
  std::tm local{};
  localtime_r(&seconds, &local);
  char clock[16];
  std::strftime(clock, sizeof clock, "%H:%M:%S", &local);
  return clock;
}

// One log line of the agent's as "12:00:01 site c-1a2b stdout: text".
std::string FormatLogLine(const std::string& function, const json& line) {
  std::string clock = ClockTime(line.value("time_ms", std::int64_t{0}) / 1000);
  std::string who = function;
  if (line.contains("container")) who += " " + line["container"].get<std::string>();
  if (line.contains("call")) who += " " + line["call"].get<std::string>();
  return clock + " " + who + " " + line.value("stream", "") + ": " + line.value("text", "");
}

// Prints the log lines each function of `app` wrote since the cursors.
void PrintNewLogs(const agents::FunctionLogs& logs, const spec::App& app,
                  std::map<std::string, agents::LogCursor>* cursors) {
  for (const auto& [name, function] : app.functions) {
    std::string text = logs.ReadNew(app.name, name, &(*cursors)[name]);
    std::size_t begin = 0;
    while (begin < text.size()) {
      std::size_t end = text.find('\n', begin);
      json line = json::parse(text.substr(begin, end - begin), nullptr, false);
      if (!line.is_discarded()) std::printf("%s\n", FormatLogLine(name, line).c_str());
      begin = end + 1;
    }
  }
  std::fflush(stdout);
}

// Prints "12:00:03 site: 1 container running" when the number of running
// containers of a function changes, and "(scaled to zero)" when it drops to
// none, so that the autoscaler can be watched at work.
void PrintScaling(const spec::App& app, const json& status, std::map<std::string, int>* running) {
  const json& functions = status["apps"][app.name]["functions"];
  for (const auto& [name, function] : functions.items()) {
    int now = function.value("running_containers", 0);
    auto [last, added] = running->emplace(name, 0);
    if (!added && last->second == now) continue;
    if (added && now == 0) continue;
    last->second = now;
    std::printf("%s %s: %d container%s running%s\n", ClockTime(std::time(nullptr)).c_str(),
                name.c_str(), now, now == 1 ? "" : "s", now == 0 ? " (scaled to zero)" : "");
  }
  std::fflush(stdout);
}

// Plans and applies `app` (loaded from the spec) on the local agent; whether
// it was applied.
bool Deploy(const UpCommand& command, const spec::App& app, LocalAgent& local) {
  if (ApplyLocally(local, command.file, app, command.local, stdout) != kExitOk) return false;
  PrintServing(app, local);
  return true;
}

int RunUp(const UpCommand& command) {
  StopSignals signals;  // before any thread starts
  // A spec that does not load stops here, before an agent is started.
  auto app = spec::Load(command.file);
  if (!app) {
    ReportErrors(app.error());
    return kExitUserError;
  }
  LocalAgent::Options local_options = command.local.Options(command.port);
  local_options.dashboard = true;
  auto local = LocalAgent::Start(local_options);
  if (!local) {
    ReportErrors({local.error()});
    return kExitUserError;
  }
  std::printf("Local agent at %s (token in %s)\n", (*local)->url().c_str(),
              ((*local)->fleet().agents().front().token_file).c_str());
  if (!Deploy(command, *app, **local)) return kExitUserError;
  if (auto signal = signals.WaitFor(std::chrono::milliseconds(0))) return kExitSignalled + *signal;

  std::optional<SourceWatch> watch;
  if (command.watch) watch.emplace(std::filesystem::path(command.file).parent_path());
  std::printf("\nServing %s; logs follow. Ctrl-C stops it%s.\n", app->name.c_str(),
              command.watch ? ", and an edit of its folder re-applies it" : "");
  std::fflush(stdout);
  std::map<std::string, agents::LogCursor> cursors;
  std::map<std::string, int> running;
  std::optional<int> signal;
  for (int tick = 0; !(signal = signals.WaitFor(std::chrono::milliseconds(250))); ++tick) {
    PrintNewLogs((*local)->agent().logs(), *app, &cursors);
    if (tick % 4 == 0) PrintScaling(*app, (*local)->agent().Status(), &running);
    if (watch && tick % 4 == 0 && watch->Changed()) {
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
      } else if (Deploy(command, *changed, **local)) {
        app = std::move(changed);
      }
    }
  }
  std::printf("\nStopping %s (signal %d): draining and stopping its containers\n",
              app->name.c_str(), *signal);
  std::fflush(stdout);
  (*local)->Stop();
  PrintNewLogs((*local)->agent().logs(), *app, &cursors);
  std::printf("Stopped.\n");
  return kExitOk;
}

}  // namespace

void AddUpVerb(CLI::App& gantry, int* exit_code) {
  auto command = std::make_shared<UpCommand>();
  CLI::App* verb = gantry.add_subcommand(
      "up", "Run an app on the embedded local agent until Ctrl-C: endpoints, schedules, logs");
  verb->add_option("FILE", command->file, "Spec file (.yaml, .yml or .lua)")->required();
  verb->add_option("--port", command->port,
                   "Port of the local agent on 127.0.0.1 (0: any free port)")
      ->capture_default_str();
  AddLocalAgentFlags(verb, &command->local);
  verb->add_flag("--watch", command->watch,
                 "Re-plan and apply when a file of the spec's folder changes");
  verb->callback([command, exit_code] { *exit_code = RunUp(*command); });
}

}  // namespace toolchain
