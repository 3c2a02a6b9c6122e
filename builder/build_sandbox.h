#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "core/result.h"

namespace builder {

/// One command of a `run` step, as the image builder hands it over.
struct SandboxCommand {
  std::string command;           // run by /bin/sh -c
  std::vector<std::string> env;  // "K=V", exactly the environment it gets
  std::string workdir = "/";     // inside the root; must exist
  std::string user;              // "" = root, or "uid[:gid]", numeric
  bool network = true;           // false: a network namespace of its own, loopback only (down)
};

/// What came back from a command.
struct SandboxResult {
  int exit_code = 0;   // the command's, or 128 + N when a signal N killed it
  std::string output;  // stdout and stderr interleaved; the last kMaxSandboxOutput bytes
};

/// The most output a SandboxResult keeps: the tail, where the errors are.
inline constexpr std::size_t kMaxSandboxOutput = 1 << 20;

/// Runs `command` inside `root` isolated from the host, so that what it
/// leaves in `root` can become a layer (TreeSnapshot before, DiffTree after):
/// - new mount, pid, ipc and uts namespaces (and network when
///   `network` is false); mounts are private, `root` is bind-mounted onto
///   itself and pivot_root'ed into, the host's tree detached;
/// - a fresh /proc (with /proc/sys, sysrq-trigger, irq, bus and fs read-only
///   and kcore, keys, timer_list, sched_debug masked), a tmpfs /dev holding
///   null, zero, full, random, urandom and tty bound from the host plus
///   fd/stdin/stdout/stderr links and /dev/shm; with network, the host's
///   /etc/resolv.conf bound read-only over the root's when the root has /etc;
/// - hostname "gantry-build", the environment exactly as given, the
///   workdir, the user (supplementary groups cleared; a uid without a gid
///   takes the primary group from the root's /etc/passwd, else 0), stdin
///   /dev/null;
/// - capabilities cut to Docker's default set less NET_RAW and MKNOD (no
///   mounts, no devices, no network administration, no module loading):
///   the command shares the host's user namespace, so these are what keeps
///   its root from being the host's.
/// The command is /bin/sh, pid 1 of its namespace: when it exits, whatever
/// it left running is killed. Mounts live in the command's own mount
/// namespace and go with it; mount points that `root` lacked (/proc, /dev,
/// /etc/resolv.conf) are made for the run and removed after it, and the
/// mtimes of their folders put back, so that the tree afterwards differs
/// only by what the command did.
///
/// Needs root (CAP_SYS_ADMIN) and Linux 5.12+. Fails with a clear error
/// when the root has no /bin/sh or no such workdir, or the user is not
/// numeric.
core::Result<SandboxResult> RunInRoot(const std::filesystem::path& root,
                                      const SandboxCommand& command);

}  // namespace builder
