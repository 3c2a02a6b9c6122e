#include "agents/runtime_spec.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <optional>

#include "core/atomic_file.h"

namespace agents {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// Docker's default capabilities: enough for package managers and servers
// that drop privileges, none that reach the host (no SYS_ADMIN, NET_ADMIN,
// SYS_PTRACE, SYS_MODULE).
constexpr const char* kCapabilities[] = {
    "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
    "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
    "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
    "CAP_KILL",    "CAP_AUDIT_WRITE"};

// `runc spec`'s defaults (runc 1.1): what a container may not read or write
// under /proc and /sys even as root.
constexpr const char* kMaskedPaths[] = {
    "/proc/acpi",          "/proc/asound",     "/proc/kcore",       "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/sys/firmware",       "/proc/scsi"};
constexpr const char* kReadonlyPaths[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                          "/proc/sysrq-trigger"};

// The device nodes every container may use (the cgroup's allow list; runc
// creates the nodes themselves in the tmpfs /dev): null, zero, full, random,
// urandom, tty, ptmx and every pts (major 136, any minor: -1).
struct DeviceNumber {
  std::int64_t major;
  std::int64_t minor;
};
constexpr DeviceNumber kDefaultDevices[] = {{1, 3}, {1, 5}, {1, 7}, {1, 8},
                                            {1, 9}, {5, 0}, {5, 2}, {136, -1}};

// The CFS period; the quota is cpus times it. The kernel refuses quotas below 1ms.
constexpr std::int64_t kCpuPeriodMicros = 100000;
constexpr std::int64_t kMinCpuQuotaMicros = 1000;

// A host device node as a container gets it.
struct HostDevice {
  std::string path;
  std::string type;  // "c" or "b"
  std::int64_t major = 0;
  std::int64_t minor = 0;
  std::uint32_t mode = 0;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
};

// `path` as a device; an error when it is missing or not a device node.
core::Result<HostDevice> StatDevice(const fs::path& path) {
  struct stat info {};
  if (stat(path.c_str(), &info) != 0) {
    return core::Error{
        core::ErrorCode::kNotFound, "device " + path.string() + ": " + std::strerror(errno), {}};
  }
  if (!S_ISCHR(info.st_mode) && !S_ISBLK(info.st_mode)) {
    return core::Error{
        core::ErrorCode::kInvalidArgument, "device " + path.string() + " is not a device node", {}};
  }
  return HostDevice{path.string(),
                    S_ISCHR(info.st_mode) ? "c" : "b",
                    static_cast<std::int64_t>(major(info.st_rdev)),
                    static_cast<std::int64_t>(minor(info.st_rdev)),
                    static_cast<std::uint32_t>(info.st_mode & 0777),
                    info.st_uid,
                    info.st_gid};
}

json DeviceRule(const std::string& type, std::int64_t major, std::int64_t minor) {
  json rule = {{"allow", true}, {"type", type}, {"major", major}, {"access", "rwm"}};
  if (minor >= 0) rule["minor"] = minor;
  return rule;
}

// soft == hard == min(wanted, the host's hard limit); nothing where the
// host's limit is unknown (0), so that runc's own applies.
void AddRlimit(json& rlimits, const char* type, std::uint64_t wanted, std::uint64_t host_hard) {
  if (host_hard == 0) return;
  const std::uint64_t value = std::min(wanted, host_hard);
  rlimits.push_back({{"type", type}, {"hard", value}, {"soft", value}});
}

json Mounts(const ContainerSpec& spec) {
  json mounts = json::array({
      {{"destination", "/proc"}, {"type", "proc"}, {"source", "proc"}},
      {{"destination", "/dev"},
       {"type", "tmpfs"},
       {"source", "tmpfs"},
       {"options", {"nosuid", "strictatime", "mode=755", "size=65536k"}}},
      {{"destination", "/dev/pts"},
       {"type", "devpts"},
       {"source", "devpts"},
       {"options", {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}}},
      {{"destination", "/dev/shm"},
       {"type", "tmpfs"},
       {"source", "shm"},
       {"options", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}}},
      {{"destination", "/dev/mqueue"},
       {"type", "mqueue"},
       {"source", "mqueue"},
       {"options", {"nosuid", "noexec", "nodev"}}},
      {{"destination", "/sys"},
       {"type", "sysfs"},
       {"source", "sysfs"},
       {"options", {"nosuid", "noexec", "nodev", "ro"}}},
      {{"destination", "/tmp"},
       {"type", "tmpfs"},
       {"source", "tmpfs"},
       {"options", {"nosuid", "nodev", "mode=1777"}}},
  });
  for (const BindMount& bind : spec.mounts) {
    json options = {"rbind"};
    if (bind.read_only) options.push_back("ro");
    mounts.push_back({{"destination", bind.destination},
                      {"type", "bind"},
                      {"source", bind.source.string()},
                      {"options", options}});
  }
  return mounts;
}

