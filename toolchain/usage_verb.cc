// `gantry usage`: what the containers of the registered agents ran, and what
// it cost, from each agent's usage ledger (GET /v1/usage, agents/README.md),
// grouped by app, function, GPU type, agent or day, with totals.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

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

constexpr std::int64_t kDayMs = 24 * 60 * 60 * 1000;

/// One line of the report: what the records grouped under `key` add up to.
struct UsageRow {
  int containers = 0;
  double seconds = 0;
  double gpu_seconds = 0;
  double cost_usd = 0;

  void Add(double record_seconds, int gpu_count, double cost) {
    ++containers;
    seconds += record_seconds;
    gpu_seconds += record_seconds * gpu_count;
    cost_usd += cost;
  }
  json ToJson() const {
    return {{"containers", containers},
            {"seconds", seconds},
            {"gpu_seconds", gpu_seconds},
            {"cost_usd", cost_usd}};
  }
};

std::string DayOf(std::int64_t ms) {
  return core::FormatTimestamp(
             std::chrono::sys_time<std::chrono::milliseconds>(std::chrono::milliseconds(ms)),
             nullptr)
      .substr(0, 10);
}

/// Adds one record of agent `agent` to `rows`, under its key for `by`. By
/// day, its share of the window is split over the UTC days it ran in, in
/// proportion to its time in each.
void AddRecord(const std::string& by, const std::string& agent, const json& record,
               std::int64_t since_ms, std::int64_t until_ms, std::int64_t now_ms,
               std::map<std::string, UsageRow>* rows) {
  const double seconds = record.value("window_seconds", 0.0);
  const double cost = record.value("window_cost_usd", 0.0);
  const int gpus = record.value("gpu_count", 0);
  if (by != "day") {
    std::string key = record.value("app", "");
    if (by == "function") key += "/" + record.value("function", "");
    if (by == "gpu") key = gpus > 0 ? record.value("gpu_type", "") : "(no GPU)";
    if (by == "agent") key = agent;
    (*rows)[key].Add(seconds, gpus, cost);
    return;
  }
  std::int64_t start = std::max(record.value("start_ms", std::int64_t{0}), since_ms);
  std::int64_t end = std::min(record.value("end_ms", now_ms), until_ms);
  if (end <= start) {
    (*rows)[DayOf(start)].Add(seconds, gpus, cost);
    return;
  }
  for (std::int64_t day = start - start % kDayMs; day < end; day += kDayMs) {
    std::int64_t inside = std::min(end, day + kDayMs) - std::max(start, day);
    double fraction = static_cast<double>(inside) / static_cast<double>(end - start);
    (*rows)[DayOf(day)].Add(seconds * fraction, gpus, cost * fraction);
  }
}

struct UsageOptions {
  std::string app;
  std::string by = "app";
  std::string since = "24h";
  std::string until;
  std::vector<std::string> agents;
  bool json = false;
  bool csv = false;
};

int ShowUsage(const UsageOptions& options) {
  std::int64_t now_ms = core::NowMs();
  auto since = core::ParseTimeOption("--since", options.since, now_ms);
  auto until = options.until.empty() ? core::Result<std::int64_t>(now_ms + 1)
                                     : core::ParseTimeOption("--until", options.until, now_ms);
  for (const auto* time : {&since, &until}) {
    if (!*time) {
      ReportErrors({time->error()});
      return kExitUserError;
    }
  }
  auto selected = RegisteredAgents(options.agents);
  if (!selected) {
    ReportErrors({selected.error()});
    return kExitUserError;
  }
  std::map<std::string, UsageRow> rows;
  UsageRow totals;
  std::vector<std::string> unreachable;
  for (const planner::AgentEntry& entry : selected->agents()) {
    auto client = planner::AgentClient::Open(entry);
    auto usage =
        client ? client->Usage(*since, *until, options.app) : core::Result<json>(client.error());
    if (!usage) {
      unreachable.push_back(entry.name + ": " + usage.error().message);
      continue;
    }
    const json records = usage->value("records", json::array());
    const std::int64_t agent_now = usage->value("now_ms", now_ms);
    for (const json& record : records) {
      AddRecord(options.by, entry.name, record, *since, *until, agent_now, &rows);
      totals.Add(record.value("window_seconds", 0.0), record.value("gpu_count", 0),
                 record.value("window_cost_usd", 0.0));
    }
  }
  if (options.json) {
    json written = {{"since_ms", *since},        {"until_ms", *until},
                    {"by", options.by},          {"rows", json::array()},
                    {"totals", totals.ToJson()}, {"unreachable", unreachable}};
    for (const auto& [key, row] : rows) {
      json line = row.ToJson();
      line[options.by] = key;
      written["rows"].push_back(std::move(line));
    }
    std::printf("%s\n", written.dump(2).c_str());
  } else if (options.csv) {
    std::printf("%s,containers,seconds,gpu_seconds,cost_usd\n", options.by.c_str());
    auto print = [](const std::string& key, const UsageRow& row) {
      std::printf("%s,%d,%.3f,%.3f,%.6f\n", key.c_str(), row.containers, row.seconds,
                  row.gpu_seconds, row.cost_usd);
    };
    for (const auto& [key, row] : rows) print(key, row);
    print("total", totals);
  } else {
    std::string header = options.by;
    std::transform(header.begin(), header.end(), header.begin(), ::toupper);
    std::printf("%-32s %10s %12s %12s %12s\n", header.c_str(), "CONTAINERS", "SECONDS",
                "GPU-SECONDS", "COST (USD)");
    auto print = [](const std::string& key, const UsageRow& row) {
      std::printf("%-32s %10d %12.1f %12.1f %12.4f\n", key.c_str(), row.containers, row.seconds,
                  row.gpu_seconds, row.cost_usd);
    };
    for (const auto& [key, row] : rows) print(key, row);
    print("TOTAL", totals);
    for (const std::string& line : unreachable) std::printf("unreachable: %s\n", line.c_str());
  }
  return unreachable.empty() ? kExitOk : kExitUserError;
}

}  // namespace

void AddUsageVerb(CLI::App& gantry, int* exit_code) {
  auto* verb = gantry.add_subcommand(
      "usage", "Container time and its cost, metered per second by the registered agents");
  auto options = std::make_shared<UsageOptions>();
  verb->add_option("--app", options->app, "Only this app");
  verb->add_option("--by", options->by, "Group by app, function, gpu, agent or day (UTC)")
      ->check(CLI::IsMember({"app", "function", "gpu", "agent", "day"}));
  verb->add_option("--since", options->since,
                   "Start of the window: a duration back from now (24h) or an ISO 8601 time")
      ->capture_default_str();
  verb->add_option("--until", options->until, "End of the window, likewise (default: now)");
  verb->add_option("--agent", options->agents, "Only this registered agent (repeatable)");
  auto* as_json = verb->add_flag("--json", options->json, "Print JSON");
  verb->add_flag("--csv", options->csv, "Print CSV")->excludes(as_json);
  verb->callback([options, exit_code] { *exit_code = ShowUsage(*options); });
}

}  // namespace toolchain
