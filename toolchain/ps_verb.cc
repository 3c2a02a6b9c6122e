// `gantry ps [APP]`: the containers running now on the registered agents,
// one line each, from each agent's status (GET /v1/status, its
// `container_list`: the usage ledger's open records, with the web
// containers' states).

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/quantity.h"
#include "core/wall_clock.h"
#include "planner/agent_client.h"
#include "planner/fleet.h"
#include "toolchain/app_plan.h"
#include "toolchain/exit_code.h"
#include "toolchain/reporter.h"
#include "toolchain/verbs.h"

namespace toolchain {
namespace {

using nlohmann::json;

struct PsOptions {
  std::string app;
  std::vector<std::string> agents;
  bool json = false;
};

/// One running container, as `gantry ps` prints it.
struct ContainerRow {
  std::string agent;
  std::string app;
  std::string function;
  json container;  // a member of the function's `container_list`

  std::string Gpu() const {
    const int count = container.value("gpu_count", 0);
    if (count == 0) return "-";
    const std::string type = container.value("gpu_type", "");
    return count == 1 ? type : type + ":" + std::to_string(count);
  }
};

int ShowContainers(const PsOptions& options) {
  const std::int64_t now_ms = core::NowMs();
  auto selected = RegisteredAgents(options.agents);
  if (!selected) {
    ReportErrors({selected.error()});
    return kExitUserError;
  }
  std::vector<ContainerRow> rows;
  std::vector<std::string> unreachable;
  bool app_found = false;
  for (const planner::AgentEntry& entry : selected->agents()) {
    auto client = planner::AgentClient::Open(entry);
    auto status = client ? client->Status() : core::Result<json>(client.error());
    if (!status) {
      unreachable.push_back(entry.name + ": " + status.error().message);
      continue;
    }
    const json apps = status->value("apps", json::object());
    for (const auto& [app, app_status] : apps.items()) {
      if (!options.app.empty() && app != options.app) continue;
      app_found = true;
      const json functions = app_status.value("functions", json::object());
      for (const auto& [function, function_status] : functions.items()) {
        const json containers = function_status.value("container_list", json::array());
        for (const json& container : containers)
          rows.push_back({entry.name, app, function, container});
      }
    }
  }
  // Only an app no agent that answered knows is an error: it may simply run nothing now.
  if (!options.app.empty() && !app_found && unreachable.size() < selected->agents().size()) {
    ReportErrors(
        {{core::ErrorCode::kNotFound,
          "no app " + options.app + " on the registered agents (gantry status lists what they run)",
          {}}});
    return kExitUserError;
  }
  if (options.json) {
    json written = {{"containers", json::array()}, {"unreachable", unreachable}};
    for (const ContainerRow& row : rows) {
      json line = row.container;
      line["agent"] = row.agent;
      line["app"] = row.app;
      line["function"] = row.function;
      line["age_seconds"] = (now_ms - row.container.value("started_ms", now_ms)) / 1000;
      written["containers"].push_back(std::move(line));
    }
    std::printf("%s\n", written.dump(2).c_str());
  } else {
    std::printf("%-12s %-16s %-20s %-36s %8s %-12s %s\n", "AGENT", "APP", "FUNCTION", "CONTAINER",
                "AGE", "GPU", "STATE");
    for (const ContainerRow& row : rows) {
      const std::int64_t age_ms = now_ms - row.container.value("started_ms", now_ms);
      const std::string age =
          core::FormatDuration(std::chrono::seconds(std::max<std::int64_t>(0, age_ms / 1000)));
      std::printf("%-12s %-16s %-20s %-36s %8s %-12s %s\n", row.agent.c_str(), row.app.c_str(),
                  row.function.c_str(), row.container.value("id", "").c_str(), age.c_str(),
                  row.Gpu().c_str(), row.container.value("state", "").c_str());
    }
    for (const std::string& line : unreachable) std::printf("unreachable: %s\n", line.c_str());
  }
  return unreachable.empty() ? kExitOk : kExitUserError;
}

}  // namespace

void AddPsVerb(CLI::App& gantry, int* exit_code) {
  auto* verb = gantry.add_subcommand(
      "ps", "The containers running on the registered agents: function, age, GPU, state");
  auto options = std::make_shared<PsOptions>();
  verb->add_option("APP", options->app, "Only this app");
  verb->add_option("--agent", options->agents, "Only this registered agent (repeatable)");
  verb->add_flag("--json", options->json, "Print JSON");
  verb->callback([options, exit_code] { *exit_code = ShowContainers(*options); });
}

}  // namespace toolchain
