#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

#include "core/result.h"

namespace core {

/// Per-second prices in USD: what a container costs while it runs. One
/// definition for both the planner's cost estimate (planner/cost_estimate.h)
/// and the agents' usage ledger (agents/usage_ledger.h), so that a plan's
/// estimate and the bill agree. The defaults are published serverless GPU
/// list prices (planner/README.md names the source and date); a rates file
/// (`$GANTRY_HOME/rates.yaml` for the planner, `DATA_DIR/rates.yaml` for an
/// agent) overrides any of them:
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
  static Result<RateCard> Load(const std::filesystem::path& file);

  /// USD a second for one container holding `gpu_count` GPUs of `gpu_type`,
  /// `cpu` cores and `memory_bytes`. A GPU type the card has no price for
  /// counts as $0 (HasGpuPrice tells).
  double PerSecond(const std::string& gpu_type, int gpu_count, double cpu,
                   std::uint64_t memory_bytes) const;
  bool HasGpuPrice(const std::string& gpu_type) const;
};

/// Money as a plan shows it: "$1,895.62" (to the cent, thousands grouped).
std::string FormatUsd(double usd);
/// Money that may be a few cents, as a budget shows it: under a dollar to a
/// hundredth of a cent ("$0.0512"), else as FormatUsd.
std::string FormatUsdFine(double usd);

}  // namespace core
