#include "agents/web_container.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "agents/container_root.h"
#include "agents/runtime_spec.h"
#include "agents/upstream_connect.h"

namespace agents {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

/// SIGTERM to SIGKILL when a web container is stopped.
constexpr std::chrono::milliseconds kStopGrace = 2s;
/// How long Connect waits for the container's server to accept.
constexpr std::chrono::milliseconds kConnectTimeout = 5s;

core::Error SystemError(const std::string& what) {
  return core::Error{core::ErrorCode::kIo, what + ": " + std::strerror(errno), {}};
}

void SetTimeout(int fd, int option, std::chrono::milliseconds timeout) {
  timeval value{};
  value.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  value.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  setsockopt(fd, SOL_SOCKET, option, &value, sizeof value);
}

/// `count` non-blocking TCP sockets made inside the network namespace
/// `netns` (a socket belongs to the namespace it was made in, wherever it is
/// used after): the calling thread enters it for the socket() calls only.
/// Each is set up for Connect before it is needed: no Nagle.
core::Result<std::vector<core::UniqueFd>> SocketsInNamespace(int netns, std::size_t count) {
  // The namespace this thread goes back to: the agent's own.
  thread_local core::UniqueFd own(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!own.valid()) return SystemError("cannot open this thread's network namespace");
  if (setns(netns, CLONE_NEWNET) != 0) {
    return SystemError("cannot enter the container's network namespace");
  }
  std::vector<core::UniqueFd> sockets;
  int socket_errno = 0;
  while (sockets.size() < count) {
    core::UniqueFd socket_fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!socket_fd.valid()) {
      socket_errno = errno;
      break;
    }
    sockets.push_back(std::move(socket_fd));
  }
  if (setns(own.get(), CLONE_NEWNET) != 0) {
    // A thread left in a container's namespace must never serve anything else.
    spdlog::critical("agent: cannot leave a container's network namespace: {}",
                     std::strerror(errno));
    std::abort();
  }
  if (sockets.empty()) {
    errno = socket_errno;
    return SystemError("cannot make a socket in the container's network namespace");
  }
  for (const core::UniqueFd& socket_fd : sockets) {
    int on = 1;
    setsockopt(socket_fd.get(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  }
  return sockets;
}

}  // namespace

const char* WebContainerStateName(WebContainerState state) {
  switch (state) {
    case WebContainerState::kStarting:
      return "starting";
    case WebContainerState::kReady:
      return "ready";
    case WebContainerState::kStopped:
      return "stopped";
  }
  return "stopped";
}

std::shared_ptr<WebContainer> WebContainer::Start(std::string id, PreparedFunction function,
                                                  const ContainerParts& parts,
                                                  std::function<void()> on_change,
                                                  std::function<void()> on_spares_low) {
  std::shared_ptr<WebContainer> container(new WebContainer(
      std::move(id), std::move(function), parts, std::move(on_change), std::move(on_spares_low)));
  container->runner_ = std::thread([raw = container.get()] { raw->Run(); });
  return container;
}

WebContainer::WebContainer(std::string id, PreparedFunction function, const ContainerParts& parts,
                           std::function<void()> on_change, std::function<void()> on_spares_low)
    : id_(std::move(id)),
      function_(std::move(function)),
      parts_(parts),
      on_change_(std::move(on_change)),
      on_spares_low_(std::move(on_spares_low)) {}

WebContainer::~WebContainer() {
  Stop();
  if (runner_.joinable()) runner_.join();
}

std::string WebContainer::failure() const {
  std::lock_guard lock(mutex_);
  return failure_;
}

void WebContainer::SetFailure(const std::string& why) {
  std::lock_guard lock(mutex_);
  if (failure_.empty()) failure_ = why;
}

std::chrono::milliseconds WebContainer::IoTimeout() const {
  return std::max<std::chrono::milliseconds>(1s, function_.function.timeout);
}

core::Result<core::UniqueFd> WebContainer::Connect(int client) const {
  core::UniqueFd socket_fd;
  int netns = -1;
  bool spares_low = false;
  {
    std::lock_guard lock(mutex_);
    // netns_ is kept open for as long as this object lives; the spare
    // sockets of a container that stopped are of no use.
    if (!netns_.valid() || state_ == WebContainerState::kStopped) {
      spare_sockets_.clear();
      return core::Error{core::ErrorCode::kConflict, "container " + id_ + " is not running", {}};
    }
    if (spare_sockets_.empty()) {
      netns = netns_.get();
    } else {
      socket_fd = std::move(spare_sockets_.back());
      spare_sockets_.pop_back();
    }
    spares_low = spare_sockets_.size() < kSpareSockets / 2 && !spares_asked_;
    spares_asked_ = spares_asked_ || spares_low;
  }
  if (spares_low && on_spares_low_) on_spares_low_();
  if (!socket_fd.valid()) {
    // None made ahead (the first connection, or requests faster than the
    // stock is filled): this one is made in the request's time.
    auto made = SocketsInNamespace(netns, 1);
    if (!made) return made.error();
    socket_fd = std::move(made->front());
  }
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(kWebPort));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (auto connected = ConnectUpstream(socket_fd.get(), address, kConnectTimeout, client);
      !connected) {
    return core::Error{
        connected.error().code, "container " + id_ + ": " + connected.error().message, {}};
  }
  return socket_fd;
}

