#include "agents/host_limits.h"

#include <linux/magic.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "core/atomic_file.h"
#include "core/subprocess.h"

namespace agents {
namespace {

namespace fs = std::filesystem;

constexpr char kCgroupRoot[] = "/sys/fs/cgroup";

// The magic number of the file system mounted at `path`; 0 when none can be read.
long FileSystemType(const fs::path& path) {
  struct statfs info {};
  if (statfs(path.c_str(), &info) != 0) return 0;
  return static_cast<long>(info.f_type);
}

bool Writable(const fs::path& path) {
  return access(path.c_str(), W_OK) == 0;
}

bool Exists(const fs::path& path) {
  return access(path.c_str(), F_OK) == 0;
}

// A cgroup v1 controller's hierarchy runc's cgroupfs driver can make cgroups in.
bool V1ControllerUsable(const std::string& controller, const char* needed_file) {
  const fs::path hierarchy = fs::path(kCgroupRoot) / controller;
  return FileSystemType(hierarchy) == CGROUP_SUPER_MAGIC && Writable(hierarchy) &&
         Exists(hierarchy / needed_file);
}

bool V2ControllerUsable(const std::string& controller) {
  if (!Writable(kCgroupRoot)) return false;
  auto listed = core::ReadFile(fs::path(kCgroupRoot) / "cgroup.controllers");
  if (!listed) return false;
  std::istringstream words(*listed);
  for (std::string word; words >> word;) {
    if (word == controller) return true;
  }
  return false;
}

HostLimits::Cgroups DetectCgroups() {
  const long root_type = FileSystemType(kCgroupRoot);
  if (root_type == CGROUP2_SUPER_MAGIC) return HostLimits::Cgroups::kV2;
  if (root_type != TMPFS_MAGIC) return HostLimits::Cgroups::kNone;
  bool v1 = false;
  for (const char* controller : {"memory", "cpu", "cpuacct", "pids", "devices", "freezer"}) {
    if (FileSystemType(fs::path(kCgroupRoot) / controller) == CGROUP_SUPER_MAGIC) v1 = true;
  }
  bool unified = FileSystemType(fs::path(kCgroupRoot) / "unified") == CGROUP2_SUPER_MAGIC;
  if (v1 && unified) return HostLimits::Cgroups::kHybrid;
  if (v1) return HostLimits::Cgroups::kV1;
  return HostLimits::Cgroups::kNone;
}

// The hard limit of `resource`: UINT64_MAX when unlimited, 0 when unknown.
std::uint64_t HardLimit(int resource) {
  struct rlimit limit {};
  if (getrlimit(resource, &limit) != 0) return 0;
  if (limit.rlim_max == RLIM_INFINITY) return UINT64_MAX;
  return limit.rlim_max;
}

void SayRlimit(HostLimits& limits, const char* name, std::uint64_t hard, std::uint64_t wanted,
               const char* what) {
  if (hard == 0) {
    limits.degraded.push_back(std::string("hard ") + name + " unknown: containers get runc's own " +
                              what + " limit");
  } else if (hard < wanted) {
    limits.degraded.push_back(std::string("hard ") + name + " is " + std::to_string(hard) +
                              ": containers get " + std::to_string(hard) + " " + what + ", not " +
                              std::to_string(wanted));
  }
}

// The end of a probe: unmounts what is mounted and removes the folder.
class ProbeFolder {
 public:
  explicit ProbeFolder(fs::path path) : path_(std::move(path)) {}
  ~ProbeFolder() {
    if (mounted_) umount2((path_ / "merged").c_str(), MNT_DETACH);
    std::error_code ignored;  // a leftover empty probe folder is harmless
    fs::remove_all(path_, ignored);
  }
  ProbeFolder(const ProbeFolder&) = delete;
  ProbeFolder& operator=(const ProbeFolder&) = delete;
  const fs::path& path() const { return path_; }
  void set_mounted(bool mounted) { mounted_ = mounted; }

