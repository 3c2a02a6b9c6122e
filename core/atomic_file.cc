#include "core/atomic_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "core/random.h"
#include "core/unique_fd.h"

namespace core {
namespace {

Error IoError(const std::string& what, const std::filesystem::path& path) {
  return Error{ErrorCode::kIo, what + ": " + std::strerror(errno), Location{path.string(), 0, 0}};
}

}  // namespace

Status SyncPath(const std::filesystem::path& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return IoError("cannot open to sync", path);
  int result = fsync(fd);
  close(fd);
  if (result != 0) return IoError("fsync failed", path);
  return Ok{};
}

Status WriteFileAtomically(const std::filesystem::path& path, std::string_view content,
                           unsigned mode) {
  std::filesystem::path folder = path.parent_path().empty() ? "." : path.parent_path();
  std::random_device random;
  std::filesystem::path temp =
      folder / ("." + path.filename().string() + ".tmp-" + std::to_string(random()));
  int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, static_cast<mode_t>(mode));
  if (fd < 0) return IoError("cannot create", temp);
  std::size_t written = 0;
  while (written < content.size()) {
    ssize_t count = write(fd, content.data() + written, content.size() - written);
    if (count < 0 && errno == EINTR) continue;
    if (count <= 0) {
      Error error = IoError("cannot write", temp);
      close(fd);
      unlink(temp.c_str());
      return error;
    }
    written += static_cast<std::size_t>(count);
  }
  if (fsync(fd) != 0) {
    Error error = IoError("fsync failed", temp);
    close(fd);
    unlink(temp.c_str());
    return error;
  }
  close(fd);
  if (rename(temp.c_str(), path.c_str()) != 0) {
    Error error = IoError("cannot rename into place", path);
    unlink(temp.c_str());
    return error;
  }
  return SyncPath(folder);
}

Result<std::string> ReadFile(const std::filesystem::path& path) {
  std::ifstream stream(path, std::ios::binary);
  if (!stream) {
    return Error{errno == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                 "cannot read: " + std::string(std::strerror(errno)),
                 Location{path.string(), 0, 0}};
  }
  std::ostringstream content;
  content << stream.rdbuf();
  return content.str();
}

Result<FileLock> FileLock::Acquire(const std::filesystem::path& path) {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return IoError("cannot open lock file", path);
  while (flock(fd, LOCK_EX) != 0) {
    if (errno == EINTR) continue;
    Error error = IoError("cannot lock", path);
    close(fd);
    return error;
  }
  return FileLock(fd);
}

FileLock::FileLock(FileLock&& other) noexcept : fd_(other.fd_) {
  other.fd_ = -1;
}

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

FileLock::~FileLock() {
  if (fd_ >= 0) close(fd_);  // closing releases the flock
}

namespace {

/// Removes a file when it goes out of scope, whatever happened before.
class RemoveOnExit {
 public:
  explicit RemoveOnExit(std::filesystem::path path) : path_(std::move(path)) {}
  RemoveOnExit(const RemoveOnExit&) = delete;
  RemoveOnExit& operator=(const RemoveOnExit&) = delete;
  ~RemoveOnExit() { unlink(path_.c_str()); }

 private:
  std::filesystem::path path_;
};

}  // namespace

Result<bool> CreatePrivateFile(const std::filesystem::path& path, std::string_view content) {
  std::filesystem::path folder = path.parent_path().empty() ? "." : path.parent_path();
  auto suffix = RandomHex(8);
  if (!suffix) return suffix.error();
  std::filesystem::path temp = folder / ("." + path.filename().string() + ".tmp-" + *suffix);

  UniqueFd fd(open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd.valid()) return IoError("cannot create", temp);
  RemoveOnExit remove_temp(temp);
  // The umask may have taken bits away from 0600; it can never have added any.
  if (fchmod(fd.get(), 0600) != 0) return IoError("cannot chmod 0600", temp);
  std::size_t written = 0;
  while (written < content.size()) {
    ssize_t count = write(fd.get(), content.data() + written, content.size() - written);
    if (count < 0 && errno == EINTR) continue;
    if (count <= 0) return IoError("cannot write", temp);
    written += static_cast<std::size_t>(count);
  }
  if (fsync(fd.get()) != 0) return IoError("fsync failed", temp);
  if (close(fd.release()) != 0) return IoError("cannot close", temp);
  if (link(temp.c_str(), path.c_str()) != 0) {
    if (errno == EEXIST) return false;
    return IoError("cannot link into place", path);
  }
  if (auto synced = SyncPath(folder); !synced.ok()) return synced.error();
  return true;
}

}  // namespace core
