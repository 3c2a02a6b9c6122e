#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agents/host_limits.h"
#include "core/result.h"

namespace agents {

/// A bind mount into a container (a volume, a GPU library folder, a driver
/// library a CDI spec names).
struct BindMount {
  BindMount() = default;
  BindMount(std::filesystem::path source, std::string destination, bool read_only = false,
            std::vector<std::string> options = {})
      : source(std::move(source)),
        destination(std::move(destination)),
        read_only(read_only),
        options(std::move(options)) {}

  std::filesystem::path source;
  std::string destination;
  bool read_only = false;
  /// The mount's options as given ("ro", "nosuid", "nodev", "bind"), as CDI
  /// specs say them; "rbind" is added when neither "bind" nor "rbind" is
  /// there, "ro" when read_only. Empty: "rbind" (and "ro").
  std::vector<std::string> options;
};

/// A device node a container gets: made by the runtime at `path` inside the
/// container and allowed in its device cgroup. What is not given is taken
/// from the node at `host_path` on this host (CDI's deviceNodes: `path`,
/// `hostPath`, `type`, `major`, `minor`, `fileMode`, `permissions`, `uid`,
/// `gid`).
struct DeviceNode {
  std::string path;                   // in the container, absolute
  std::filesystem::path host_path;    // on the host; empty: `path`
  std::string type;                   // "c", "b", "u" or "p"; empty: the host node's
  std::optional<std::int64_t> major;  // with minor; both absent: the host node's
  std::optional<std::int64_t> minor;
  std::optional<std::uint32_t> file_mode;  // absent: the host node's (its permission bits)
  std::optional<std::uint32_t> uid;        // absent: the host node's owner
  std::optional<std::uint32_t> gid;
  std::string permissions = "rwm";  // the device cgroup's access
};

/// When an OCI hook runs (runtime-spec config.md, "POSIX-platform Hooks").
enum class HookStage {
  kPrestart,         // deprecated by the runtime spec, still run by runc
  kCreateRuntime,    // after the namespaces are made, in the runtime's namespace
  kCreateContainer,  // in the container's namespaces, before pivot_root
  kStartContainer,   // in the container, before the process runs
  kPoststart,        // after the process started
  kPoststop,         // after the container is deleted
};

/// The key of `stage` in config.json's `hooks` ("createContainer").
const char* HookStageName(HookStage stage);

/// A program the runtime runs at `stage` of a container's life, with the
/// container's state on its stdin (CDI's hooks: `nvidia-cdi-hook
/// update-ldcache` refreshes the container's linker cache once the driver's
/// libraries are mounted in).
struct Hook {
  HookStage stage = HookStage::kCreateContainer;
  std::string path;               // absolute, on the host
  std::vector<std::string> args;  // args[0] is the program's name
  std::vector<std::string> env;   // "KEY=VALUE"; the hook's whole environment
  std::optional<int> timeout_seconds;
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
  std::vector<DeviceNode> device_nodes;        // nodes with more said about them (CDI)
  std::vector<Hook> hooks;                     // in the order each stage runs them
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
/// /tmp, then `spec.mounts` (rbind, ro when read_only, or their own
/// options); Docker's default capability set; noNewPrivileges; masked and read-only paths as runc's
/// default; rlimits clamped to the host's hard limits (kContainerOpenFiles
/// and kContainerProcesses, soft == hard; left out where the host's is
/// unknown); memory and CPU limits only where the host's cgroups allow;
/// pid, ipc, uts, mount and a new, empty network namespace; the device
/// cgroup denying all but null, zero, full, random, urandom, tty, ptmx,
/// the pts, `spec.devices` (numbers, mode and owner from the host's
/// nodes; a device that cannot be found is left out: WriteBundle refuses
/// it) and `spec.device_nodes` (what they leave out taken from the host's
/// node; one whose type or numbers are neither given nor found is left out
/// too; one at the same container path as a `spec.devices` entry replaces
/// it); `hooks` by stage, when there are any. No hostname when
/// `spec.hostname` is empty (the host's then).
nlohmann::json RuntimeConfig(const ContainerSpec& spec, const HostLimits& limits);

/// Writes `bundle`/config.json for `spec`, making `bundle` if
/// needed. Refuses an id runc would refuse, a relative rootfs, no args,
/// devices that are not device nodes on this host, device nodes with a
/// relative path, a bad type or nothing to tell their type and numbers
/// from, and hooks with a relative path or a timeout that is not positive.
core::Status WriteBundle(const std::filesystem::path& bundle, const ContainerSpec& spec,
                         const HostLimits& limits);

}  // namespace agents
