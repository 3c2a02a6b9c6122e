#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace core {

/// Where a child's stdout or stderr goes.
struct Output {
  enum class Kind { kNull, kFile, kCapture };
  Kind kind = Kind::kNull;
  std::filesystem::path file;           // kFile: created (truncated), mode 0644; kCapture: the copy
  std::size_t capture_limit = 1 << 20;  // kCapture: bytes kept; the rest is read and dropped
  /// kCapture: also handed each piece of the bytes kept as it comes, on the
  /// pump's thread (a container's output logged line by line as it is
  /// written); it must not block for long, nor call back into the Subprocess.
  std::function<void(std::string_view)> on_data;

  /// /dev/null.
  static Output Null() { return {Kind::kNull, {}, 0, nullptr}; }
  /// A file, created or truncated. stdout and stderr naming the same path
  /// share one open file, so that their lines interleave as written.
  static Output File(std::filesystem::path path) {
    return {Kind::kFile, std::move(path), 0, nullptr};
  }
  /// A string in the parent: the first `limit` bytes are kept, and the child
  /// is never blocked by a full pipe however much it writes.
  static Output Capture(std::size_t limit = 1 << 20) {
    return {Kind::kCapture, {}, limit, nullptr};
  }
  /// Capture(limit), the bytes kept also written to `path` (created,
  /// truncated, mode 0644) as they come: a bounded file that can be read
  /// while the child runs (a running job's output, followed).
  static Output CaptureToFile(std::filesystem::path path, std::size_t limit) {
    return {Kind::kCapture, std::move(path), limit, nullptr};
  }
};

/// What to run and how to wire it.
struct SubprocessOptions {
  /// argv[0] is the program: a path, or a bare name looked up in the PATH
  /// of `env` (else /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin).
  std::vector<std::string> argv;
  /// Exactly the child's environment ("KEY=VALUE"); nothing is inherited.
  std::vector<std::string> env;
  /// Written to the child's stdin, which is then closed; nullopt: /dev/null.
  std::optional<std::string> stdin_data;
  Output stdout_to;
  Output stderr_to;
  /// The child gets a mount namespace of its own with every mount made
  /// private, so that what it mounts goes when it ends. Where that cannot be
  /// made (no CAP_SYS_ADMIN) it runs anyway and a note says so on its stderr.
  bool private_mount_namespace = false;
  /// The child leads a process group of its own, so that a terminal's
  /// Ctrl-C (sent to the whole foreground group) reaches gantry, which stops
  /// it in order, and not the child directly: what the agent runs (runc and
  /// the containers under it) when `gantry up` or `gantry agent` runs in a
  /// terminal.
  bool own_process_group = false;
};

/// How a child ended.
struct ProcessExit {
  int code = 0;    // its exit status, or 128 + the signal that killed it (as shells say)
  int signal = 0;  // the signal that killed it; 0 when it exited
};

/// The program `name` names, as Subprocess::Start runs it: itself when it
/// has a '/', else the first executable of that name in the PATH of `env`
/// (or the default search path). kNotFound says it is not installed.
Result<std::string> ResolveProgram(const std::string& name, const std::vector<std::string>& env);

/// Blocks SIGPIPE in the calling thread (a cheap no-op after the first
/// call in it): a write to a pipe or socket whose reader is gone then fails
/// with EPIPE instead of ending the process. Children that Subprocess starts
/// begin with no signal blocked.
void BlockPipeSignalInThisThread();

/// One child process, owned: started by Start, reaped by Wait or by the
/// destructor, which kills it (SIGKILL) and waits when it is still running,
/// so that no child outlives its owner unnoticed. Use it for every program
/// gantry runs (debootstrap, runc): it is the one place that gets the
/// fork/exec details right.
///
/// Everything the child needs (argv, envp, open files, pipes) is prepared
/// before the child is made, as posix_spawn makes it: a clone sharing the
/// parent's memory (no copy of a large process's address space), the
/// calling thread waiting until the exec. Between the two the child makes
/// only async-signal-safe system calls and writes only its own stack: it
/// resets signal handlers and mask, wires fds 0-2, marks every other
/// descriptor close-on-exec and execs. A failed exec is reported
/// by Start as an error, not as an exit code.
///
/// stdin data and captured output go through one pump thread (poll), so a
/// large input and a chatty child cannot deadlock each other. Output written
/// after the child is reaped by processes it left behind is not captured.
/// Moving a Subprocess is safe while its pump runs.
class Subprocess {
 public:
  static Result<Subprocess> Start(SubprocessOptions options);

  Subprocess(Subprocess&& other) noexcept;
  Subprocess& operator=(Subprocess&& other) noexcept;
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  ~Subprocess();

  pid_t pid() const;

  /// Waits until the child ends, or `timeout` passes: true when it ended
  /// (then exit(), stdout_text() and stderr_text() are final), false when
  /// the timeout passed first. Once ended, further calls return true at once.
  /// A `wake_fd` (>= 0) is polled beside the child: once it is readable,
  /// Wait returns false as at the timeout (a StopFlag's fd: a stop asked for
  /// while it sleeps).
  Result<bool> Wait(std::optional<std::chrono::milliseconds> timeout = std::nullopt,
                    int wake_fd = -1);

  /// Sends `signal` to the child; a child that has already ended is fine.
  Status Signal(int signal);

  bool ended() const;
  /// How it ended: only after Wait returned true.
  const ProcessExit& exit() const;
  /// What a kCapture stdout or stderr received.
  const std::string& stdout_text() const;
  const std::string& stderr_text() const;

 private:
  struct State;
  explicit Subprocess(std::unique_ptr<State> state);
  /// Kills (SIGKILL) and reaps a child still running; stops the pump.
  void Finish();

  std::unique_ptr<State> state_;
};

/// Runs a child to its end (or until `timeout`, when it is killed with
/// SIGKILL): its exit and captured output. A child killed at the timeout
/// reports code 137 and signal 9.
struct SubprocessResult {
  ProcessExit exit;
  bool timed_out = false;
  std::string stdout_text;
  std::string stderr_text;
};
Result<SubprocessResult> RunSubprocess(
    SubprocessOptions options, std::optional<std::chrono::milliseconds> timeout = std::nullopt);

}  // namespace core
