#pragma once

#include <chrono>
#include <optional>

namespace toolchain {

/// SIGINT, SIGTERM and SIGHUP turned into something a verb waits for, so
/// that it stops in order (servers stop accepting, containers stop,
/// databases close) on Ctrl-C, `kill` or a closed terminal. The handler only
/// writes the signal's number to a pipe (the self-pipe trick): whichever
/// thread the kernel picks to take the signal, a library's included, the
/// waiting thread reads it there. A second signal while the first is being
/// dealt with ends the process at once, as an impatient Ctrl-C should.
/// One per process, made before the verb starts its work.
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  /// Waits for one of them; returns its number.
  int Wait() const;
  /// The one that arrived within `timeout`, if one did.
  std::optional<int> WaitFor(std::chrono::milliseconds timeout) const;
  /// Wakes Wait() as a SIGTERM would, without counting as one (a verb that
  /// ends on its own tells its waiting thread so).
  void Notify() const;
};

}  // namespace toolchain
