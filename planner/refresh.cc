#include "planner/refresh.h"

#include <thread>

#include "planner/agent_client.h"

namespace planner {
namespace {

using nlohmann::json;

core::Result<AgentView> RefreshAgent(const AgentEntry& entry, const std::string& app) {
  auto client = AgentClient::Open(entry);
  if (!client) return client.error();
  auto node = client->Node();
  if (!node) return node.error();
  auto desired = client->Desired();
  if (!desired) return desired.error();
  auto token = ReadToken(entry);
  if (!token) return token.error();
  AgentView view;
  view.name = entry.name;
  view.url = entry.url;
  view.token = std::move(*token);
  const json apps = desired->value("apps", json::object());
  view.reported = apps.contains(app) ? apps[app] : json();
  view.inventory = InventoryFromAgent(entry.name, *node, *desired, app);
  return view;
}

}  // namespace

core::Result<Refreshed> RefreshAgents(const Fleet& fleet, const std::string& app,
                                      const std::optional<DeployState>& state) {
  const std::vector<AgentEntry>& entries = fleet.agents();
  std::vector<core::Result<AgentView>> views(entries.size(), core::Error{});
  {
    std::vector<std::jthread> threads;
    for (std::size_t i = 0; i < entries.size(); ++i)
      threads.emplace_back([&, i] { views[i] = RefreshAgent(entries[i], app); });
  }
  Refreshed refreshed;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (views[i]) {
      refreshed.agents.push_back(std::move(*views[i]));
      continue;
    }
    if (state && state->agents.count(entries[i].name) > 0) {
      return core::Error{core::ErrorCode::kUnavailable,
                         "cannot refresh agent " + entries[i].name + ", which runs part of app " +
                             app + ": " + views[i].error().message,
                         {}};
    }
    refreshed.warnings.push_back("agent " + entries[i].name +
                                 " left out: " + views[i].error().message);
  }
  return refreshed;
}

}  // namespace planner
