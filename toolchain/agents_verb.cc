// `gantry agents add|ls|rm`: the fleet of agents this machine deploys to
// (planner/fleet.h). Tokens stay in their files and are never printed.

#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/quantity.h"
#include "planner/agent_client.h"
#include "planner/fleet.h"
#include "planner/placement.h"
#include "toolchain/exit_code.h"
#include "toolchain/reporter.h"
#include "toolchain/verbs.h"

namespace toolchain {
namespace {

using nlohmann::json;

struct AddOptions {
  std::string name;
  std::string url;
  std::string token_file;
  std::string ca_file;
};

/// Loads the fleet file, lets `change` edit the fleet and saves it; the
/// file is left as it was when anything fails.
template <typename Change>
void ChangeFleet(Change change, int* exit_code) {
  *exit_code = kExitUserError;
  auto fleet = planner::Fleet::Load(planner::Fleet::DefaultFile());
  if (!fleet) return ReportErrors({fleet.error()});
  if (auto changed = change(*fleet); !changed.ok()) return ReportErrors({changed.error()});
  if (auto saved = fleet->Save(); !saved.ok()) return ReportErrors({saved.error()});
  *exit_code = kExitOk;
}

/// What `agents ls` shows of one agent: its GPUs and what the warm
/// containers of its apps leave free, or why it cannot be asked.
json DescribeAgent(const planner::AgentEntry& agent) {
  json row = {{"name", agent.name}, {"url", agent.url}};
  auto described = [&]() -> core::Status {
    auto client = planner::AgentClient::Open(agent);
    if (!client) return client.error();
    auto node = client->Node();
    if (!node) return node.error();
    auto desired = client->Desired();
    if (!desired) return desired.error();
    // Every app's warm containers count: none is being planned here.
    planner::AgentInventory inventory =
        planner::InventoryFromAgent(agent.name, *node, *desired, /*except_app=*/"");
    row["gpus"] = inventory.gpus;
    row["free_cpus"] = inventory.cpus - inventory.reserved_cpus;
    row["free_memory_bytes"] = inventory.memory_bytes > inventory.reserved_memory_bytes
                                   ? inventory.memory_bytes - inventory.reserved_memory_bytes
                                   : 0;
    return core::Ok{};
  }();
  row["reachable"] = described.ok();
  if (!described.ok()) row["error"] = described.error().message;
  return row;
}

/// "2×H100, 1×A100-80GB", or "-" without GPUs.
std::string GpusForPeople(const json& gpus) {
  std::string text;
  for (const auto& [type, count] : gpus.items()) {
    text += (text.empty() ? "" : ", ") + std::to_string(count.get<int>()) + "×" + type;
  }
  return text.empty() ? "-" : text;
}

void List(bool as_json, int* exit_code) {
  *exit_code = kExitUserError;
  auto fleet = planner::Fleet::Load(planner::Fleet::DefaultFile());
  if (!fleet) return ReportErrors({fleet.error()});
  json rows = json::array();
  for (const planner::AgentEntry& agent : fleet->agents()) rows.push_back(DescribeAgent(agent));
  if (as_json) {
    std::printf("%s\n", rows.dump(2).c_str());
  } else if (rows.empty()) {
    std::printf("no agents (add one with: gantry agents add NAME URL --token-file FILE)\n");
  } else {
    std::printf("%-16s  %-32s  %-10s  %-16s  %9s  %11s\n", "NAME", "URL", "REACHABLE", "GPUS",
                "FREE CPUS", "FREE MEMORY");
    for (const json& row : rows) {
      const std::string name = row["name"], url = row["url"];
      if (!row["reachable"].get<bool>()) {
        // Why it cannot be asked ends the line: its other columns are unknown.
        std::printf("%-16s  %-32s  %s\n", name.c_str(), url.c_str(),
                    row["error"].get<std::string>().c_str());
        continue;
      }
      const std::string cpus = json(std::round(row["free_cpus"].get<double>() * 100) / 100).dump();
      std::printf("%-16s  %-32s  %-10s  %-16s  %9s  %11s\n", name.c_str(), url.c_str(), "yes",
                  GpusForPeople(row["gpus"]).c_str(), cpus.c_str(),
                  core::FormatSizeForPeople(row["free_memory_bytes"].get<std::uint64_t>()).c_str());
    }
  }
  *exit_code = kExitOk;
}

}  // namespace

void AddAgentsVerb(CLI::App& gantry, int* exit_code) {
  auto* verb = gantry.add_subcommand(
      "agents", "The agents this machine deploys to ($GANTRY_HOME/agents.json)");
  verb->require_subcommand(1);

  auto add_options = std::make_shared<AddOptions>();
  auto* add = verb->add_subcommand("add", "Register an agent: its API's URL and token file");
  add->add_option("name", add_options->name, "The agent's name in plans: [a-z0-9][a-z0-9_-]*")
      ->required();
  add->add_option("url", add_options->url, "Its API: http://HOST:PORT or https://HOST:PORT")
      ->required();
  add->add_option("--token-file", add_options->token_file,
                  "The file holding its API token (read at each request, never copied)")
      ->required();
  add->add_option("--ca", add_options->ca_file,
                  "PEM file of the CA its TLS certificate is checked against (default: the "
                  "system's CAs)");
  add->callback([add_options, exit_code] {
    const AddOptions& options = *add_options;
    ChangeFleet(
        [&](planner::Fleet& fleet) {
          return fleet.Add({options.name, options.url, options.token_file, options.ca_file});
        },
        exit_code);
    if (*exit_code == kExitOk) std::printf("added agent %s\n", options.name.c_str());
  });

  auto as_json = std::make_shared<bool>(false);
  auto* ls = verb->add_subcommand(
      "ls", "List the agents: reachable or not, GPUs, free CPU cores and memory");
  ls->add_flag("--json", *as_json, "Print a JSON array instead of a table");
  ls->callback([as_json, exit_code] { List(*as_json, exit_code); });

  auto remove_name = std::make_shared<std::string>();
  auto* rm = verb->add_subcommand("rm", "Forget an agent (what runs on it keeps running)");
  rm->add_option("name", *remove_name, "The agent's name")->required();
  rm->callback([remove_name, exit_code] {
    ChangeFleet([&](planner::Fleet& fleet) { return fleet.Remove(*remove_name); }, exit_code);
    if (*exit_code == kExitOk) std::printf("removed agent %s\n", remove_name->c_str());
  });
}

}  // namespace toolchain
