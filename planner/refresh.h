#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "planner/deploy_state.h"
#include "planner/fleet.h"
#include "planner/plan.h"

namespace planner {

/// The agents as they are now, for a plan of one app.
struct Refreshed {
  std::vector<AgentView> agents;  // reachable agents, by name
  /// Agents that could not be asked and hold nothing of the app: left out
  /// of placement, one line each with the reason.
  std::vector<std::string> warnings;
};

/// Asks every agent of `fleet` (all at once) for its node and desired state.
/// An agent that cannot be reached is left out with a warning, unless the
/// state records that it runs part of the app: then the refresh fails
/// (kUnavailable), since planning without it would forget what it runs.
core::Result<Refreshed> RefreshAgents(const Fleet& fleet, const std::string& app,
                                      const std::optional<DeployState>& state);

}  // namespace planner
