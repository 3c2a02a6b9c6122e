#pragma once

#include <chrono>
#include <string>

#include "core/result.h"

namespace core {

/// Who holds a lock file: the holder writes it into the file it locks, so
/// that a process kept waiting can say whom it waits for. Uses: 1) the
/// planner's state lock (one apply or destroy per app); 2) the store's
/// build lock (builds share it, `gantry cache prune` takes it alone).

/// Writes who this process is over the content of `fd`, a lock file it
/// holds: `{"operation", "pid", "hostname", "user", "since"}`, one JSON line.
Status WriteLockHolder(int fd, const std::string& operation);

/// What a holder wrote into the lock file open as `fd` (read through the
/// reader's own descriptor), for an error: "apply (pid 4242 on host
/// build-1, user ana, since 2026-12-01T12:00:00Z)", or "another process
/// (which has not said who it is yet)".
std::string DescribeLockHolder(int fd);

/// flock(fd, `operation`: LOCK_SH or LOCK_EX), tried every 50 ms until
/// `wait` has passed: true once held, false when `wait` ran out (a `wait`
/// of zero tries once). An error for anything but the lock being held.
Result<bool> FlockWithin(int fd, int operation, std::chrono::milliseconds wait);

}  // namespace core
