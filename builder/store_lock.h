#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

#include "builder/content_store.h"
#include "core/result.h"
#include "core/unique_fd.h"

namespace builder {

/// Keeps `gantry cache prune` from removing what a running build is about
/// to reuse, and lets prune clean up after builds that died. Builds share
/// the store's build lock (`.gantry/builds.lock`, flock LOCK_SH) for their
/// whole run; prune holds it alone (LOCK_EX), so it runs only while no
/// build does, and whatever scratch roots it then finds in `.gantry/tmp`
/// were left by a build that was interrupted.
///
/// A build also holds (LOCK_EX) a file of its own, `.gantry/builds/PID-N`,
/// in which it writes who it is (core::WriteLockHolder), removed when it
/// ends: a prune that waited `--lock-timeout` in vain names every build
/// still running. A holder that died released both flocks, so stale files
/// never block anyone; prune removes them.
class StoreLock {
 public:
  /// Waits for a prune to finish, then holds the build lock until destroyed.
  static core::Result<StoreLock> ForBuild(const ContentStore& store);
  /// Holds the build lock alone, waiting up to `wait` (nullopt: as long as
  /// it takes) for running builds to end; then fails (kConflict) with "the store DIR is in use by
  /// build (pid 4242 on host build-1, user ana, since ...)". Removes the records of builds that
  /// died.
  static core::Result<StoreLock> ForPrune(const ContentStore& store,
                                          std::optional<std::chrono::milliseconds> wait);

  StoreLock(StoreLock&& other) noexcept = default;
  StoreLock& operator=(StoreLock&& other) = delete;
  StoreLock(const StoreLock&) = delete;
  StoreLock& operator=(const StoreLock&) = delete;
  ~StoreLock();

 private:
  StoreLock(core::UniqueFd lock, core::UniqueFd holder_fd, std::filesystem::path holder)
      : lock_(std::move(lock)), holder_fd_(std::move(holder_fd)), holder_(std::move(holder)) {}

  core::UniqueFd lock_;
  core::UniqueFd holder_fd_;      // a build's own record; none for prune
  std::filesystem::path holder_;  // its path
};

}  // namespace builder
