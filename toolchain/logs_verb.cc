// `gantry logs APP [FUNCTION] [--follow] [--since T]`: the function logs of
// the registered agents (GET /v1/logs), merged in time order, each line
// prefixed by its agent and its container (or job call).

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/wall_clock.h"
#include "planner/agent_client.h"
#include "planner/fleet.h"
#include "toolchain/app_plan.h"
#include "toolchain/exit_code.h"
#include "toolchain/reporter.h"
#include "toolchain/stop_signals.h"
#include "toolchain/verbs.h"

namespace toolchain {
namespace {

using nlohmann::json;

constexpr std::chrono::milliseconds kPollInterval{1000};

struct LogsOptions {
  std::string app;
  std::string function;
  std::string since;
  std::vector<std::string> agents;
  bool follow = false;
};

/// One agent's log as it is read, poll after poll: from `since_ms` on,
/// each poll from where the last one ended (the agent's log cursor).
struct AgentLog {
  planner::AgentEntry entry;
  std::optional<planner::AgentClient> client;
  std::int64_t since_ms = 0;
  std::string cursor;        // "" before the first read
  bool known = false;        // its status names the app (and function)
  bool unreachable = false;  // reported once
};

/// A line to print: its time, then the text of it.
struct MergedLine {
  std::int64_t time_ms;
  std::string text;
};

std::string Format(const std::string& agent, const json& line) {
  const std::int64_t time_ms = line.value("time_ms", std::int64_t{0});
  std::string source = line.value("container", line.value("call", std::string("-")));
  return core::FormatTimestamp(
             std::chrono::sys_time<std::chrono::milliseconds>(std::chrono::milliseconds(time_ms)),
             nullptr) +
         " " + agent + "/" + source + " " + line.value("stream", "") + ": " +
         line.value("text", "");
}

/// Reads what `log` has new (the lines written since its last read) into `out`.
core::Status ReadNew(const LogsOptions& options, AgentLog* log, std::vector<MergedLine>* out) {
  auto lines = log->client->Logs(options.app, options.function, log->since_ms, &log->cursor);
  if (!lines) return lines.error();
  for (const json& line : *lines)
    out->push_back({line.value("time_ms", std::int64_t{0}), Format(log->entry.name, line)});
  return core::Ok{};
}

/// Whether an agent's status names the app (and the function, if given).
bool Knows(const json& status, const LogsOptions& options) {
  const json apps = status.value("apps", json::object());
  if (!apps.contains(options.app)) return false;
  return options.function.empty() ||
         apps[options.app].value("functions", json::object()).contains(options.function);
}

int ShowLogs(const LogsOptions& options) {
  std::optional<StopSignals> stop_signals;
  if (options.follow) stop_signals.emplace();
  const std::int64_t now_ms = core::NowMs();
  std::int64_t since_ms = 0;
  if (!options.since.empty()) {
    auto since = core::ParseTimeOption("--since", options.since, now_ms);
    if (!since) {
      ReportErrors({since.error()});
      return kExitUserError;
    }
    since_ms = *since;
  }
  auto selected = RegisteredAgents(options.agents);
  if (!selected) {
    ReportErrors({selected.error()});
    return kExitUserError;
  }
  if (selected->agents().empty()) {
    ReportErrors(
        {{core::ErrorCode::kNotFound,
          "no agents registered: add one with gantry agents add NAME URL --token-file FILE",
          {}}});
    return kExitUserError;
  }
  std::vector<AgentLog> logs;
  for (const planner::AgentEntry& entry : selected->agents()) {
    AgentLog log{entry, std::nullopt, since_ms, "", false, false};
    auto client = planner::AgentClient::Open(entry);
    if (!client) {
      ReportErrors({client.error()});
      return kExitUserError;
    }
    log.client.emplace(std::move(client).value());
    logs.push_back(std::move(log));
  }

  bool failed = false;
  bool first = true;
  while (true) {
    std::vector<MergedLine> merged;
    for (AgentLog& log : logs) {
      core::Status read = core::Ok{};
      if (!log.known) {
        auto status = log.client->Status();
        if (status) {
          log.known = Knows(*status, options);
        } else {
          read = status.error();
        }
      }
      if (read.ok()) read = ReadNew(options, &log, &merged);
      if (!read.ok() && !log.unreachable) {
        log.unreachable = true;
        failed = true;
        ReportErrors({read.error()});
      } else if (read.ok()) {
        log.unreachable = false;
      }
    }
    // Neither an app nor a function that no agent knows or has a line of: a typo, most likely.
    if (first && merged.empty() &&
        std::none_of(logs.begin(), logs.end(), [](const AgentLog& log) { return log.known; }) &&
        std::any_of(logs.begin(), logs.end(),
                    [](const AgentLog& log) { return !log.unreachable; })) {
      std::string what = options.function.empty()
                             ? "app " + options.app
                             : "function " + options.app + "/" + options.function;
      ReportErrors({{core::ErrorCode::kNotFound,
                     "no " + what + " on the registered agents (gantry status lists what they run)",
                     {}}});
      return kExitUserError;
    }
    first = false;
    std::stable_sort(merged.begin(), merged.end(), [](const MergedLine& a, const MergedLine& b) {
      return a.time_ms < b.time_ms;
    });
    for (const MergedLine& line : merged) std::printf("%s\n", line.text.c_str());
    std::fflush(stdout);
    if (!options.follow) break;
    if (stop_signals->WaitFor(kPollInterval)) return kExitOk;
  }
  return failed ? kExitUserError : kExitOk;
}

}  // namespace

void AddLogsVerb(CLI::App& gantry, int* exit_code) {
  auto* verb = gantry.add_subcommand(
      "logs", "The function logs of an app on the registered agents, merged in time order");
  auto options = std::make_shared<LogsOptions>();
  verb->add_option("APP", options->app, "The app")->required();
  verb->add_option("FUNCTION", options->function, "Only this function");
  verb->add_flag("-f,--follow", options->follow, "Keep printing new lines until Ctrl-C");
  verb->add_option("--since", options->since,
                   "Only lines from then on: a duration back from now (10m) or an ISO 8601 time");
  verb->add_option("--agent", options->agents, "Only this registered agent (repeatable)");
  verb->callback([options, exit_code] { *exit_code = ShowLogs(*options); });
}

}  // namespace toolchain
