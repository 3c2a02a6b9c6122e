#include "core/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <sstream>
#include <thread>
#include <utility>

#include "core/unique_fd.h"

namespace core {
namespace {

namespace fs = std::filesystem;

constexpr char kDefaultSearchPath[] =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr std::size_t kPumpChunk = 1 << 16;

Error ErrnoError(const std::string& what) {
  return Error{ErrorCode::kIo, what + ": " + std::strerror(errno), {}};
}

// `fd` moved to a number above 2 (close-on-exec), so that wiring fds 0-2 in
// the child never overwrites one it still has to dup.
Result<UniqueFd> AboveStdio(UniqueFd fd) {
  if (fd.get() > 2) return fd;
  UniqueFd moved(fcntl(fd.get(), F_DUPFD_CLOEXEC, 3));
  if (!moved.valid()) return ErrnoError("cannot duplicate a descriptor");
  return moved;
}

struct Pipe {
  UniqueFd read;
  UniqueFd write;
};

Result<Pipe> MakePipe() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return ErrnoError("cannot make a pipe");
  Pipe pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
  auto read = AboveStdio(std::move(pipe.read));
  if (!read) return read.error();
  auto write = AboveStdio(std::move(pipe.write));
  if (!write) return write.error();
  return Pipe{std::move(read).value(), std::move(write).value()};
}

Result<UniqueFd> OpenFile(const fs::path& path, int flags, const std::string& what) {
  UniqueFd fd(open(path.c_str(), flags | O_CLOEXEC, 0644));
  if (!fd.valid()) return ErrnoError("cannot open " + path.string() + " for " + what);
  return AboveStdio(std::move(fd));
}

void SetNonBlocking(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

ProcessExit FromWaitStatus(int status) {
  if (WIFSIGNALED(status)) return {128 + WTERMSIG(status), WTERMSIG(status)};
  return {WEXITSTATUS(status), 0};
}

/// What the child is given: all of it made before the clone.
struct ChildPlan {
  const char* program;
  char* const* argv;
  char* const* envp;
  const int* stdio;  // three descriptors
  bool private_mount_namespace;
  bool own_process_group;
  int error_fd;
  int max_fd;
};

/// The stack the child runs on until its exec: what ExecChild needs, with
/// room to spare.
constexpr std::size_t kChildStackBytes = 256 << 10;

// The child's side, between clone and exec. It shares the parent's memory
// (CLONE_VM, as posix_spawn does), the parent's thread waiting until the
// exec: async-signal-safe calls only, and no writes but to its own stack.
[[noreturn]] void ExecChild(const ChildPlan& plan) {
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  for (int signal = 1; signal < NSIG; ++signal) sigaction(signal, &default_action, nullptr);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);

  int failure = 0;
  if (plan.own_process_group && setpgid(0, 0) != 0) failure = errno;
  for (int target = 0; target < 3 && failure == 0; ++target) {
    if (dup2(plan.stdio[target], target) < 0) failure = errno;
  }
  if (failure == 0 && plan.private_mount_namespace &&
      (unshare(CLONE_NEWNS) != 0 || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr))) {
    static const char kNote[] =
        "gantry: no mount namespace of its own; what it mounts stays on the host\n";
    (void)!write(2, kNote, sizeof kNote - 1);
  }
  if (failure == 0) {
    // Descriptors other threads opened without O_CLOEXEC must not leak.
    if (syscall(SYS_close_range, 3u, ~0u, 4u /* CLOSE_RANGE_CLOEXEC */) != 0) {
      for (int fd = 3; fd < plan.max_fd; ++fd) fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    execve(plan.program, plan.argv, plan.envp);
    failure = errno;
  }
  (void)!write(plan.error_fd, &failure, sizeof failure);
  _exit(127);
}

int StartChild(void* plan) {
  ExecChild(*static_cast<const ChildPlan*>(plan));
}

/// Starts the child of `plan` the way posix_spawn does: clone with the
/// parent's memory (CLONE_VM), this thread waiting until the child execs or
/// exits (CLONE_VFORK). A fork would copy the agent's address space first,
/// which grows with its threads (one mapping for each stack): 3.7 ms with
/// 256 idle threads, 8.6 ms with 512, against 0.9 ms with none, here. Every
/// signal is blocked meanwhile, so that no handler of the parent runs on
/// the child's stack before the child resets them. The child's pid, or -1.
pid_t CloneChild(const ChildPlan& plan) {
  std::unique_ptr<char[]> stack(new char[kChildStackBytes]);
  sigset_t all, before;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &before);
  pid_t pid = clone(StartChild, stack.get() + kChildStackBytes, CLONE_VM | CLONE_VFORK | SIGCHLD,
                    const_cast<ChildPlan*>(&plan));
  int clone_errno = errno;
  pthread_sigmask(SIG_SETMASK, &before, nullptr);
  errno = clone_errno;
  return pid;
}

}  // namespace