void WebContainer::StockSockets() {
  int netns = -1;
  std::size_t missing = 0;
  {
    std::lock_guard lock(mutex_);
    spares_asked_ = false;
    if (!netns_.valid() || state_ == WebContainerState::kStopped) return;
    netns = netns_.get();  // open, and the same, for as long as this object lives
    missing = kSpareSockets - std::min(kSpareSockets, spare_sockets_.size());
  }
  if (missing == 0) return;
  // No lock held while they are made: requests take spares meanwhile. A
  // failure here is Connect's to report, when it has to make its own.
  auto made = SocketsInNamespace(netns, missing);
  if (!made) return;
  std::lock_guard lock(mutex_);
  if (state_ == WebContainerState::kStopped) return;
  for (core::UniqueFd& socket_fd : *made) {
    if (spare_sockets_.size() >= kSpareSockets) break;
    spare_sockets_.push_back(std::move(socket_fd));
  }
}

bool WebContainer::HealthAnswers() const {
  auto connection = Connect();
  if (!connection) return false;
  int fd = connection->get();
  // Its own exchange, short and blocking, bounded by these.
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  SetTimeout(fd, SO_RCVTIMEO, 1s);
  SetTimeout(fd, SO_SNDTIMEO, 1s);
  std::string request = "GET " + function_.function.web->health_path +
                        " HTTP/1.0\r\nHost: localhost\r\nUser-Agent: gantry-agent\r\n\r\n";
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    return false;
  }
  // "HTTP/1.x 2": a 2xx status is all that is read.
  char status[12];
  std::size_t got = 0;
  while (got < sizeof status) {
    ssize_t count = recv(fd, status + got, sizeof status - got, 0);
    if (count <= 0) return false;
    got += static_cast<std::size_t>(count);
  }
  return std::string_view(status, 5) == "HTTP/" && status[8] == ' ' && status[9] == '2';
}

void WebContainer::Probe(const fs::path& pid_file, std::chrono::steady_clock::time_point deadline) {
  auto started = std::chrono::steady_clock::now();
  bool listening = false;
  while (!stop_.IsSet()) {
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      SetFailure("not ready within " +
                 std::to_string(function_.function.web->startup_timeout.count()) + " ms");
      stop_.Set();
      return;
    }
    bool has_namespace;
    {
      std::lock_guard lock(mutex_);
      has_namespace = netns_.valid();
    }
    if (!has_namespace) {
      // runc writes the pid once the container is made: its namespaces exist.
      int pid = 0;
      std::ifstream(pid_file) >> pid;
      if (pid > 0) {
        core::UniqueFd netns(
            open(("/proc/" + std::to_string(pid) + "/ns/net").c_str(), O_RDONLY | O_CLOEXEC));
        // A pid already gone and reused could name the host's namespace:
        // a container's is never the agent's own.
        struct stat theirs {
        }, ours{};
        bool own_namespace = netns.valid() && fstat(netns.get(), &theirs) == 0 &&
                             stat("/proc/self/ns/net", &ours) == 0 &&
                             theirs.st_ino == ours.st_ino && theirs.st_dev == ours.st_dev;
        std::lock_guard lock(mutex_);
        if (netns.valid() && !own_namespace) netns_ = std::move(netns);
      }
    } else if (!listening) {
      listening = Connect().ok();
    }
    if (listening && (function_.function.web->health_path.empty() || HealthAnswers())) {
      was_ready_ = true;
      state_ = WebContainerState::kReady;
      on_change_();
      return;
    }
    // Quick steps while a fast server is expected, slower ones after.
    std::this_thread::sleep_for(listening ? 50ms : now - started < 500ms ? 2ms : 20ms);
  }
}

