#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/rate_card.h"
#include "core/result.h"
#include "planner/placement.h"
#include "spec/app.h"

namespace planner {

/// The rate card lives in core/ (core/rate_card.h), shared with the
/// agents' usage ledger; the planner reads `$GANTRY_HOME/rates.yaml`.
using core::RateCard;

/// What one function may cost, per month (30 days).
struct FunctionCost {
  std::string function;
  double container_per_hour = 0;  // one container of it, running
  double always_on_monthly = 0;   // min_containers, all month
  double max_monthly = 0;         // max_containers, all month: the worst case
  int warm_gpus = 0;              // GPUs kept warm by min_containers
};

/// One agent's part of an app's budget. Each agent enforces its caps from
/// its own usage ledger, so the planner gives each one a share of the
/// spec's caps in proportion to what the app's replicas on it may cost: the
/// rate card's price of their containers at max_containers (by replica count
/// when nothing has a price). Shares are rounded down to a micro-dollar, so
/// they add up to the spec's caps at most and the fleet never spends past
/// them, and a GPU agent is not stopped at the share of a CPU one.
struct AgentBudget {
  std::string agent;
  double share = 0;     // of the app's caps, in [0, 1]: 0 where its replicas cost nothing
  spec::Budget budget;  // the caps this agent enforces
};

/// Each placed agent's part of `app`'s budget (which it must have), by agent name.
std::vector<AgentBudget> SplitBudget(const spec::App& app, const Placement& placement,
                                     const RateCard& rates);

struct CostEstimate {
  std::vector<FunctionCost> functions;  // by function name
  double always_on_monthly = 0;
  double max_monthly = 0;
  /// One line each, e.g. a warm GPU pool: "function chat keeps 2 H100 GPUs
  /// warm (min_containers 2): $1,895.62 a month even with no traffic".
  std::vector<std::string> warnings;
  /// The app's budget as the agents enforce it (SplitBudget); empty without one.
  std::vector<AgentBudget> budget;

  nlohmann::json ToJson() const;
};

/// The estimate for `app` placed as `placement` (the GPU type of each
/// function is the one placement chose).
CostEstimate EstimateCost(const spec::App& app, const Placement& placement, const RateCard& rates);

}  // namespace planner
