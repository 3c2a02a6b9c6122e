#include "agents/host_info.h"

#include <limits.h>
#include <openssl/rand.h>
#include <sched.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <system_error>

#include "core/atomic_file.h"
#include "core/cpus.h"
#include "core/random.h"
#include "core/text.h"

namespace agents {
namespace {

/// A host id is 16 random bytes, written as 32 lowercase hex digits.
constexpr std::size_t kHostIdBytes = 16;

bool IsHostId(std::string_view text) {
  return text.size() == 2 * kHostIdBytes && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

/// DATA_DIR/host-id's id, made and written on the first call. A file that
/// holds anything else is an error, not replaced: the planner knows the host
/// by that id, and a new one would make it a different host.
core::Result<std::string> LoadOrCreateHostId(const std::filesystem::path& data_dir) {
  std::filesystem::path path = data_dir / "host-id";
  auto content = core::ReadFile(path);
  if (content.ok()) {
    std::string_view id = core::TrimSpaces(*content);
    if (!IsHostId(id)) {
      return core::Error{core::ErrorCode::kParse,
                         "not a host id (32 lowercase hex digits); remove the file to make a new "
                         "one, and the planner will see a new host",
                         core::Location{path.string(), 0, 0}};
    }
    return std::string(id);
  }
  if (content.error().code != core::ErrorCode::kNotFound) return content.error();

  std::error_code error;
  std::filesystem::create_directories(data_dir, error);
  if (error) {
    return core::Error{core::ErrorCode::kIo, "cannot create the data folder: " + error.message(),
                       core::Location{data_dir.string(), 0, 0}};
  }
  auto id = core::RandomHex(kHostIdBytes);
  if (!id.ok()) return id.error();
  if (auto written = core::WriteFileAtomically(path, *id + "\n"); !written.ok()) {
    return written.error();
  }
  return id;
}

std::string Hostname() {
  char name[HOST_NAME_MAX + 1] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "";
  return name;
}

/// The host's physical memory: sysconf, or MemTotal in /proc/meminfo.
std::uint64_t PhysicalMemory() {
  long pages = sysconf(_SC_PHYS_PAGES);
  long page_size = sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && page_size > 0) {
    return static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page_size);
  }
  std::ifstream meminfo("/proc/meminfo");
  std::string line;
  while (std::getline(meminfo, line)) {
    std::istringstream fields(line);
    std::string key;
    std::uint64_t kib = 0;
    if (fields >> key >> kib && key == "MemTotal:") return kib * 1024;
  }
  return 0;
}

std::string KernelRelease() {
  struct utsname names {};
  if (uname(&names) != 0) return "";
  return names.release;
}

}  // namespace

core::Result<HostInfo> DetectHost(const std::filesystem::path& data_dir) {
  auto id = LoadOrCreateHostId(data_dir);
  if (!id.ok()) return id.error();
  HostInfo info;
  info.host_id = std::move(id).value();
  info.hostname = Hostname();
  info.cpus = core::UsableCpus();
  info.memory_bytes = PhysicalMemory();
  info.kernel = KernelRelease();
  return info;
}

}  // namespace agents