json Resources(const ContainerSpec& spec, const HostLimits& limits,
               const std::vector<HostDevice>& devices) {
  json rules = json::array({{{"allow", false}, {"access", "rwm"}}});
  for (const DeviceNumber& device : kDefaultDevices)
    rules.push_back(DeviceRule("c", device.major, device.minor));
  for (const HostDevice& device : devices)
    rules.push_back(DeviceRule(device.type, device.major, device.minor));
  json resources = {{"devices", rules}};
  if (limits.memory_limits && spec.memory_bytes > 0)
    resources["memory"] = {{"limit", spec.memory_bytes}};
  if (limits.cpu_limits && spec.cpus > 0) {
    const auto quota = std::max(
        kMinCpuQuotaMicros, static_cast<std::int64_t>(std::llround(spec.cpus * kCpuPeriodMicros)));
    resources["cpu"] = {{"quota", quota}, {"period", kCpuPeriodMicros}};
  }
  return resources;
}

// The devices of `spec` that exist (RuntimeConfig cannot fail; WriteBundle
// reports the others).
std::vector<HostDevice> ExistingDevices(const ContainerSpec& spec) {
  std::vector<HostDevice> devices;
  for (const fs::path& path : spec.devices) {
    if (auto device = StatDevice(path)) devices.push_back(std::move(device).value());
  }
  return devices;
}

}  // namespace

std::string CgroupsPath(const std::string& id) {
  return std::string(kCgroupParent) + "/" + id;
}

json RuntimeConfig(const ContainerSpec& spec, const HostLimits& limits) {
  const std::vector<HostDevice> devices = ExistingDevices(spec);
  json capabilities = json::array();
  for (const char* capability : kCapabilities) capabilities.push_back(capability);
  json rlimits = json::array();
  AddRlimit(rlimits, "RLIMIT_NOFILE", kContainerOpenFiles, limits.nofile_hard);
  AddRlimit(rlimits, "RLIMIT_NPROC", kContainerProcesses, limits.nproc_hard);

  json process = {{"terminal", false},
                  {"user", {{"uid", spec.uid}, {"gid", spec.gid}}},
                  {"args", spec.args},
                  {"env", spec.env},
                  {"cwd", spec.cwd.empty() ? "/" : spec.cwd},
                  {"capabilities",
                   {{"bounding", capabilities},
                    {"effective", capabilities},
                    {"permitted", capabilities},
                    {"inheritable", json::array()},
                    {"ambient", json::array()}}},
                  {"rlimits", rlimits},
                  {"noNewPrivileges", true}};

  json linux_devices = json::array();
  for (const HostDevice& device : devices) {
    linux_devices.push_back({{"path", device.path},
                             {"type", device.type},
                             {"major", device.major},
                             {"minor", device.minor},
                             {"fileMode", device.mode},
                             {"uid", device.uid},
                             {"gid", device.gid}});
  }
  json namespaces = json::array();
  // network: a new, empty one (loopback only).
  for (const char* type : {"pid", "ipc", "uts", "mount", "network"})
    namespaces.push_back({{"type", type}});
  json masked = json::array();
  for (const char* path : kMaskedPaths) masked.push_back(path);
  json readonly = json::array();
  for (const char* path : kReadonlyPaths) readonly.push_back(path);

  json config = {{"ociVersion", "1.0.2"},
                 {"process", process},
                 {"root", {{"path", spec.rootfs.string()}, {"readonly", false}}},
                 {"mounts", Mounts(spec)},
                 {"linux",
                  {{"cgroupsPath", CgroupsPath(spec.id)},
                   {"namespaces", namespaces},
                   {"resources", Resources(spec, limits, devices)},
                   {"devices", linux_devices},
                   {"maskedPaths", masked},
                   {"readonlyPaths", readonly}}}};
  if (!spec.hostname.empty()) config["hostname"] = spec.hostname;
  return config;
}

core::Status WriteBundle(const fs::path& bundle, const ContainerSpec& spec,
                         const HostLimits& limits) {
  auto invalid = [&](const std::string& message) {
    return core::Error{
        core::ErrorCode::kInvalidArgument, "container " + spec.id + ": " + message, {}};
  };
  if (spec.id.empty() || !std::all_of(spec.id.begin(), spec.id.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' ||
               c == '+';
      })) {
    return invalid("a container id is letters, digits and _ - . + only");
  }
  if (!spec.rootfs.is_absolute())
    return invalid("the root " + spec.rootfs.string() + " is not absolute");
  if (spec.args.empty()) return invalid("no command to run");
  for (const fs::path& path : spec.devices) {
    auto device = StatDevice(path);
    if (!device) return invalid(device.error().message);
  }
  std::error_code error;
  fs::create_directories(bundle, error);
  if (error) {
    return core::Error{core::ErrorCode::kIo,
                       "cannot make the bundle folder " + bundle.string() + ": " + error.message(),
                       {}};
  }
  return core::WriteFileAtomically(bundle / "config.json",
                                   RuntimeConfig(spec, limits).dump(2) + "\n");
}

}  // namespace agents
