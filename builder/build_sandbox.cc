#include "builder/build_sandbox.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/keyctl.h>
#include <linux/openat2.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>
#include <sstream>
#include <utility>

#include "core/unique_fd.h"

namespace builder {
namespace {

using core::UniqueFd;

constexpr char kHostname[] = "gantry-build";
constexpr char kNoShell[] =
    "the image has no /bin/sh: run steps need a shell; add one (e.g. busybox) in an earlier step";

core::Error SandboxError(core::ErrorCode code, const std::string& message) {
  return core::Error{code, message, {}};
}

core::Error ErrnoError(const std::string& what) {
  return SandboxError(core::ErrorCode::kIo, what + ": " + std::strerror(errno));
}

/// openat2 with `root_fd` as `/`: symlinks resolve inside the root.
int OpenInRoot(int root_fd, const std::string& path, int flags) {
  struct open_how how {};
  how.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  std::size_t start = path.find_first_not_of('/');
  const char* name = start == std::string::npos ? "." : path.c_str() + start;
  for (int attempt = 0;; ++attempt) {
    long fd = syscall(SYS_openat2, root_fd, name, &how, sizeof how);
    if (fd < 0 && errno == EAGAIN && attempt < 16) continue;
    return static_cast<int>(fd);
  }
}

std::optional<std::uint32_t> ParseId(std::string_view text) {
  std::uint32_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size() ||
      value == UINT32_MAX) {
    return std::nullopt;
  }
  return value;
}

struct Credentials {
  uid_t uid = 0;
  gid_t gid = 0;
};

/// The primary group of `uid` in the root's /etc/passwd, if it is there.
std::optional<gid_t> PrimaryGroup(int root_fd, uid_t uid) {
  UniqueFd passwd(OpenInRoot(root_fd, "etc/passwd", O_RDONLY));
  if (!passwd.valid()) return std::nullopt;
  std::string content;
  std::array<char, 4096> buffer;
  ssize_t count = 0;
  while ((count = read(passwd.get(), buffer.data(), buffer.size())) > 0 &&
         content.size() < (1 << 20)) {
    content.append(buffer.data(), static_cast<std::size_t>(count));
  }
  std::istringstream lines(content);
  std::string line;
  while (std::getline(lines, line)) {
    // name:password:uid:gid:gecos:home:shell
    std::vector<std::string_view> fields;
    std::string_view rest = line;
    for (std::size_t colon;
         fields.size() < 4 && (colon = rest.find(':')) != std::string_view::npos;) {
      fields.push_back(rest.substr(0, colon));
      rest.remove_prefix(colon + 1);
    }
    if (fields.size() < 4) continue;
    if (ParseId(fields[2]) == uid) {
      if (auto gid = ParseId(fields[3])) return *gid;
    }
  }
  return std::nullopt;
}

core::Result<Credentials> ParseUser(int root_fd, const std::string& user) {
  Credentials credentials;
  if (user.empty()) return credentials;
  std::size_t colon = user.find(':');
  auto uid = ParseId(std::string_view(user).substr(0, colon));
  std::optional<std::uint32_t> gid;
  if (colon != std::string::npos) gid = ParseId(std::string_view(user).substr(colon + 1));
  if (!uid || (colon != std::string::npos && !gid)) {
    return SandboxError(
        core::ErrorCode::kInvalidArgument,
        "user \"" + user + "\" must be numeric: UID or UID:GID (names are not looked up)");
  }
  credentials.uid = *uid;
  credentials.gid = gid ? *gid : PrimaryGroup(root_fd, *uid).value_or(0);
  return credentials;
}

/// A mount point that the root lacked and the run made, with what it takes
/// to leave no trace: the folder it is in (held open, so that a command that
/// moves folders around cannot redirect the removal) and that folder's
/// mtime before and just after.
struct MadeMountPoint {
  UniqueFd parent;
  std::string name;
  std::string shown;  // "/etc/resolv.conf", for messages
  bool folder = false;
  ino_t inode = 0;
  struct timespec parent_mtime_before {};
  struct timespec parent_mtime_after {};
};

bool SameTime(const struct timespec& a, const struct timespec& b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

/// Makes sure `name` exists in `parent_fd` as a folder or a file to mount
/// onto; nothing when it is there but of another kind (or a symlink).
core::Result<bool> EnsureMountPoint(int parent_fd, const std::string& name,
                                    const std::string& shown, bool folder,
                                    std::vector<MadeMountPoint>* made) {
  struct stat info {};
  if (fstatat(parent_fd, name.c_str(), &info, AT_SYMLINK_NOFOLLOW) == 0) {
    return folder ? S_ISDIR(info.st_mode) : S_ISREG(info.st_mode);
  }
  if (errno != ENOENT) return ErrnoError("cannot inspect " + shown + " in the image");
  MadeMountPoint point;
  point.parent = UniqueFd(fcntl(parent_fd, F_DUPFD_CLOEXEC, 3));
  point.name = name;
  point.shown = shown;
  point.folder = folder;
  struct stat parent_info {};
  if (!point.parent.valid() || fstat(parent_fd, &parent_info) != 0)
    return ErrnoError("cannot inspect the image");
  point.parent_mtime_before = parent_info.st_mtim;
  if (folder) {
    if (mkdirat(parent_fd, name.c_str(), 0755) != 0)
      return ErrnoError("cannot create " + shown + " in the image");
  } else {
    int fd =
        openat(parent_fd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) return ErrnoError("cannot create " + shown + " in the image");
    close(fd);
  }
  if (fstatat(parent_fd, name.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0 ||
      fstat(parent_fd, &parent_info) != 0) {
    return ErrnoError("cannot inspect " + shown + " in the image");
  }
  point.inode = info.st_ino;
  point.parent_mtime_after = parent_info.st_mtim;
  made->push_back(std::move(point));
  return true;
}

/// Removes the mount points the run made, newest first, and puts their
/// folders' mtimes back where the command did not change them. The mounts
/// on them went with the command's mount namespace; the kernel may take a
/// moment to let go of them.
core::Status RemoveMountPoints(std::vector<MadeMountPoint>* made) {
  core::Status status = core::Ok{};
  for (auto point = made->rbegin(); point != made->rend(); ++point) {
    struct stat info {};
    if (fstatat(point->parent.get(), point->name.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0 ||
        info.st_ino != point->inode) {
      continue;  // the command removed or replaced it: what is there is its own
    }
    struct stat parent_info {};
    bool untouched = fstat(point->parent.get(), &parent_info) == 0 &&
                     SameTime(parent_info.st_mtim, point->parent_mtime_after);
    int removed = -1;
    for (int attempt = 0; attempt < 200; ++attempt) {
      removed =
          unlinkat(point->parent.get(), point->name.c_str(), point->folder ? AT_REMOVEDIR : 0);
      if (removed == 0 || errno != EBUSY) break;
      usleep(10000);
    }
    if (removed != 0) {
      if (status.ok())
        status = ErrnoError("cannot remove " + point->shown + ", made for the run step");
      continue;
    }
    if (untouched) {
      struct timespec times[2] = {{0, UTIME_OMIT}, point->parent_mtime_before};
      futimens(point->parent.get(), times);
    }
  }
  made->clear();
  return status;
}

/// The capabilities a run step keeps: Docker's default set without
/// CAP_MKNOD (a device node of the host's disk would be the host) and
/// CAP_NET_RAW (with the host's network, raw sockets see its traffic).
constexpr std::array<int, 12> kKeptCapabilities = {
    CAP_CHOWN,   CAP_DAC_OVERRIDE,     CAP_FOWNER,     CAP_FSETID,
    CAP_KILL,    CAP_SETGID,           CAP_SETUID,     CAP_SETPCAP,
    CAP_SETFCAP, CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT, CAP_AUDIT_WRITE,
};

/// Where a host file is bound into the sandbox's /dev.
struct DeviceNode {
  const char* host;
  const char* inside;
};
constexpr std::array<DeviceNode, 6> kDeviceNodes = {{
    {"/dev/null", "/dev/null"},
    {"/dev/zero", "/dev/zero"},
    {"/dev/full", "/dev/full"},
    {"/dev/random", "/dev/random"},
    {"/dev/urandom", "/dev/urandom"},
    {"/dev/tty", "/dev/tty"},
}};
constexpr std::array<const char*, 5> kReadOnlyProc = {"/proc/sys", "/proc/sysrq-trigger",
                                                      "/proc/irq", "/proc/bus", "/proc/fs"};
constexpr std::array<const char*, 5> kMaskedProcFiles = {
    "/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/proc/latency_stats"};
constexpr std::array<const char*, 2> kMaskedProcFolders = {"/proc/acpi", "/proc/scsi"};

/// Everything the forked processes need, made before fork: after it only
/// async-signal-safe calls are allowed (the builder may have threads).
struct ChildPlan {
  const char* root = nullptr;
  const char* workdir = nullptr;
  std::vector<char*> argv;
  std::vector<char*> envp;
  uid_t uid = 0;
  gid_t gid = 0;
  bool network = true;
  bool mount_resolv_conf = false;
  pid_t parent = 0;
  int output_fd = -1;  // write end
  int error_fd = -1;   // write end; close-on-exec, so exec closes it
};

/// Reports a setup failure up the error pipe as "WHAT PATH: REASON" and
/// ends the process; async-signal-safe.
[[noreturn]] void ChildFail(const ChildPlan& plan, const char* what, const char* path = nullptr) {
  int saved = errno;
  char message[512];
  std::size_t length = 0;
  auto append = [&](const char* text) {
    while (text != nullptr && *text != '\0' && length < sizeof message) message[length++] = *text++;
  };
  append(what);
  if (path != nullptr) {
    append(" ");
    append(path);
  }
  append(": ");
  const char* reason = strerrordesc_np(saved);
  append(reason != nullptr ? reason : "unknown error");
  ssize_t ignored = write(plan.error_fd, message, length);
  (void)ignored;
  _exit(125);
}

bool BindReadOnly(const char* path) {
  if (mount(path, path, nullptr, MS_BIND | MS_REC, nullptr) != 0) return errno == ENOENT;
  return mount(nullptr, path, nullptr,
               MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) == 0;
}

/// pid 1 of the new pid namespace: builds the sandbox's file system, becomes
/// the user and execs the shell.
[[noreturn]] void RunCommandAsInit(const ChildPlan& plan) {
  if (sethostname(kHostname, sizeof kHostname - 1) != 0) ChildFail(plan, "cannot set the hostname");
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    ChildFail(plan, "cannot make mounts private");

  // The host files bound inside are taken now, as detached mounts that
  // outlive the host's tree being unmounted below.
  std::array<int, kDeviceNodes.size()> devices;
  for (std::size_t i = 0; i < kDeviceNodes.size(); ++i) {
    devices[i] = open_tree(AT_FDCWD, kDeviceNodes[i].host, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  }
  int resolv_conf = -1;
  if (plan.mount_resolv_conf) {
    resolv_conf = open_tree(AT_FDCWD, "/etc/resolv.conf", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (resolv_conf < 0) ChildFail(plan, "cannot take", "/etc/resolv.conf");
    struct mount_attr read_only {};
    read_only.attr_set =
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    if (mount_setattr(resolv_conf, "", AT_EMPTY_PATH, &read_only, sizeof read_only) != 0) {
      ChildFail(plan, "cannot make read-only", "/etc/resolv.conf");
    }
  }

  if (mount(plan.root, plan.root, nullptr, MS_BIND | MS_REC, nullptr) != 0) {
    ChildFail(plan, "cannot bind-mount the image root", plan.root);
  }
  if (chdir(plan.root) != 0) ChildFail(plan, "cannot enter the image root", plan.root);
  // pivot_root(".", "."): the host's tree ends up stacked over the new root,
  // where it is detached; nothing of the host remains reachable.
  if (syscall(SYS_pivot_root, ".", ".") != 0) ChildFail(plan, "cannot pivot_root into", plan.root);
  if (umount2(".", MNT_DETACH) != 0) ChildFail(plan, "cannot detach the host's file system");
  if (chdir("/") != 0) ChildFail(plan, "cannot enter /");

  // From here on every path resolves inside the root, symlinks included.
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    ChildFail(plan, "cannot mount", "/proc");
  }
  for (const char* path : kReadOnlyProc) {
    if (!BindReadOnly(path)) ChildFail(plan, "cannot make read-only", path);
  }
  if (mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=65536k") != 0) {
    ChildFail(plan, "cannot mount", "/dev");
  }
  for (std::size_t i = 0; i < kDeviceNodes.size(); ++i) {
    if (devices[i] < 0) continue;  // the host has none (a container without a tty)
    int target = open(kDeviceNodes[i].inside, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (target < 0) ChildFail(plan, "cannot create", kDeviceNodes[i].inside);
    close(target);
    if (move_mount(devices[i], "", AT_FDCWD, kDeviceNodes[i].inside, MOVE_MOUNT_F_EMPTY_PATH) !=
        0) {
      ChildFail(plan, "cannot mount", kDeviceNodes[i].inside);
    }
    close(devices[i]);
  }
  const std::array<std::pair<const char*, const char*>, 4> links = {
      {{"/proc/self/fd", "/dev/fd"},
       {"/proc/self/fd/0", "/dev/stdin"},
       {"/proc/self/fd/1", "/dev/stdout"},
       {"/proc/self/fd/2", "/dev/stderr"}}};
  for (const auto& [target, link] : links) {
    if (symlink(target, link) != 0) ChildFail(plan, "cannot create", link);
  }
  if (mkdir("/dev/shm", 01777) != 0 || chmod("/dev/shm", 01777) != 0)
    ChildFail(plan, "cannot create", "/dev/shm");
  for (const char* path : kMaskedProcFiles) {
    if (mount("/dev/null", path, nullptr, MS_BIND, nullptr) != 0 && errno != ENOENT) {
      ChildFail(plan, "cannot mask", path);
    }
  }
  for (const char* path : kMaskedProcFolders) {
    if (mount("tmpfs", path, "tmpfs", MS_RDONLY, nullptr) != 0 && errno != ENOENT)
      ChildFail(plan, "cannot mask", path);
  }
  if (resolv_conf >= 0) {
    if (move_mount(resolv_conf, "", AT_FDCWD, "/etc/resolv.conf", MOVE_MOUNT_F_EMPTY_PATH) != 0) {
      ChildFail(plan, "cannot mount", "/etc/resolv.conf");
    }
    close(resolv_conf);
  }

  if (chdir(plan.workdir) != 0) ChildFail(plan, "cannot enter the workdir", plan.workdir);
  umask(022);
  int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null < 0 || dup2(null, STDIN_FILENO) < 0) ChildFail(plan, "cannot open", "/dev/null");
  if (dup2(plan.output_fd, STDOUT_FILENO) < 0 || dup2(plan.output_fd, STDERR_FILENO) < 0) {
    ChildFail(plan, "cannot redirect the output");
  }
  // No descriptor of the builder may reach the command: one open on a host
  // folder would be a way out of the root. The error pipe stays open until
  // the exec.
  if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
    ChildFail(plan, "cannot close the builder's files");

  // A session keyring of its own, not the builder's (kernels without keys
  // have nothing to hide).
  if (syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, nullptr) < 0 && errno != ENOSYS) {
    ChildFail(plan, "cannot create a session keyring");
  }

  // Capabilities: the bounding set first (it needs CAP_SETPCAP), then the
  // user, then what a root user keeps.
  for (int capability = 0; capability < 64; ++capability) {
    bool kept = false;
    for (int keep : kKeptCapabilities) kept = kept || keep == capability;
    if (kept) continue;
    if (prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0) {
      if (errno == EINVAL) break;  // past the kernel's last capability
      ChildFail(plan, "cannot drop capabilities");
    }
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0)
    ChildFail(plan, "cannot drop capabilities");
  if (setgroups(0, nullptr) != 0) ChildFail(plan, "cannot clear the supplementary groups");
  if (setgid(plan.gid) != 0) ChildFail(plan, "cannot set the group");
  if (setuid(plan.uid) != 0) ChildFail(plan, "cannot set the user");
  if (plan.uid == 0) {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    for (int keep : kKeptCapabilities) {
      data[keep / 32].effective |= 1u << (keep % 32);
      data[keep / 32].permitted |= 1u << (keep % 32);
      data[keep / 32].inheritable |= 1u << (keep % 32);
    }
    if (syscall(SYS_capset, &header, data) != 0) ChildFail(plan, "cannot set capabilities");
  }
  // Changing credentials cleared it; the shell dies with the sandbox.
  prctl(PR_SET_PDEATHSIG, SIGKILL);

  sigset_t all;
  sigemptyset(&all);
  sigprocmask(SIG_SETMASK, &all, nullptr);
  for (int signal_number = 1; signal_number < NSIG; ++signal_number) {
    if (signal_number != SIGKILL && signal_number != SIGSTOP) signal(signal_number, SIG_DFL);
  }
  execve("/bin/sh", plan.argv.data(), plan.envp.data());
  ChildFail(plan, "cannot run", "/bin/sh");
}

/// The first child: enters the new namespaces (a new pid namespace takes
/// effect for children only), forks pid 1, and exits as it did.
[[noreturn]] void RunSandbox(const ChildPlan& plan) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != plan.parent) _exit(125);
  int namespaces =
      CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | (plan.network ? 0 : CLONE_NEWNET);
  if (unshare(namespaces) != 0) ChildFail(plan, "cannot create the sandbox's namespaces");
  pid_t init = fork();
  if (init < 0) ChildFail(plan, "cannot fork");
  if (init == 0) RunCommandAsInit(plan);
  close(plan.output_fd);
  close(plan.error_fd);
  int status = 0;
  while (waitpid(init, &status, 0) < 0) {
    if (errno != EINTR) _exit(125);
  }
  _exit(WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status));
}

/// A pipe whose ends are not 0, 1 or 2 (so that dup2 onto them is never a
/// no-op that keeps close-on-exec).
bool MakePipe(UniqueFd* read_end, UniqueFd* write_end) {
  int ends[2];
  if (pipe2(ends, O_CLOEXEC) != 0) return false;
  UniqueFd first(ends[0]), second(ends[1]);
  *read_end = UniqueFd(fcntl(first.get(), F_DUPFD_CLOEXEC, 3));
  *write_end = UniqueFd(fcntl(second.get(), F_DUPFD_CLOEXEC, 3));
  return read_end->valid() && write_end->valid();
}

/// Reads `fd` to its end into `output`, keeping the last `limit` bytes.
void ReadAll(int fd, std::string* output, std::size_t limit) {
  std::array<char, 1 << 16> buffer;
  while (true) {
    ssize_t count = read(fd, buffer.data(), buffer.size());
    if (count < 0 && errno == EINTR) continue;
    if (count <= 0) break;
    output->append(buffer.data(), static_cast<std::size_t>(count));
    if (output->size() > 2 * limit) output->erase(0, output->size() - limit);
  }
  if (output->size() > limit) output->erase(0, output->size() - limit);
}

}  // namespace

