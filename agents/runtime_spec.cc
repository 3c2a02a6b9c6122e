#include "agents/runtime_spec.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <optional>

#include "core/atomic_file.h"
#include "core/unique_fd.h"

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

// A device node as a container gets it: `path` inside it, the rest as
// given or as the host's node has it.
struct HostDevice {
  std::string path;
  std::string type;  // "c", "b", "u" or "p"
  std::int64_t major = 0;
  std::int64_t minor = 0;
  std::optional<std::uint32_t> mode;
  std::optional<std::uint32_t> uid;
  std::optional<std::uint32_t> gid;
  std::string permissions = "rwm";
};

// `path` as a device; an error when it is missing or not a device node.
core::Result<HostDevice> StatDevice(const fs::path& path) {
  struct stat info {};
  if (stat(path.c_str(), &info) != 0) {
    return core::Error{
        core::ErrorCode::kNotFound, "device " + path.string() + ": " + std::strerror(errno), {}};
  }
  if (!S_ISCHR(info.st_mode) && !S_ISBLK(info.st_mode) && !S_ISFIFO(info.st_mode)) {
    return core::Error{
        core::ErrorCode::kInvalidArgument, "device " + path.string() + " is not a device node", {}};
  }
  HostDevice device;
  device.path = path.string();
  device.type = S_ISCHR(info.st_mode) ? "c" : S_ISBLK(info.st_mode) ? "b" : "p";
  if (device.type != "p") {
    device.major = static_cast<std::int64_t>(major(info.st_rdev));
    device.minor = static_cast<std::int64_t>(minor(info.st_rdev));
  }
  device.mode = static_cast<std::uint32_t>(info.st_mode & 0777);
  device.uid = info.st_uid;
  device.gid = info.st_gid;
  return device;
}

// A character or block device node on the host (the FIFOs StatDevice also
// reads are for CDI's device nodes only).
core::Result<HostDevice> StatDeviceNode(const fs::path& path) {
  auto device = StatDevice(path);
  if (device && device->type == "p") {
    return core::Error{
        core::ErrorCode::kInvalidArgument, "device " + path.string() + " is not a device node", {}};
  }
  return device;
}

bool IsDeviceType(const std::string& type) {
  return type == "c" || type == "b" || type == "u" || type == "p";
}

// `node` with what it leaves out taken from its host node. The host node is
// needed only when the type, or the numbers of a type that has them, are not
// given; mode and owner are taken from it when it is there.
core::Result<HostDevice> ResolveDeviceNode(const DeviceNode& node) {
  const fs::path host_path = node.host_path.empty() ? fs::path(node.path) : node.host_path;
  const bool needs_host = node.type.empty() || (node.type != "p" && !node.major);
  auto host = StatDevice(host_path);
  if (!host && needs_host) return host.error();
  HostDevice device;
  device.path = node.path;
  device.permissions = node.permissions.empty() ? "rwm" : node.permissions;
  if (host) {
    // "u" (unbuffered) is a character device to stat.
    const std::string wanted = node.type == "u" ? "c" : node.type;
    if (!node.type.empty() && wanted != host->type) {
      return core::Error{
          core::ErrorCode::kInvalidArgument,
          "device " + host_path.string() + " is of type " + host->type + ", not " + node.type,
          {}};
    }
    device.type = host->type;
    device.major = host->major;
    device.minor = host->minor;
    device.mode = host->mode;
    device.uid = host->uid;
    device.gid = host->gid;
  }
  if (!node.type.empty()) device.type = node.type;
  if (node.major) {
    device.major = *node.major;
    device.minor = node.minor.value_or(0);
  }
  if (node.file_mode) device.mode = *node.file_mode;
  if (node.uid) device.uid = *node.uid;
  if (node.gid) device.gid = *node.gid;
  return device;
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
    json options = json::array();
    auto has = [&](const char* option) {
      return std::find(bind.options.begin(), bind.options.end(), option) != bind.options.end();
    };
    if (!has("bind") && !has("rbind")) options.push_back("rbind");
    for (const std::string& option : bind.options) options.push_back(option);
    if (bind.read_only && !has("ro")) options.push_back("ro");
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
  for (const HostDevice& device : devices) {
    if (device.type == "p") continue;  // FIFOs are not the device cgroup's
    json rule = DeviceRule(device.type == "u" ? "c" : device.type, device.major, device.minor);
    rule["access"] = device.permissions;
    rules.push_back(std::move(rule));
  }
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

// The devices of `spec` that exist or are fully described (RuntimeConfig
// cannot fail; WriteBundle reports the others): `devices`, then
// `device_nodes`, one of those replacing an earlier device at its path.
std::vector<HostDevice> ExistingDevices(const ContainerSpec& spec) {
  std::vector<HostDevice> devices;
  for (const fs::path& path : spec.devices) {
    if (auto device = StatDeviceNode(path)) devices.push_back(std::move(device).value());
  }
  for (const DeviceNode& node : spec.device_nodes) {
    auto device = ResolveDeviceNode(node);
    if (!device) continue;
    std::erase_if(devices, [&](const HostDevice& earlier) { return earlier.path == node.path; });
    devices.push_back(std::move(device).value());
  }
  return devices;
}

json Hooks(const std::vector<Hook>& hooks) {
  json stages = json::object();
  for (const Hook& hook : hooks) {
    json entry = {{"path", hook.path}};
    if (!hook.args.empty()) entry["args"] = hook.args;
    if (!hook.env.empty()) entry["env"] = hook.env;
    if (hook.timeout_seconds) entry["timeout"] = *hook.timeout_seconds;
    stages[HookStageName(hook.stage)].push_back(std::move(entry));
  }
  return stages;
}

}  // namespace

