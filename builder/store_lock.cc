#include "builder/store_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "core/lock_holder.h"
#include "core/random.h"
#include "core/unique_fd.h"

namespace builder {
namespace {

namespace fs = std::filesystem;

core::Error LockError(const std::string& what, const fs::path& path) {
  return core::Error{core::ErrorCode::kIo, what + ": " + std::strerror(errno),
                     core::Location{path.string(), 0, 0}};
}

fs::path LockPath(const ContentStore& store) {
  return store.PrivateDir() / "builds.lock";
}

fs::path HoldersDir(const ContentStore& store) {
  return store.PrivateDir() / "builds";
}

// The build lock, opened (and made, with its folders, when missing).
core::Result<core::UniqueFd> OpenLock(const ContentStore& store) {
  std::error_code error;
  fs::create_directories(HoldersDir(store), error);
  if (error) {
    return core::Error{core::ErrorCode::kIo, "cannot create the folder: " + error.message(),
                       core::Location{HoldersDir(store).string(), 0, 0}};
  }
  core::UniqueFd fd(open(LockPath(store).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd.valid()) return LockError("cannot open the lock file", LockPath(store));
  return fd;
}

// Each build's record: who is still running (its flock is held), removing
// the records of builds that died when `remove_stale`.
std::vector<std::string> RunningBuilds(const ContentStore& store, bool remove_stale) {
  std::vector<std::string> running;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(HoldersDir(store), error)) {
    core::UniqueFd fd(open(entry.path().c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd.valid()) continue;
    if (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      running.push_back(core::DescribeLockHolder(fd.get()));
    } else if (remove_stale) {
      fs::remove(entry.path(), error);
    }
  }
  return running;
}

}  // namespace

core::Result<StoreLock> StoreLock::ForBuild(const ContentStore& store) {
  auto lock = OpenLock(store);
  if (!lock) return lock.error();
  while (flock(lock->get(), LOCK_SH) != 0) {
    if (errno != EINTR) return LockError("cannot lock", LockPath(store));
  }
  auto suffix = core::RandomHex(8);
  if (!suffix) return suffix.error();
  fs::path holder = HoldersDir(store) / (std::to_string(getpid()) + "-" + *suffix);
  core::UniqueFd holder_fd(open(holder.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!holder_fd.valid()) return LockError("cannot create the build record", holder);
  if (flock(holder_fd.get(), LOCK_EX) != 0 ||
      !core::WriteLockHolder(holder_fd.get(), "build").ok()) {
    unlink(holder.c_str());
    return LockError("cannot write the build record", holder);
  }
  return StoreLock(std::move(lock).value(), std::move(holder_fd), holder);
}

core::Result<StoreLock> StoreLock::ForPrune(const ContentStore& store,
                                            std::optional<std::chrono::milliseconds> wait) {
  auto lock = OpenLock(store);
  if (!lock) return lock.error();
  core::Result<bool> locked = true;
  if (wait) {
    locked = core::FlockWithin(lock->get(), LOCK_EX, *wait);
  } else {
    while (flock(lock->get(), LOCK_EX) != 0) {
      if (errno != EINTR) return LockError("cannot lock", LockPath(store));
    }
  }
  if (!locked) return LockError("cannot lock", LockPath(store));
  if (!*locked) {
    std::vector<std::string> running = RunningBuilds(store, false);
    std::string who;
    for (const std::string& build : running) who += (who.empty() ? "" : ", ") + build;
    if (who.empty()) who = "a build that is ending";
    return core::Error{core::ErrorCode::kConflict,
                       "the store " + store.root().string() + " is in use by " + who +
                           "; prune again when it ends, or wait longer with --lock-timeout",
                       {}};
  }
  RunningBuilds(store, true);  // none runs now: every record left is a dead build's
  return StoreLock(std::move(lock).value(), core::UniqueFd(), {});
}

// The record goes first, while its flock still says it is ours; closing
// the descriptors then releases both flocks.
StoreLock::~StoreLock() {
  if (holder_fd_.valid()) unlink(holder_.c_str());
}

}  // namespace builder