Result<std::string> ResolveProgram(const std::string& name, const std::vector<std::string>& env) {
  if (name.empty()) return Error{ErrorCode::kInvalidArgument, "no program to run", {}};
  if (name.find('/') != std::string::npos) return name;
  std::string search = kDefaultSearchPath;
  for (const std::string& variable : env) {
    if (variable.rfind("PATH=", 0) == 0) search = variable.substr(5);
  }
  std::istringstream folders(search);
  for (std::string folder; std::getline(folders, folder, ':');) {
    if (folder.empty()) continue;
    fs::path candidate = fs::path(folder) / name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return Error{ErrorCode::kNotFound, name + " is not installed (not found in " + search + ")", {}};
}

struct Subprocess::State {
  std::string program;
  pid_t pid = -1;
  UniqueFd pidfd;  // -1 where pidfd_open is missing: Wait then polls
  bool reaped = false;
  ProcessExit exit;

  // The pump's, until it is joined.
  UniqueFd stdin_write;
  std::string stdin_data;
  std::size_t stdin_written = 0;
  UniqueFd stdout_read;
  UniqueFd stderr_read;
  std::size_t stdout_limit = 0;
  std::size_t stderr_limit = 0;
  UniqueFd stdout_copy;  // Output::CaptureToFile's file, or invalid
  UniqueFd stderr_copy;
  std::function<void(std::string_view)> stdout_sink;  // Output::on_data, or empty
  std::function<void(std::string_view)> stderr_sink;
  std::string stdout_text;
  std::string stderr_text;
  Pipe wake;  // a byte written here tells the pump to drain what is left and stop
  std::thread pump;

  void Pump();
  void StopPump();
  // Reads all `fd` has now (it is non-blocking), keeping up to `limit`
  // bytes in `text` (and writing them to `copy` when it is open, handing
  // them to `sink` when it is set); closes it at its end.
  static void ReadInto(UniqueFd& fd, std::string& text, std::size_t limit, const UniqueFd& copy,
                       const std::function<void(std::string_view)>& sink);
};

void Subprocess::State::ReadInto(UniqueFd& fd, std::string& text, std::size_t limit,
                                 const UniqueFd& copy,
                                 const std::function<void(std::string_view)>& sink) {
  char buffer[kPumpChunk];
  while (fd.valid()) {
    ssize_t count = read(fd.get(), buffer, sizeof buffer);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0 && errno == EAGAIN) return;
    if (count <= 0) {
      fd.Reset();
      return;
    }
    std::size_t keep = std::min<std::size_t>(static_cast<std::size_t>(count),
                                             limit > text.size() ? limit - text.size() : 0);
    text.append(buffer, keep);
    for (std::size_t written = 0; copy.valid() && written < keep;) {
      ssize_t wrote = write(copy.get(), buffer + written, keep - written);
      if (wrote < 0 && errno == EINTR) continue;
      if (wrote <= 0) break;  // the copy is best effort; `text` has it all
      written += static_cast<std::size_t>(wrote);
    }
    if (sink && keep > 0) sink(std::string_view(buffer, keep));
  }
}