const char* HookStageName(HookStage stage) {
  switch (stage) {
    case HookStage::kPrestart:
      return "prestart";
    case HookStage::kCreateRuntime:
      return "createRuntime";
    case HookStage::kCreateContainer:
      return "createContainer";
    case HookStage::kStartContainer:
      return "startContainer";
    case HookStage::kPoststart:
      return "poststart";
    case HookStage::kPoststop:
      return "poststop";
  }
  return "createContainer";
}

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
    json entry = {{"path", device.path}, {"type", device.type}};
    if (device.type != "p") {
      entry["major"] = device.major;
      entry["minor"] = device.minor;
    }
    if (device.mode) entry["fileMode"] = *device.mode;
    if (device.uid) entry["uid"] = *device.uid;
    if (device.gid) entry["gid"] = *device.gid;
    linux_devices.push_back(std::move(entry));
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
  if (!spec.hooks.empty()) config["hooks"] = Hooks(spec.hooks);
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
    auto device = StatDeviceNode(path);
    if (!device) return invalid(device.error().message);
  }
  for (const DeviceNode& node : spec.device_nodes) {
    if (!fs::path(node.path).is_absolute())
      return invalid("the device path \"" + node.path + "\" is not absolute");
    if (!node.type.empty() && !IsDeviceType(node.type))
      return invalid("device " + node.path + ": type \"" + node.type + "\" is none of c, b, u, p");
    if (node.permissions.find_first_not_of("rwm") != std::string::npos)
      return invalid("device " + node.path + ": permissions \"" + node.permissions +
                     "\" are not r, w and m");
    auto device = ResolveDeviceNode(node);
    if (!device) return invalid(device.error().message);
  }
  for (const Hook& hook : spec.hooks) {
    if (!fs::path(hook.path).is_absolute())
      return invalid("the hook \"" + hook.path + "\" is not an absolute path");
    if (hook.timeout_seconds && *hook.timeout_seconds <= 0)
      return invalid("the hook " + hook.path + " has a timeout that is not positive");
  }
  std::error_code error;
  fs::create_directories(bundle, error);
  if (error) {
    return core::Error{core::ErrorCode::kIo,
                       "cannot make the bundle folder " + bundle.string() + ": " + error.message(),
                       {}};
  }
  // Not fsynced: a bundle lives as long as its container, and an agent that
  // crashes removes both, so durability would only cost every call its time.
  // 0600: it holds the container's env, secrets included.
  {
    core::UniqueFd created(
        open((bundle / "config.json").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!created.valid()) {
      return core::Error{
          core::ErrorCode::kIo, "cannot create " + (bundle / "config.json").string(), {}};
    }
    fchmod(created.get(), 0600);
  }
  std::ofstream out(bundle / "config.json", std::ios::binary | std::ios::trunc);
  out << RuntimeConfig(spec, limits).dump(2) << "\n";
  out.close();
  if (!out)
    return core::Error{
        core::ErrorCode::kIo, "cannot write " + (bundle / "config.json").string(), {}};
  return core::Ok{};
}

}  // namespace agents