core::Result<SandboxResult> RunInRoot(const std::filesystem::path& root,
                                      const SandboxCommand& command) {
  std::error_code error;
  std::filesystem::path absolute_root = std::filesystem::canonical(root, error);
  if (error) {
    return SandboxError(core::ErrorCode::kNotFound,
                        "no image root at " + root.string() + ": " + error.message());
  }
  UniqueFd root_fd(open(absolute_root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root_fd.valid()) return ErrnoError("cannot open the image root " + absolute_root.string());

  {
    UniqueFd shell(OpenInRoot(root_fd.get(), "bin/sh", O_PATH));
    struct stat info {};
    if (!shell.valid() || fstat(shell.get(), &info) != 0 || !S_ISREG(info.st_mode) ||
        (info.st_mode & 0111) == 0) {
      return SandboxError(core::ErrorCode::kInvalidArgument, kNoShell);
    }
  }
  auto credentials = ParseUser(root_fd.get(), command.user);
  if (!credentials) return credentials.error();
  const std::string workdir = command.workdir.empty() ? "/" : command.workdir;
  if (workdir.front() != '/') {
    return SandboxError(core::ErrorCode::kInvalidArgument,
                        "the workdir " + workdir + " must be an absolute path");
  }
  {
    UniqueFd folder(OpenInRoot(root_fd.get(), workdir, O_PATH | O_DIRECTORY));
    if (!folder.valid()) {
      return SandboxError(
          core::ErrorCode::kInvalidArgument,
          "the workdir " + workdir +
              (errno == ENOENT ? " does not exist in the image (create it in an earlier step)"
                               : std::string(" cannot be entered: ") + std::strerror(errno)));
    }
  }

  std::vector<MadeMountPoint> made;
  auto fail = [&made](core::Error error) -> core::Result<SandboxResult> {
    RemoveMountPoints(&made);
    return error;
  };
  for (const char* name : {"proc", "dev"}) {
    auto usable = EnsureMountPoint(root_fd.get(), name, std::string("/") + name, true, &made);
    if (!usable) return fail(usable.error());
    if (!*usable) {
      return fail(SandboxError(
          core::ErrorCode::kInvalidArgument,
          std::string("the image's /") + name + " is not a folder; run steps mount one there"));
    }
  }
  bool mount_resolv_conf = false;
  if (command.network && access("/etc/resolv.conf", R_OK) == 0) {
    // Only into an /etc the image has (resolved inside the root); a
    // resolv.conf there that is a symlink or a folder is left alone.
    UniqueFd etc(OpenInRoot(root_fd.get(), "etc", O_RDONLY | O_DIRECTORY));
    if (etc.valid()) {
      auto usable = EnsureMountPoint(etc.get(), "resolv.conf", "/etc/resolv.conf", false, &made);
      if (!usable) return fail(usable.error());
      mount_resolv_conf = *usable;
    }
  }

  std::string root_text = absolute_root.string();
  ChildPlan plan;
  plan.root = root_text.c_str();
  plan.workdir = workdir.c_str();
  std::string shell = "/bin/sh", dash_c = "-c", script = command.command;
  plan.argv = {shell.data(), dash_c.data(), script.data(), nullptr};
  std::vector<std::string> environment = command.env;
  for (std::string& variable : environment) plan.envp.push_back(variable.data());
  plan.envp.push_back(nullptr);
  plan.uid = credentials->uid;
  plan.gid = credentials->gid;
  plan.network = command.network;
  plan.mount_resolv_conf = mount_resolv_conf;
  plan.parent = getpid();

  UniqueFd output_read, output_write, error_read, error_write;
  if (!MakePipe(&output_read, &output_write) || !MakePipe(&error_read, &error_write)) {
    return fail(ErrnoError("cannot create a pipe"));
  }
  plan.output_fd = output_write.get();
  plan.error_fd = error_write.get();

  pid_t child = fork();
  if (child < 0) return fail(ErrnoError("cannot fork"));
  if (child == 0) RunSandbox(plan);
  output_write.Reset();
  error_write.Reset();

  SandboxResult result;
  ReadAll(output_read.get(), &result.output, kMaxSandboxOutput);
  std::string setup_error;
  ReadAll(error_read.get(), &setup_error, 4096);
  int status = 0;
  while (waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) return fail(ErrnoError("cannot wait for the run step"));
  }
  auto removed = RemoveMountPoints(&made);
  if (!setup_error.empty()) {
    return SandboxError(core::ErrorCode::kIo,
                        "cannot set up the run step's sandbox: " + setup_error);
  }
  if (!removed) return removed.error();
  result.exit_code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
  return result;
}

}  // namespace builder
