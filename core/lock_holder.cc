#include "core/lock_holder.h"

#include <date/date.h>
#include <limits.h>
#include <pwd.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

namespace core {
namespace {

using nlohmann::json;

constexpr std::chrono::milliseconds kLockPoll{50};

std::string HostName() {
  char name[HOST_NAME_MAX + 1] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "unknown";
  return name;
}

std::string UserName() {
  const passwd* user = getpwuid(geteuid());
  return user != nullptr ? user->pw_name : "uid " + std::to_string(geteuid());
}

Error LockError(const std::string& what) {
  return Error{ErrorCode::kIo, what + ": " + std::strerror(errno), {}};
}

}  // namespace

Status WriteLockHolder(int fd, const std::string& operation) {
  std::string holder =
      json{{"operation", operation},
           {"pid", getpid()},
           {"hostname", HostName()},
           {"user", UserName()},
           {"since", date::format("%FT%TZ", std::chrono::floor<std::chrono::seconds>(
                                                std::chrono::system_clock::now()))}}
          .dump() +
      "\n";
  if (ftruncate(fd, 0) != 0) return LockError("cannot write the lock file");
  std::size_t written = 0;
  while (written < holder.size()) {
    ssize_t count =
        pwrite(fd, holder.data() + written, holder.size() - written, static_cast<off_t>(written));
    if (count < 0 && errno == EINTR) continue;
    if (count <= 0) return LockError("cannot write the lock file");
    written += static_cast<std::size_t>(count);
  }
  return Ok{};
}

std::string DescribeLockHolder(int fd) {
  std::string content(4096, '\0');
  ssize_t count = pread(fd, content.data(), content.size(), 0);
  content.resize(count > 0 ? static_cast<std::size_t>(count) : 0);
  json holder = json::parse(content, nullptr, false);
  if (holder.is_object() && holder.value("operation", json()).is_string() &&
      holder.value("pid", json()).is_number_integer() &&
      holder.value("hostname", json()).is_string() && holder.value("user", json()).is_string() &&
      holder.value("since", json()).is_string()) {
    return holder["operation"].get<std::string>() + " (pid " +
           std::to_string(holder["pid"].get<long long>()) + " on host " +
           holder["hostname"].get<std::string>() + ", user " + holder["user"].get<std::string>() +
           ", since " + holder["since"].get<std::string>() + ")";
  }
  return "another process (which has not said who it is yet)";
}

Result<bool> FlockWithin(int fd, int operation, std::chrono::milliseconds wait) {
  auto deadline = std::chrono::steady_clock::now() + wait;
  while (flock(fd, operation | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    if (errno != EWOULDBLOCK) return LockError("cannot lock");
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return false;
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(kLockPoll, deadline - now));
  }
  return true;
}

}  // namespace core
