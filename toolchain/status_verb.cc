#include <cstdio>
#include <string>
#include <vector>

#include "planner/agent_client.h"
#include "planner/fleet.h"
#include "toolchain/app_plan.h"
#include "toolchain/exit_code.h"
#include "toolchain/reporter.h"
#include "toolchain/verbs.h"

namespace toolchain {
namespace {

using nlohmann::json;

// One function on one agent, as its agent reports it.
struct FunctionRow {
  std::string app;
  std::string function;
  std::string agent;
  int desired = 0;  // warm containers it must keep
  int running = 0;
  int queued = 0;
  std::string problem;  // "" when it runs as desired

  json ToJson() const {
    return {{"app", app},
            {"function", function},
            {"agent", agent},
            {"desired", desired},
            {"running", running},
            {"queued", queued},
            {"drift", !problem.empty()},
            {"problem", problem}};
  }
};

// The rows of one agent: desired from its desired state (warm containers),
// running from its status; drift where fewer run than it must keep, or it
// reports errors.
std::vector<FunctionRow> AgentRows(const std::string& agent, const json& desired,
                                   const json& status, const std::string& only_app) {
  std::vector<FunctionRow> rows;
  const json apps = desired.value("apps", json::object());
  const json reported_apps = status.value("apps", json::object());
  for (const auto& [app, document] : apps.items()) {
    if (!only_app.empty() && app != only_app) continue;
    const json reported =
        reported_apps.value(app, json::object()).value("functions", json::object());
    const json functions = document.value("functions", json::object());
    for (const auto& [name, function] : functions.items()) {
      FunctionRow row{app, name, agent, function.value("min_containers", 0), 0, 0, ""};
      const json state = reported.value(name, json::object());
      row.running = state.value("running_containers", 0);
      row.queued = state.value("queued_calls", 0) + state.value("queued_requests", 0);
      const json errors = state.value("errors", json::array());
      if (!errors.empty()) {
        row.problem = errors[0].get<std::string>();
      } else if (function.contains("web") && row.running < row.desired) {
        row.problem = std::to_string(row.running) + " of " + std::to_string(row.desired) +
                      " warm containers running";
      }
      rows.push_back(std::move(row));
    }
  }
  return rows;
}

int ShowStatus(const std::string& only_app, const std::vector<std::string>& agents, bool as_json) {
  auto fleet = planner::Fleet::Load(planner::Fleet::DefaultFile());
  if (!fleet) {
    ReportErrors({fleet.error()});
    return kExitUserError;
  }
  auto selected = SelectAgents(std::move(*fleet), agents);
  if (!selected) {
    ReportErrors({selected.error()});
    return kExitUserError;
  }
  std::vector<FunctionRow> rows;
  std::vector<std::string> unreachable;
  for (const planner::AgentEntry& entry : selected->agents()) {
    auto client = planner::AgentClient::Open(entry);
    core::Result<json> desired = client ? client->Desired() : core::Result<json>(client.error());
    core::Result<json> status = desired ? client->Status() : core::Result<json>(desired.error());
    if (!status) {
      unreachable.push_back(entry.name + ": " + status.error().message);
      continue;
    }
    for (FunctionRow& row : AgentRows(entry.name, *desired, *status, only_app))
      rows.push_back(std::move(row));
  }
  if (as_json) {
    json written = {{"functions", json::array()}, {"unreachable", unreachable}};
    for (const FunctionRow& row : rows) written["functions"].push_back(row.ToJson());
    std::printf("%s\n", written.dump(2).c_str());
  } else {
    bool color = ColorOutput();
    std::printf("%-16s %-20s %-12s %7s %7s %6s  %s\n", "APP", "FUNCTION", "AGENT", "DESIRED",
                "RUNNING", "QUEUED", "STATE");
    for (const FunctionRow& row : rows) {
      std::string state = row.problem.empty() ? "ok" : "drift: " + row.problem;
      if (color && !row.problem.empty()) state = "\x1b[31m" + state + "\x1b[0m";
      std::printf("%-16s %-20s %-12s %7d %7d %6d  %s\n", row.app.c_str(), row.function.c_str(),
                  row.agent.c_str(), row.desired, row.running, row.queued, state.c_str());
    }
    for (const std::string& line : unreachable) std::printf("unreachable: %s\n", line.c_str());
  }
  return unreachable.empty() ? kExitOk : kExitUserError;
}

}  // namespace

void AddStatusVerb(CLI::App& gantry, int* exit_code) {
  auto* verb = gantry.add_subcommand(
      "status", "What the agents run, per app, function and agent, with drift highlighted");
  struct Options {
    std::string app;
    std::vector<std::string> agents;
    bool json = false;
  };
  auto options = std::make_shared<Options>();
  verb->add_option("APP", options->app, "Only this app");
  verb->add_option("--agent", options->agents, "Only this registered agent (repeatable)");
  verb->add_flag("--json", options->json, "Print JSON");
  verb->callback([options, exit_code] {
    *exit_code = ShowStatus(options->app, options->agents, options->json);
  });
}

}  // namespace toolchain
