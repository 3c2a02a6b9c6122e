#include "agents/function_container.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <charconv>
#include <optional>
#include <sstream>

#include "agents/cdi_spec.h"
#include "builder/image_config.h"
#include "core/unique_fd.h"

namespace agents {
namespace {

namespace fs = std::filesystem;

/// "KEY=VALUE" entries with later keys replacing earlier ones in place.
void SetEnv(std::vector<std::string>* env, const std::string& entry) {
  std::string key = entry.substr(0, entry.find('='));
  for (std::string& existing : *env) {
    if (existing.substr(0, existing.find('=')) == key) {
      existing = entry;
      return;
    }
  }
  env->push_back(entry);
}

/// A uid or gid as written in `user` or /etc/passwd: decimal, and within 32 bits.
std::optional<std::uint32_t> ParseId(std::string_view text) {
  std::uint32_t id = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return id;
}

/// A file of a container's root, read with every path component resolved
/// inside the root (openat2 RESOLVE_IN_ROOT): an image's `etc` that is a
/// symlink to the host's /etc reads the image's own, or nothing.
std::string ReadInRoot(const fs::path& root, const char* relative) {
  core::UniqueFd root_fd(open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root_fd.valid()) return "";
  struct open_how how {};
  how.flags = O_RDONLY | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  core::UniqueFd fd(
      static_cast<int>(syscall(SYS_openat2, root_fd.get(), relative, &how, sizeof how)));
  if (!fd.valid()) return "";
  std::string text;
  char buffer[8192];
  for (ssize_t count;
       (count = read(fd.get(), buffer, sizeof buffer)) > 0 && text.size() < (1 << 20);) {
    text.append(buffer, static_cast<std::size_t>(count));
  }
  return text;
}

/// The uid and gid an image's `user` names: "UID[:GID]" or names looked up
/// in the image's own /etc/passwd (and /etc/group), as Docker does.
core::Result<std::pair<std::uint32_t, std::uint32_t>> ResolveUser(const fs::path& rootfs,
                                                                  const std::string& user) {
  if (user.empty()) return std::pair<std::uint32_t, std::uint32_t>{0, 0};
  std::string name = user.substr(0, user.find(':'));
  std::string group = user.find(':') == std::string::npos ? "" : user.substr(user.find(':') + 1);
  // The id (and, for passwd, the primary gid) of `wanted` in a passwd- or group-style file.
  auto lookup =
      [&](const char* file, const std::string& wanted, std::size_t id_field,
          std::size_t gid_field) -> std::optional<std::pair<std::uint32_t, std::uint32_t>> {
    if (!wanted.empty() && wanted.find_first_not_of("0123456789") == std::string::npos) {
      auto id = ParseId(wanted);
      if (!id) return std::nullopt;
      return std::pair{*id, *id};
    }
    std::istringstream lines(ReadInRoot(rootfs, file));
    for (std::string line; std::getline(lines, line);) {
      std::vector<std::string> fields;
      std::stringstream stream(line);
      for (std::string field; std::getline(stream, field, ':');) fields.push_back(field);
      if (fields.size() <= std::max(id_field, gid_field) || fields[0] != wanted) continue;
      auto id = ParseId(fields[id_field]);
      auto gid = ParseId(fields[gid_field]);
      if (!id || !gid) return std::nullopt;
      return std::pair{*id, *gid};
    }
    return std::nullopt;
  };
  auto found_user = lookup("etc/passwd", name, 2, 3);
  if (!found_user) {
    return core::Error{core::ErrorCode::kNotFound,
                       "the image's user \"" + name + "\" is neither a uid nor in its /etc/passwd",
                       {}};
  }
  if (group.empty()) return *found_user;
  auto found_group = lookup("etc/group", group, 2, 2);
  if (!found_group) {
    return core::Error{core::ErrorCode::kNotFound,
                       "the image's group \"" + group + "\" is neither a gid nor in its /etc/group",
                       {}};
  }
  return std::pair{found_user->first, found_group->first};
}

}  // namespace

core::Result<ContainerSpec> FunctionContainerSpec(
    const std::string& container_id, const fs::path& rootfs, const PreparedImage& image,
    const PreparedFunction& prepared, const ContainerInputs& inputs, const std::vector<Gpu>& gpus,
    bool pass_gpu_devices) {
  const FunctionState& function = prepared.function;
  ContainerSpec spec;
  spec.id = container_id;
  spec.rootfs = rootfs;
  const builder::ImageSettings& settings = image.settings;
  if (!function.command.empty()) {
    spec.args = function.command;
  } else {
    spec.args = settings.entrypoint;
    if (inputs.args.empty())
      spec.args.insert(spec.args.end(), settings.cmd.begin(), settings.cmd.end());
  }
  spec.args.insert(spec.args.end(), inputs.args.begin(), inputs.args.end());

  spec.env = {std::string("PATH=") + builder::kDefaultPath};
  for (const std::string& entry : settings.env) SetEnv(&spec.env, entry);
  for (const auto& [key, value] : function.env) SetEnv(&spec.env, key + "=" + value);
  for (const std::string& entry : prepared.secret_env) SetEnv(&spec.env, entry);
  for (const std::string& entry : inputs.env) SetEnv(&spec.env, entry);
  // GPU variables come last: a container cannot widen its view past its lease.
  // Real GPUs: the host's CDI spec for them (mounts, nodes, hooks, env) when it has one.
  core::Result<std::optional<CdiEdits>> cdi = std::optional<CdiEdits>();
  if (pass_gpu_devices) cdi = CdiEditsForGpus(gpus);
  if (!cdi) return cdi.error();  // a broken spec: the container fails naming the file
  if (*cdi) {
    ApplyCdiEdits(**cdi, &spec);
  } else {
    for (const std::string& entry : GpuEnv(gpus)) SetEnv(&spec.env, entry);
    if (pass_gpu_devices) spec.devices = GpuDeviceNodes(gpus);
  }
  spec.cwd = settings.workdir.empty() ? "/" : settings.workdir;
  auto user = ResolveUser(spec.rootfs, settings.user);
  if (!user) return user.error();
  spec.uid = user->first;
  spec.gid = user->second;
  spec.hostname = function.name;
  spec.memory_bytes = function.memory_bytes;
  spec.cpus = function.cpu;
  for (const auto& [mount, host_dir] : prepared.volume_dirs)
    spec.mounts.push_back({host_dir, mount, false});
  return spec;
}

UsageMeter MeterContainer(const ContainerParts& parts, const PreparedFunction& function,
                          const std::string& container_id, const std::string& call,
                          const std::vector<Gpu>& gpus) {
  MeteredContainer container;
  container.app = function.app;
  container.function = function.function.name;
  container.container = container_id;
  container.call = call;
  for (const Gpu& gpu : gpus) container.gpus.push_back(gpu.type);
  container.cpu = function.function.cpu;
  container.memory_bytes = function.function.memory_bytes;
  return UsageMeter(parts.ledger, container);
}

}  // namespace agents
