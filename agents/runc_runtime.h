#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace core {
class StopFlag;
class Subprocess;
struct SubprocessOptions;
}  // namespace core

namespace agents {

/// How a container's process ended.
struct ContainerExit {
  int exit_code = 0;       // the process's exit status, or 128+signal when killed
  bool timed_out = false;  // the timeout passed and it was stopped (SIGTERM, grace, SIGKILL)
  bool stopped = false;    // RunOptions::stop asked for it and it was stopped the same way
};

/// What one container run needs besides its bundle.
struct RunOptions {
  std::string stdin_data;             // written to its stdin, then closed
  std::filesystem::path stdout_file;  // its stdout, written (truncated) as it comes
  std::filesystem::path stderr_file;  // its stderr, likewise
  std::optional<std::chrono::milliseconds> timeout;
  std::chrono::milliseconds grace{std::chrono::seconds(10)};  // SIGTERM to SIGKILL
  /// Bytes of each stream kept in its file; the rest is read and dropped,
  /// so that a container cannot fill the agent's disk.
  std::size_t output_limit = std::size_t{16} << 20;
  /// Where runc writes the container's pid once it is created (its
  /// namespaces exist from then on); "" for none.
  std::filesystem::path pid_file;
  /// Each piece of its stdout and stderr (of the bytes kept) as it comes,
  /// on the thread that reads them: what logs its output line by line.
  std::function<void(std::string_view)> on_stdout;
  std::function<void(std::string_view)> on_stderr;
  /// Once set, the container is stopped as at its timeout (SIGTERM,
  /// grace, SIGKILL): Run sleeps on its fd, so that a stop is seen at once.
  const core::StopFlag* stop = nullptr;
};

/// A container runc knows of (`runc list`).
struct ContainerState {
  std::string id;
  std::string status;  // "created", "running", "stopped", "paused"
  int pid = 0;
  std::filesystem::path bundle;
};

/// Runs OCI bundles with runc (or crun: same command line), keeping runc's
/// state under a root of the agent's own (`runc --root`), so that a restarted
/// agent finds exactly the containers it left and no one else's. Every call
/// runs the binary as a child process with a clean environment; its stderr
/// ends up in the error when it fails.
class RuncRuntime {
 public:
  RuncRuntime(std::filesystem::path binary, std::filesystem::path state_root);

  /// `runc run --bundle BUNDLE ID` in the foreground until the container's
  /// process exits (or the timeout stops it), then deletes the container.
  /// runc passes its stdin, stdout and stderr to the container's process, so
  /// the files get exactly what the process writes (and, when runc cannot
  /// start it, runc's own message). runc's log goes to BUNDLE/runc.log
  /// (JSON lines): a failure to start is an error with what runc logged,
  /// a process that ran and failed is an exit code. At the timeout: `runc
  /// kill ID SIGTERM` (or SIGTERM to runc, which forwards it, when the
  /// container is not made yet), `grace`, then `runc kill --all ID SIGKILL`.
  /// Note a pid 1 ignores signals it has no handler for: a process that
  /// does not handle SIGTERM is stopped by the SIGKILL (exit code 137).
  core::Result<ContainerExit> Run(const std::filesystem::path& bundle, const std::string& id,
                                  const RunOptions& options) const;
  /// `runc kill ID SIGNAL` (signal by number).
  core::Status Kill(const std::string& id, int signal) const;
  /// `runc delete --force ID`; a container that is already gone is fine.
  core::Status Delete(const std::string& id) const;
  core::Result<std::vector<ContainerState>> List() const;
  /// The binary's `--version` first line, for GET /v1/node.
  core::Result<std::string> Version() const;

 private:
  /// `runc --root STATE_ROOT ARGUMENTS...` with a clean environment (PATH
  /// only), stdout and stderr captured.
  core::SubprocessOptions Command(std::vector<std::string> arguments) const;
  /// Runs a short runc command to its end: its stdout, or an error with
  /// the command and what runc said on stderr.
  core::Result<std::string> Call(std::vector<std::string> arguments) const;
  /// `runc kill [--all] ID SIGNAL`.
  core::Status Signal(const std::string& id, int signal, bool all) const;
  /// SIGTERM, `grace`, SIGKILL to all of container `id` run by `runc`;
  /// whether runc ended (true unless waiting failed).
  core::Result<bool> Stop(const std::string& id, core::Subprocess& runc,
                          std::chrono::milliseconds grace) const;

  std::filesystem::path binary_;
  std::filesystem::path state_root_;
};

}  // namespace agents