 private:
  fs::path path_;
  bool mounted_ = false;
};

}  // namespace

const char* CgroupsName(HostLimits::Cgroups cgroups) {
  switch (cgroups) {
    case HostLimits::Cgroups::kV1:
      return "v1";
    case HostLimits::Cgroups::kV2:
      return "v2";
    case HostLimits::Cgroups::kHybrid:
      return "hybrid";
    case HostLimits::Cgroups::kNone:
      return "none";
  }
  return "none";
}

core::Status ProbeOverlay(const fs::path& folder) {
  auto fail = [&](const std::string& why) {
    return core::Error{
        core::ErrorCode::kIo, "no overlay mounts in " + folder.string() + ": " + why, {}};
  };
  if (geteuid() != 0) return fail("overlay mounts need root");
  std::string pattern = (folder / ".gantry-overlay-probe-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) return fail(std::strerror(errno));
  ProbeFolder probe(pattern);
  std::error_code error;
  for (const char* part : {"lower", "upper", "work", "merged"})
    fs::create_directory(probe.path() / part, error);
  if (error) return fail(error.message());
  const std::string options = "lowerdir=" + (probe.path() / "lower").string() +
                              ",upperdir=" + (probe.path() / "upper").string() +
                              ",workdir=" + (probe.path() / "work").string();
  if (mount("overlay", (probe.path() / "merged").c_str(), "overlay", 0, options.c_str()) != 0)
    return fail(std::strerror(errno));
  probe.set_mounted(true);
  if (umount2((probe.path() / "merged").c_str(), 0) == 0) probe.set_mounted(false);
  return core::Ok{};
}

HostLimits DetectHostLimits(const fs::path& roots_dir) {
  HostLimits limits;
  limits.cgroups = DetectCgroups();
  switch (limits.cgroups) {
    case HostLimits::Cgroups::kV2:
      limits.memory_limits = V2ControllerUsable("memory");
      limits.cpu_limits = V2ControllerUsable("cpu");
      break;
    case HostLimits::Cgroups::kV1:
    case HostLimits::Cgroups::kHybrid:
      // runc's cgroupfs driver puts limits in the v1 hierarchies on hybrid hosts.
      limits.memory_limits = V1ControllerUsable("memory", "memory.limit_in_bytes");
      limits.cpu_limits = V1ControllerUsable("cpu", "cpu.cfs_quota_us");
      break;
    case HostLimits::Cgroups::kNone:
      limits.degraded.push_back(std::string("no cgroup file system at ") + kCgroupRoot +
                                ": runc may not be able to start containers");
      break;
  }
  if (!limits.memory_limits && limits.cgroups != HostLimits::Cgroups::kNone)
    limits.degraded.push_back("the memory cgroup controller is not usable: no memory limits");
  if (!limits.cpu_limits && limits.cgroups != HostLimits::Cgroups::kNone)
    limits.degraded.push_back("the cpu cgroup controller is not usable: no CPU limits");

  limits.nofile_hard = HardLimit(RLIMIT_NOFILE);
  limits.nproc_hard = HardLimit(RLIMIT_NPROC);
  SayRlimit(limits, "RLIMIT_NOFILE", limits.nofile_hard, kContainerOpenFiles, "open files");
  SayRlimit(limits, "RLIMIT_NPROC", limits.nproc_hard, kContainerProcesses, "processes");

  std::error_code error;
  fs::path probe_dir = roots_dir.empty() ? fs::temp_directory_path(error) : roots_dir;
  auto overlay = ProbeOverlay(error ? fs::path("/tmp") : probe_dir);
  limits.overlayfs = overlay.ok();
  if (!overlay)
    limits.degraded.push_back(overlay.error().message +
                              ": container roots are full copies of their layers");
  return limits;
}

core::Status CheckHostRequirements(const std::filesystem::path& runtime) {
  const std::string name = runtime.filename().string();
  if (geteuid() != 0) {
    return core::Error{core::ErrorCode::kUnavailable,
                       "the agent runs containers with " + name +
                           ", which needs root here: run gantry as root (sudo -E gantry ..., -E "
                           "keeps GANTRY_HOME)",
                       {}};
  }
  auto program = core::ResolveProgram(runtime.string(), {});
  if (!program || access(program->c_str(), X_OK) != 0) {
    return core::Error{core::ErrorCode::kNotFound,
                       runtime.string() +
                           " is not installed, and the agent runs containers with "
                           "it: apt-get install " +
                           name,
                       {}};
  }
  return core::Ok{};
}

}  // namespace agents