void WebContainer::Run() {
  const FunctionState& function = function_.function;
  LogLine about;
  about.container = id_;
  // Its output reaches the function's log line by line while it runs.
  OutputLog log(parts_.logs, function_.app, function.name, about);
  auto finish = [&](const std::string& outcome) {
    if (auto appended = log.Finish(outcome); !appended.ok())
      spdlog::warn("agent: {}", appended.error().message);
  };
  auto fail = [&](const std::string& why) {
    SetFailure(why);
    finish("web container " + id_ + " could not start: " + why);
    state_ = WebContainerState::kStopped;
    on_change_();
  };

  std::optional<GpuLease> lease;
  if (function.gpu) {
    auto acquired = parts_.gpus->Acquire(*function.gpu);
    if (!acquired) return fail(acquired.error().message);
    lease.emplace(std::move(acquired).value());
  }
  auto image = parts_.layers->Prepare(function.image.digest);
  if (!image) return fail(image.error().message);
  fs::path dir = parts_.containers_dir / id_;
  auto root = ContainerRoot::Create(image->layers, dir, parts_.limits.overlayfs);
  if (!root) return fail(root.error().message);

  ContainerInputs inputs;
  inputs.env = {function.web->port_env + "=" + std::to_string(kWebPort)};
  std::vector<Gpu> gpus = lease ? lease->gpus() : std::vector<Gpu>{};
  auto spec = FunctionContainerSpec(id_, root->rootfs(), *image, function_, inputs, gpus,
                                    parts_.pass_gpu_devices);
  core::Status written = spec ? WriteBundle(dir, *spec, parts_.limits) : spec.error();
  if (!written.ok()) {
    (void)root->Remove();
    return fail(written.error().message);
  }

  fs::path pid_file = dir / "pid";
  auto deadline = std::chrono::steady_clock::now() + function.web->startup_timeout;
  std::thread prober([this, pid_file, deadline] { Probe(pid_file, deadline); });
  RunOptions options;
  options.stdout_file = dir / "stdout";
  options.stderr_file = dir / "stderr";
  options.on_stdout = [&log](std::string_view data) { log.Write("stdout", data); };
  options.on_stderr = [&log](std::string_view data) { log.Write("stderr", data); };
  options.grace = kStopGrace;
  options.pid_file = pid_file;
  options.stop = &stop_;
  core::Result<ContainerExit> exit = ContainerExit{0, false, true};
  if (!stop_.IsSet()) {
    UsageMeter meter = MeterContainer(parts_, function_, id_, "", gpus);
    exit = parts_.runtime->Run(dir, id_, options);
  }
  bool asked_to_stop = stop_.IsSet();
  stop_.Set();  // ends the prober too
  prober.join();

  std::string outcome;
  if (!exit) {
    SetFailure(exit.error().message);
    outcome = "web container " + id_ + " failed: " + exit.error().message;
  } else if (asked_to_stop) {
    outcome =
        "web container " + id_ + " stopped (exit code " + std::to_string(exit->exit_code) + ")";
  } else {
    SetFailure("exited with code " + std::to_string(exit->exit_code));
    outcome = "web container " + id_ + " exited with code " + std::to_string(exit->exit_code);
  }
  if (!failure().empty() && asked_to_stop && exit) outcome += ": " + failure();
  finish(outcome);
  if (auto removed = root->Remove(); !removed.ok()) {
    spdlog::warn("agent: cannot remove container {}: {}", id_, removed.error().message);
  }
  // The namespace stays open until this object goes: a router thread may
  // be connecting through it (it now refuses).
  state_ = WebContainerState::kStopped;
  on_change_();
}

}  // namespace agents
