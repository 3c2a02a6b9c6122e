#pragma once

#include <atomic>

#include "core/result.h"
#include "core/unique_fd.h"

namespace core {

/// A stop asked of a thread that may be asleep in poll(): one thread sets
/// it, others read it between steps (IsSet) or wait on its fd() beside
/// their own descriptors, which turns readable once it is set. What stops a
/// running container (agents::RunOptions::stop): the runner sleeps until
/// runc ends, the timeout or the stop, and costs nothing while it waits.
/// Set once and for ever: setting it again changes nothing.
class StopFlag {
 public:
  /// Makes its eventfd. Where none can be made (no descriptors left) the
  /// flag still sets and reads, and fd() says why it cannot be waited on.
  StopFlag();
  StopFlag(const StopFlag&) = delete;
  StopFlag& operator=(const StopFlag&) = delete;

  /// Sets it and makes fd() readable; from any thread, any number of times.
  void Set();
  bool IsSet() const { return set_.load(); }
  /// An eventfd (close-on-exec, non-blocking) that turns readable when it
  /// is set and stays so (nothing reads it), or why it could not be made.
  Result<int> fd() const;

 private:
  std::atomic<bool> set_ = false;
  UniqueFd event_;
  int event_errno_ = 0;  // why event_ could not be made
};

}  // namespace core
