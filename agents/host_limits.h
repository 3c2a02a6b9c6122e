#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/result.h"

namespace agents {

/// What this host lets containers have, found once at agent start. Hosts
/// differ (cgroup v1, v2 or hybrid; hard rlimits far below the usual
/// 1048576 on some CI machines; no overlayfs in some containers), and a
/// config.json that asks for more than the host allows makes runc fail, so
/// bundles are written against these limits and what had to be given up is
/// said once in the log (`degraded`).
struct HostLimits {
  enum class Cgroups { kV1, kV2, kHybrid, kNone };
  Cgroups cgroups = Cgroups::kNone;
  bool memory_limits = false;  // the memory controller is usable
  bool cpu_limits = false;     // the cpu controller is usable
  // Hard RLIMIT_NOFILE and RLIMIT_NPROC; UINT64_MAX when unlimited, 0 when
  // unknown (then bundles leave that rlimit out and runc's own applies).
  std::uint64_t nofile_hard = 0;
  std::uint64_t nproc_hard = 0;
  bool overlayfs = false;             // overlay mounts work here
  std::vector<std::string> degraded;  // one line per thing given up
};

/// What a container is given where the host allows it; bundles ask for
/// min(this, the host's hard limit).
inline constexpr std::uint64_t kContainerOpenFiles = 1048576;
inline constexpr std::uint64_t kContainerProcesses = 1048576;

/// Looks at this host: the cgroup layout by statfs of /sys/fs/cgroup
/// (cgroup2 there: v2; a tmpfs with cgroup v1 controllers: v1, and hybrid
/// when /sys/fs/cgroup/unified is cgroup2 as well), whether the memory and
/// cpu controllers can be used by runc's cgroupfs driver (v1: their
/// hierarchies are mounted and writable, cpu with CFS quotas; v2: listed in
/// cgroup.controllers of a writable root), the hard RLIMIT_NOFILE and
/// RLIMIT_NPROC of this process (which runc and its containers inherit), and
/// ProbeOverlay in the system's temporary folder. Never fails: what it
/// cannot find counts as missing and is said in `degraded`.
/// `roots_dir` is where container roots will be made: whether overlayfs
/// works depends on the file system under it (the default: the system's
/// temporary folder).
HostLimits DetectHostLimits(const std::filesystem::path& roots_dir = {});
const char* CgroupsName(HostLimits::Cgroups cgroups);

/// Whether an overlay mount can be made in `folder` (a real one, of empty
/// folders, unmounted and removed again): Ok, or an error saying why not
/// (not root, no overlay file system, a `folder` on a file system overlayfs
/// cannot use as upper). Probe the folder where container roots will live:
/// the answer depends on its file system.
core::Status ProbeOverlay(const std::filesystem::path& folder);

/// What an agent cannot run without, each missing part an error with its fix
/// in one line: root (containers, overlay mounts, cgroups) and the OCI
/// runtime `runtime` (a name looked up in PATH, or a path).
core::Status CheckHostRequirements(const std::filesystem::path& runtime);

}  // namespace agents
