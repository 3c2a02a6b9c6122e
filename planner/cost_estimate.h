#pragma once

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/result.h"
#include "planner/placement.h"
#include "spec/app.h"

namespace planner {

/// Per-second prices in USD: what a container costs while it runs. The
/// defaults are published serverless GPU list prices (planner/README.md
/// names the source and date); `$GANTRY_HOME/rates.yaml` overrides any of
/// them:
///
///   gpu: {H100: 0.001097, A100-80GB: 0.000694}
///   cpu_core: 0.0000131
///   memory_gib: 0.00000222
struct RateCard {
  std::map<std::string, double> gpu_per_second;  // by GPU type (core/gpu_type.h)
  double cpu_core_per_second = 0;
  double memory_gib_per_second = 0;

  static RateCard Defaults();
  /// The defaults with `file`'s prices over them; the defaults alone when the
  /// file does not exist. Unknown keys, unknown GPU types and negative prices
  /// are errors naming the file and key.
  static core::Result<RateCard> Load(const std::filesystem::path& file);
};

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
