#include <cstdio>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/rate_card.h"
#include "planner/agent_client.h"
#include "planner/deploy_state.h"
#include "planner/fleet.h"
#include "spec/loader.h"
#include "toolchain/app_plan.h"
#include "toolchain/exit_code.h"
#include "toolchain/reporter.h"
#include "toolchain/verbs.h"

namespace toolchain {
namespace {

using nlohmann::json;

// One function on one agent, as its agent reports it.
struct FunctionRow {
  FunctionRow(std::string app, std::string function, std::string agent, int desired)
      : app(std::move(app)),
        function(std::move(function)),
        agent(std::move(agent)),
        desired(desired) {}

  std::string app;
  std::string function;
  std::string agent;
  int desired = 0;  // warm containers it must keep
  int running = 0;
  int queued = 0;
  std::string problem;  // "" when it runs as desired
  std::string scaling;  // a web function's: why its agent runs the count it does
  json schedule;        // a scheduled function's, as its agent reports it (null otherwise)

  json ToJson() const {
    return {{"app", app},
            {"function", function},
            {"agent", agent},
            {"desired", desired},
            {"running", running},
            {"queued", queued},
            {"drift", !problem.empty()},
            {"problem", problem},
            {"scaling", scaling},
            {"schedule", schedule}};
  }
};

// The rows of one agent: desired from its desired state (warm containers),
// running from its status; drift where fewer run than it must keep, or it
// reports errors, and — with the app's state — where a function differs from
// what the last apply pushed there or is gone.
std::vector<FunctionRow> AgentRows(const std::string& agent, const json& desired,
                                   const json& status, const std::string& only_app,
                                   const planner::DeployState* state) {
  std::vector<FunctionRow> rows;
  const json* recorded = nullptr;
  const std::string recorded_app = state ? state->app : "";
  if (state) {
    auto record = state->agents.find(agent);
    if (record != state->agents.end()) recorded = &record->second.app;
  }
  const json recorded_functions =
      recorded ? recorded->value("functions", json::object()) : json::object();
  const json apps = desired.value("apps", json::object());
  const json reported_apps = status.value("apps", json::object());
  for (const auto& [app, document] : apps.items()) {
    if (!only_app.empty() && app != only_app) continue;
    const json reported =
        reported_apps.value(app, json::object()).value("functions", json::object());
    const json functions = document.value("functions", json::object());
    for (const auto& [name, function] : functions.items()) {
      FunctionRow row(app, name, agent, function.value("min_containers", 0));
      const json state = reported.value(name, json::object());
      row.running = state.value("running_containers", 0);
      row.queued = state.value("queued_calls", 0) + state.value("queued_requests", 0);
      row.scaling = state.value("scaling_reason", "");
      if (state.value("schedule", json()).is_object()) row.schedule = state["schedule"];
      const json errors = state.value("errors", json::array());
      const bool applied_otherwise =
          recorded && app == recorded_app && recorded_functions.value(name, json()) != function;
      if (applied_otherwise) {
        row.problem = "differs from what the last apply pushed (gantry plan shows how)";
      } else if (!errors.empty()) {
        row.problem = errors[0].is_string() ? errors[0].get<std::string>() : errors[0].dump();
      } else if (function.contains("web") && row.running < row.desired) {
        row.problem = std::to_string(row.running) + " of " + std::to_string(row.desired) +
                      " warm containers running";
      }
      rows.push_back(std::move(row));
    }
  }
  if (recorded) {
    const json reported =
        apps.value(recorded_app, json::object()).value("functions", json::object());
    for (const auto& [name, function] : recorded_functions.items()) {
      if (reported.contains(name)) continue;
      FunctionRow& row =
          rows.emplace_back(recorded_app, name, agent, function.value("min_containers", 0));
      row.problem = "gone from the agent since the last apply (gantry apply repairs it)";
    }
  }
  return rows;
}

// Each app's budget on one agent, as its agent enforces it: its share of
// the caps, what it spent today and this month (UTC), its state.
struct BudgetRow {
  std::string app;
  std::string agent;
  json budget;  // the agent's GET /v1/status apps.APP.budget
};

std::vector<BudgetRow> AgentBudgets(const std::string& agent, const json& status,
                                    const std::string& only_app) {
  std::vector<BudgetRow> rows;
  const json apps = status.value("apps", json::object());
  for (const auto& [app, reported] : apps.items()) {
    if ((!only_app.empty() && app != only_app) || !reported.contains("budget")) continue;
    rows.push_back({app, agent, reported["budget"]});
  }
  return rows;
}

// "$0.0512 of $0.05 today": a few cents' budget shows fractions of a cent.
std::string Spent(const json& budget, const char* spent, const char* cap, const char* period) {
  std::string line = core::FormatUsdFine(budget.value(spent, 0.0));
  if (budget.contains(cap)) line += " of " + core::FormatUsdFine(budget.value(cap, 0.0));
  return line + " " + period;
}

int ShowStatus(std::string only_app, const std::string& state_option,
               const std::vector<std::string>& agents, bool as_json) {
  // A spec file names its app and its state: then what the last apply
  // pushed is compared too.
  std::optional<planner::DeployState> state;
  if (IsSpecFile(only_app)) {
    auto app = spec::Load(only_app);
    if (!app) {
      ReportErrors(app.error());
      return kExitUserError;
    }
    auto read = planner::ReadState(StatePath(state_option, only_app, app->name));
    if (!read) {
      ReportErrors({read.error()});
      return kExitUserError;
    }
    state = std::move(*read);
    only_app = app->name;
  }
  auto selected = RegisteredAgents(agents);
  if (!selected) {
    ReportErrors({selected.error()});
    return kExitUserError;
  }
  std::vector<FunctionRow> rows;
  std::vector<BudgetRow> budgets;
  std::vector<std::string> unreachable;
  for (const planner::AgentEntry& entry : selected->agents()) {
    auto client = planner::AgentClient::Open(entry);
    core::Result<json> desired = client ? client->Desired() : core::Result<json>(client.error());
    core::Result<json> status = desired ? client->Status() : core::Result<json>(desired.error());
    if (!status) {
      unreachable.push_back(entry.name + ": " + status.error().message);
      continue;
    }
    for (FunctionRow& row :
         AgentRows(entry.name, *desired, *status, only_app, state ? &*state : nullptr))
      rows.push_back(std::move(row));
    for (BudgetRow& row : AgentBudgets(entry.name, *status, only_app))
      budgets.push_back(std::move(row));
  }
  if (as_json) {
    json written = {{"functions", json::array()}, {"unreachable", unreachable}};
    for (const FunctionRow& row : rows) written["functions"].push_back(row.ToJson());
    written["budgets"] = json::array();
    for (const BudgetRow& row : budgets) {
      json entry = row.budget;
      entry["app"] = row.app;
      entry["agent"] = row.agent;
      written["budgets"].push_back(std::move(entry));
    }
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
      if (!row.scaling.empty()) std::printf("%-16s scaling: %s\n", "", row.scaling.c_str());
      if (row.schedule.is_object()) {
        std::printf("%-16s schedule: %s\n", "", planner::ScheduleSummary(row.schedule).c_str());
      }
    }
    for (const BudgetRow& row : budgets) {
      std::string state = row.budget.value("state", "ok");
      if (color && state != "ok") state = "\x1b[31m" + state + "\x1b[0m";
      std::printf("budget of %s on %s: %s, %s, %s\n", row.app.c_str(), row.agent.c_str(),
                  state.c_str(), Spent(row.budget, "spent_today_usd", "daily_usd", "today").c_str(),
                  Spent(row.budget, "spent_month_usd", "monthly_usd", "this month").c_str());
      if (row.budget.contains("reason"))
        std::printf("  %s\n", row.budget.value("reason", "").c_str());
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
    std::string state;
    std::vector<std::string> agents;
    bool json = false;
  };
  auto options = std::make_shared<Options>();
  verb->add_option("APP", options->app,
                   "Only this app; a spec file also compares with what its last apply pushed");
  verb->add_option("--state", options->state,
                   "With a spec file: its state (default: .gantry/state/APP.json beside it)");
  verb->add_option("--agent", options->agents, "Only this registered agent (repeatable)");
  verb->add_flag("--json", options->json, "Print JSON");
  verb->callback([options, exit_code] {
    *exit_code = ShowStatus(options->app, options->state, options->agents, options->json);
  });
}

}  // namespace toolchain