void BlockPipeSignalInThisThread() {
  thread_local bool blocked = false;
  if (blocked) return;
  sigset_t pipe_signal;
  sigemptyset(&pipe_signal);
  sigaddset(&pipe_signal, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_signal, nullptr);
  blocked = true;
}

void Subprocess::State::Pump() {
  // A child that exits without reading its stdin makes write() fail with
  // EPIPE, not end the process.
  BlockPipeSignalInThisThread();

  bool stopping = false;
  while (!stopping && (stdin_write.valid() || stdout_read.valid() || stderr_read.valid())) {
    std::vector<pollfd> polled = {{wake.read.get(), POLLIN, 0}};
    if (stdin_write.valid()) polled.push_back({stdin_write.get(), POLLOUT, 0});
    if (stdout_read.valid()) polled.push_back({stdout_read.get(), POLLIN, 0});
    if (stderr_read.valid()) polled.push_back({stderr_read.get(), POLLIN, 0});
    if (poll(polled.data(), polled.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (const pollfd& item : polled) {
      if (item.revents == 0) continue;
      if (item.fd == wake.read.get()) {
        stopping = true;
      } else if (item.fd == stdin_write.get()) {
        ssize_t count = write(stdin_write.get(), stdin_data.data() + stdin_written,
                              std::min(kPumpChunk, stdin_data.size() - stdin_written));
        if (count > 0) stdin_written += static_cast<std::size_t>(count);
        bool failed = count < 0 && errno != EINTR && errno != EAGAIN;
        if (failed || stdin_written == stdin_data.size()) stdin_write.Reset();
      } else if (item.fd == stdout_read.get()) {
        ReadInto(stdout_read, stdout_text, stdout_limit, stdout_copy, stdout_sink);
      } else if (item.fd == stderr_read.get()) {
        ReadInto(stderr_read, stderr_text, stderr_limit, stderr_copy, stderr_sink);
      }
    }
  }
  // The child is gone: what it wrote before is in the pipes; take it.
  stdin_write.Reset();
  ReadInto(stdout_read, stdout_text, stdout_limit, stdout_copy, stdout_sink);
  ReadInto(stderr_read, stderr_text, stderr_limit, stderr_copy, stderr_sink);
  stdout_read.Reset();
  stderr_read.Reset();
}

void Subprocess::State::StopPump() {
  if (!pump.joinable()) return;
  const char byte = 0;
  (void)!write(wake.write.get(), &byte, 1);
  pump.join();
}

Result<Subprocess> Subprocess::Start(SubprocessOptions options) {
  if (options.argv.empty()) return Error{ErrorCode::kInvalidArgument, "no program to run", {}};
  auto program = ResolveProgram(options.argv.front(), options.env);
  if (!program) return program.error();
  auto state = std::make_unique<State>();
  state->program = *program;

  // Everything the child touches is made here, before the clone.
  std::vector<char*> argv = {state->program.data()};
  for (std::size_t i = 1; i < options.argv.size(); ++i) argv.push_back(options.argv[i].data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (std::string& variable : options.env) envp.push_back(variable.data());
  envp.push_back(nullptr);

  UniqueFd child_stdio[3];
  if (options.stdin_data) {
    auto pipe = MakePipe();
    if (!pipe) return pipe.error();
    child_stdio[0] = std::move(pipe->read);
    if (!options.stdin_data->empty()) {
      state->stdin_write = std::move(pipe->write);
      state->stdin_data = std::move(*options.stdin_data);
      SetNonBlocking(state->stdin_write.get());
    }
  } else {
    auto null = OpenFile("/dev/null", O_RDONLY, "stdin");
    if (!null) return null.error();
    child_stdio[0] = std::move(null).value();
  }
  const Output* outputs[2] = {&options.stdout_to, &options.stderr_to};
  UniqueFd* reads[2] = {&state->stdout_read, &state->stderr_read};
  std::size_t* limits[2] = {&state->stdout_limit, &state->stderr_limit};
  UniqueFd* copies[2] = {&state->stdout_copy, &state->stderr_copy};
  std::function<void(std::string_view)>* sinks[2] = {&state->stdout_sink, &state->stderr_sink};
  for (int index = 0; index < 2; ++index) {
    const Output& output = *outputs[index];
    const char* what = index == 0 ? "stdout" : "stderr";
    UniqueFd fd;
    if (output.kind == Output::Kind::kCapture) {
      auto pipe = MakePipe();
      if (!pipe) return pipe.error();
      fd = std::move(pipe->write);
      *reads[index] = std::move(pipe->read);
      *limits[index] = output.capture_limit;
      *sinks[index] = output.on_data;
      SetNonBlocking(reads[index]->get());
      if (!output.file.empty()) {
        auto copy = OpenFile(output.file, O_WRONLY | O_CREAT | O_TRUNC, what);
        if (!copy) return copy.error();
        *copies[index] = std::move(copy).value();
      }
    } else if (index == 1 && output.kind == Output::Kind::kFile &&
               options.stdout_to.kind == Output::Kind::kFile &&
               output.file == options.stdout_to.file) {
      fd = UniqueFd(fcntl(child_stdio[1].get(), F_DUPFD_CLOEXEC, 3));
      if (!fd.valid()) return ErrnoError("cannot duplicate a descriptor");
    } else {
      auto opened = output.kind == Output::Kind::kFile
                        ? OpenFile(output.file, O_WRONLY | O_CREAT | O_TRUNC, what)
                        : OpenFile("/dev/null", O_WRONLY, what);
      if (!opened) return opened.error();
      fd = std::move(opened).value();
    }
    child_stdio[index + 1] = std::move(fd);
  }
  auto exec_errors = MakePipe();
  if (!exec_errors) return exec_errors.error();
  auto wake = MakePipe();
  if (!wake) return wake.error();
  state->wake = std::move(wake).value();
  struct rlimit files {};
  int max_fd = 1024;
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY)
    max_fd = static_cast<int>(std::min<rlim_t>(files.rlim_cur, 1 << 20));
  const int stdio[3] = {child_stdio[0].get(), child_stdio[1].get(), child_stdio[2].get()};

  const ChildPlan plan{.program = state->program.c_str(),
                       .argv = argv.data(),
                       .envp = envp.data(),
                       .stdio = stdio,
                       .private_mount_namespace = options.private_mount_namespace,
                       .own_process_group = options.own_process_group,
                       .error_fd = exec_errors->write.get(),
                       .max_fd = max_fd};
  pid_t pid = CloneChild(plan);
  if (pid < 0) return ErrnoError("cannot start " + state->program);
  state->pid = pid;
  // Also from this side, so that the group exists whichever runs first (a
  // child that has exec'd already refuses it, with its own call made).
  if (options.own_process_group) (void)setpgid(pid, pid);
  for (UniqueFd& fd : child_stdio) fd.Reset();
  exec_errors->write.Reset();
  int exec_errno = 0;
  ssize_t count;
  do {
    count = read(exec_errors->read.get(), &exec_errno, sizeof exec_errno);
  } while (count < 0 && errno == EINTR);
  if (count == sizeof exec_errno) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    state->reaped = true;
    return Error{
        ErrorCode::kIo, "cannot run " + state->program + ": " + std::strerror(exec_errno), {}};
  }
  state->pidfd = UniqueFd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  if (state->stdin_write.valid() || state->stdout_read.valid() || state->stderr_read.valid()) {
    State* raw = state.get();
    state->pump = std::thread([raw] { raw->Pump(); });
  }
  return Subprocess(std::move(state));
}

Subprocess::Subprocess(std::unique_ptr<State> state) : state_(std::move(state)) {}

Subprocess::Subprocess(Subprocess&& other) noexcept = default;

Subprocess& Subprocess::operator=(Subprocess&& other) noexcept {
  if (this != &other) {
    Finish();
    state_ = std::move(other.state_);
  }
  return *this;
}

Subprocess::~Subprocess() {
  Finish();
}

void Subprocess::Finish() {
  if (!state_) return;
  if (!state_->reaped) {
    kill(state_->pid, SIGKILL);
    (void)Wait();
  }
  state_->StopPump();
}

pid_t Subprocess::pid() const {
  return state_->pid;
}

bool Subprocess::ended() const {
  return state_->reaped;
}

const ProcessExit& Subprocess::exit() const {
  return state_->exit;
}

const std::string& Subprocess::stdout_text() const {
  return state_->stdout_text;
}

const std::string& Subprocess::stderr_text() const {
  return state_->stderr_text;
}

Result<bool> Subprocess::Wait(std::optional<std::chrono::milliseconds> timeout, int wake_fd) {
  State& state = *state_;
  if (state.reaped) return true;
  using Clock = std::chrono::steady_clock;
  const std::optional<Clock::time_point> deadline =
      timeout ? std::optional(Clock::now() + *timeout) : std::nullopt;
  while (true) {
    int status = 0;
    // Without a pidfd, and to pick up an end that came between two polls.
    pid_t waited = waitpid(state.pid, &status, WNOHANG);
    if (waited < 0 && errno == EINTR) continue;
    if (waited < 0) return ErrnoError("cannot wait for " + state.program);
    if (waited == state.pid) {
      state.reaped = true;
      state.exit = FromWaitStatus(status);
      state.StopPump();
      return true;
    }
    int wait_ms = -1;
    if (deadline) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now());
      if (left.count() <= 0) return false;
      wait_ms = static_cast<int>(std::min<long long>(left.count(), 1 << 30));
    }
    // The pidfd turns readable when the child ends; without one, short
    // sleeps between the waitpid above.
    pollfd items[2];
    nfds_t count = 0;
    if (state.pidfd.valid()) {
      items[count++] = pollfd{state.pidfd.get(), POLLIN, 0};
    } else {
      wait_ms = wait_ms < 0 ? 10 : std::min(wait_ms, 10);
    }
    const nfds_t wake_index = count;
    if (wake_fd >= 0) items[count++] = pollfd{wake_fd, POLLIN, 0};
    if (poll(items, count, wait_ms) < 0 && errno != EINTR)
      return ErrnoError("cannot wait for " + state.program);
    if (wake_fd >= 0 && (items[wake_index].revents & POLLIN)) return false;
  }
}

Status Subprocess::Signal(int signal) {
  if (state_->reaped) return Ok{};
  // Not yet reaped: the pid is still the child's (a zombie at worst).
  if (kill(state_->pid, signal) != 0 && errno != ESRCH)
    return ErrnoError("cannot signal " + state_->program);
  return Ok{};
}

Result<SubprocessResult> RunSubprocess(SubprocessOptions options,
                                       std::optional<std::chrono::milliseconds> timeout) {
  auto child = Subprocess::Start(std::move(options));
  if (!child) return child.error();
  auto ended = child->Wait(timeout);
  if (!ended) return ended.error();
  SubprocessResult result;
  if (!*ended) {
    result.timed_out = true;
    auto signalled = child->Signal(SIGKILL);
    if (!signalled) return signalled.error();
    auto waited = child->Wait();
    if (!waited) return waited.error();
  }
  result.exit = child->exit();
  result.stdout_text = child->stdout_text();
  result.stderr_text = child->stderr_text();
  return result;
}

}  // namespace core
