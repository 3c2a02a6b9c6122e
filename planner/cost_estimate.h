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

struct CostEstimate {
  std::vector<FunctionCost> functions;  // by function name
  double always_on_monthly = 0;
  double max_monthly = 0;
  /// One line each, e.g. a warm GPU pool: "function chat keeps 2 H100 GPUs
  /// warm (min_containers 2): $1,895.62 a month even with no traffic".
  std::vector<std::string> warnings;

  nlohmann::json ToJson() const;
};

/// The estimate for `app` placed as `placement` (the GPU type of each
/// function is the one placement chose).
CostEstimate EstimateCost(const spec::App& app, const Placement& placement, const RateCard& rates);

/// "$1,234.56": dollars with thousands separators and cents.
std::string FormatUsd(double usd);

}  // namespace planner
