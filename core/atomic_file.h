#pragma once

#include <filesystem>
#include <string_view>

#include "core/result.h"

namespace core {

/// Replaces `path` with `content` so that a crash leaves either the old file
/// or the new one, never a torn mix: the bytes go to a temporary file in the
/// same folder, which is fsynced, renamed over `path`, and the folder fsynced.
/// The file is created with `mode` (before the umask): 0600 for a file only
/// its owner may read, from its first byte.
Status WriteFileAtomically(const std::filesystem::path& path, std::string_view content,
                           unsigned mode = 0644);

/// fsync of a file or folder by path (for a folder: makes renames in it durable).
Status SyncPath(const std::filesystem::path& path);

/// Writes `content` to a new file `path` that only its owner may read (mode
/// 0600) and that never exists with less than all of its content: it is
/// written and fsynced under a temporary name made with mode 0600, then
/// linked to `path`, which fails if `path` exists. False when it did: another
/// process made it first, and that file is left as it is.
Result<bool> CreatePrivateFile(const std::filesystem::path& path, std::string_view content);

/// The whole content of a file.
Result<std::string> ReadFile(const std::filesystem::path& path);

/// An exclusive advisory lock (flock) on a lock file, held while the object
/// lives: serialises writers of a shared store across processes.
class FileLock {
 public:
  static Result<FileLock> Acquire(const std::filesystem::path& path);
  FileLock(FileLock&& other) noexcept;
  FileLock& operator=(FileLock&& other) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock();

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace core
