#pragma once

#include <cstdint>
#include <vector>

namespace bench {

/// Latencies of one kind, in milliseconds, and the figures a bench prints
/// of them.
struct LatencySample {
  std::vector<double> ms;

  /// Nearest rank: the smallest value with at least `fraction` of them at or below it.
  double Percentile(double fraction) const;
  double Mean() const;
  double Max() const;
};

/// A positive number a bench takes from the environment (GANTRY_BENCH_CALLS),
/// or `fallback` when it is unset; exits with a message when it is not a
/// positive number.
std::uint64_t EnvNumber(const char* name, std::uint64_t fallback);

/// The median of a bench's runs (the mean of the middle two for an even count).
double Median(std::vector<double> values);

}  // namespace bench
