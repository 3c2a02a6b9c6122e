#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "agents/host_limits.h"
#include "core/result.h"

namespace agents {

/// A bind mount into a container (a volume, a GPU library folder).
struct BindMount {
  std::filesystem::path source;
  std::string destination;
  bool read_only = false;
};

/// Everything one container needs, from which its OCI runtime-spec bundle
/// (config.json) is written.
struct ContainerSpec {
  std::string id;                // runc's container id
  std::filesystem::path rootfs;  // absolute
  std::vector<std::string> args;
  std::vector<std::string> env;  // "KEY=VALUE"
  std::string cwd = "/";
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::string hostname;
  std::uint64_t memory_bytes = 0;  // 0: no limit
  double cpus = 0;                 // 0: no limit; else a CFS quota
  std::vector<BindMount> mounts;
  std::vector<std::filesystem::path> devices;  // host device nodes to pass in (/dev/nvidia0)
};

/// The parent cgroup of every container, for runc's cgroupfs driver (no
/// systemd): /sys/fs/cgroup/CONTROLLER/gantry/ID on cgroup v1 and hybrid
/// hosts, /sys/fs/cgroup/gantry/ID on v2. Keeps gantry's containers apart
/// from the host's, where an operator sees (and can limit) them together.
inline constexpr char kCgroupParent[] = "/gantry";
/// linux.cgroupsPath of container `id`: "/gantry/ID".
std::string CgroupsPath(const std::string& id);

/// The runtime-spec config.json for `spec` on a host with `limits`: /proc,
/// /dev (tmpfs), /dev/pts, /dev/shm, /dev/mqueue, /sys read-only, a tmpfs
/// /tmp, then `spec.mounts` (rbind, ro when read_only); Docker's default
/// capability set; noNewPrivileges; masked and read-only paths as runc's
/// default; rlimits clamped to the host's hard limits (kContainerOpenFiles
/// and kContainerProcesses, soft == hard; left out where the host's is
/// unknown); memory and CPU limits only where the host's cgroups allow;
/// pid, ipc, uts, mount and a new, empty network namespace; the device
/// cgroup denying all but null, zero, full, random, urandom, tty, ptmx,
/// the pts and `spec.devices` (numbers, mode and owner from the host's
/// nodes; a device that cannot be found is left out: WriteBundle refuses
/// it). No hostname when `spec.hostname` is empty (the host's then).
nlohmann::json RuntimeConfig(const ContainerSpec& spec, const HostLimits& limits);

/// Writes `bundle`/config.json (atomically) for `spec`, making `bundle` if
/// needed. Refuses an id runc would refuse, a relative rootfs, no args, and
/// devices that are not device nodes on this host.
core::Status WriteBundle(const std::filesystem::path& bundle, const ContainerSpec& spec,
                         const HostLimits& limits);

}  // namespace agents
