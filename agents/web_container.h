#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agents/function_container.h"
#include "core/result.h"
#include "core/stop_flag.h"
#include "core/unique_fd.h"

namespace agents {

/// The port every web container listens on. Each container has a network
/// namespace of its own (loopback only, like a job's), so they can all be
/// given the same one; the router reaches it from inside that namespace.
inline constexpr int kWebPort = 8000;

/// Where a web container is in its life.
enum class WebContainerState {
  kStarting,  // being made, or its server not answering yet
  kReady,     // its server answers: it takes requests
  kStopped,   // its process ended (or never started); see failure()
};
const char* WebContainerStateName(WebContainerState state);

/// One long-lived container of a web function: made like a job's (same
/// image, env, limits, volumes, GPUs), with the function's command and its
/// port in `$PORT` (or the variable `web.port_env` names). It starts on a
/// thread of its own; a second thread probes it until its server accepts a
/// TCP connection on the port (or answers 2xx on `web.health_path`), then
/// marks it ready. The router connects to it from inside its network
/// namespace (Connect), so the server needs no port on the host and no
/// other container or host process can reach it.
///
/// A container that does not become ready within `web.startup_timeout`, or
/// whose process ends, is stopped; `on_change` is called (from the
/// container's own threads, with no lock of the container held) when it
/// becomes ready and when it has stopped. Its output goes to the function's
/// log line by line as it writes it (OutputLog), how it ended when it stops.
///
/// Connect takes a socket from a stock made in the namespace beforehand, so
/// that a request pays for connect() alone (with the stock empty, it makes
/// one itself); `on_spares_low` is called (from the connecting thread, no
/// lock of the container held) when the stock is below half, once until
/// StockSockets runs: its owner then calls StockSockets from a thread of
/// its own, while requests go on.
class WebContainer {
 public:
  static std::shared_ptr<WebContainer> Start(std::string id, PreparedFunction function,
                                             const ContainerParts& parts,
                                             std::function<void()> on_change,
                                             std::function<void()> on_spares_low);
  /// Stop(), then waits for the container to be gone.
  ~WebContainer();

  const std::string& id() const { return id_; }
  WebContainerState state() const { return state_.load(); }
  /// Why it stopped, when it did not stop because it was asked to ("" otherwise).
  std::string failure() const;
  /// Whether it ever became ready.
  bool was_ready() const { return was_ready_.load(); }

  /// A TCP connection to its server (127.0.0.1:kWebPort in its namespace),
  /// non-blocking, without Nagle's algorithm, made within 5 s. With a
  /// `client` socket, Connect gives up as soon as that client closes its end
  /// (kUnavailable): nginx's proxy does the same. So a client that gives up
  /// on a server whose backlog is full leaves no connection to it behind.
  core::Result<core::UniqueFd> Connect(int client = -1) const;
  /// How long a request to it may wait for its server to take or send a
  /// byte: the function's timeout, at least 1 s.
  std::chrono::milliseconds IoTimeout() const;
  /// Fills the stock of sockets Connect takes from, when it is running.
  void StockSockets();

  /// Asks it to stop: SIGTERM, a grace of 2 s, SIGKILL. Returns at once.
  void Stop() { stop_.Set(); }

 private:
  WebContainer(std::string id, PreparedFunction function, const ContainerParts& parts,
               std::function<void()> on_change, std::function<void()> on_spares_low);
  void Run();
  /// Waits for runc's pid file, then for the server to answer; marks it ready.
  void Probe(const std::filesystem::path& pid_file, std::chrono::steady_clock::time_point deadline);
  bool HealthAnswers() const;
  void SetFailure(const std::string& why);

  std::string id_;
  PreparedFunction function_;
  ContainerParts parts_;
  std::function<void()> on_change_;
  std::function<void()> on_spares_low_;
  std::atomic<WebContainerState> state_ = WebContainerState::kStarting;
  std::atomic<bool> was_ready_ = false;
  core::StopFlag stop_;
  /// The stock of sockets made in the container's namespace ahead of
  /// Connect: entering a namespace (two setns calls) is paid once per half
  /// this many connections, and not in a request's time.
  static constexpr std::size_t kSpareSockets = 64;

  mutable std::mutex mutex_;  // guards netns_, spare_sockets_, spares_asked_ and failure_
  core::UniqueFd netns_;      // /proc/PID/ns/net of the container's process
  mutable std::vector<core::UniqueFd> spare_sockets_;  // made in netns_, not connected yet
  mutable bool spares_asked_ = false;                  // on_spares_low_ called, not stocked since
  std::string failure_;
  std::thread runner_;
};

}  // namespace agents
