#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "agents/autoscaler.h"
#include "agents/function_container.h"
#include "agents/web_container.h"
#include "core/result.h"

namespace agents {

class WebFunction;

/// One request's hold on one input of a ready container: given back when
/// the lease goes, which may let the next waiting request in or a draining
/// container stop.
class WebLease {
 public:
  WebLease(std::shared_ptr<WebFunction> function, std::shared_ptr<WebContainer> container)
      : function_(std::move(function)), container_(std::move(container)) {}
  WebLease(WebLease&&) = default;
  WebLease& operator=(WebLease&&) = default;
  ~WebLease();

  WebContainer& container() const { return *container_; }

 private:
  std::shared_ptr<WebFunction> function_;
  std::shared_ptr<WebContainer> container_;
};

/// A web function as one agent serves it: its containers, the requests
/// waiting for one, and the loop that scales them. Requests wait in the
/// order they came (at most `web.max_queued`, each at most
/// `web.queue_timeout`) for a ready container with a free input (fewer than
/// `max_inputs` requests in flight); among those, the one with the fewest in
/// flight is taken. A container is never given a request before it is
/// ready.
///
/// The scaling loop ticks every 100 ms while the function has requests or
/// starting containers, every second otherwise, and at once when a request
/// finds no container (a cold start) or a container becomes ready or stops.
/// It feeds the Autoscaler and follows it: it starts containers, or drains
/// surplus ones (no new requests; stopped once their requests are done;
/// starting ones first, then those with fewest in flight). A container that
/// stops without being asked (it exited, or was not ready in time) counts
/// as a crash: the next start waits 1 s, doubled per crash in a row up to
/// 60 s, and the status says so until a container is ready again. When a
/// container's stock of sockets runs low, the loop refills it
/// (WebContainer::StockSockets), between ticks, so that requests find one.
class WebFunction : public std::enable_shared_from_this<WebFunction> {
 public:
  static std::shared_ptr<WebFunction> Start(PreparedFunction function, ContainerParts parts);
  /// Stops every container (SIGTERM, grace, SIGKILL) and waits for them.
  ~WebFunction();

  const PreparedFunction& function() const { return function_; }

  /// A ready container's input for one request, waiting for one in turn.
  /// kUnavailable when the queue is full, when none is free within
  /// `web.queue_timeout` (the message says why: still starting, or
  /// crashing), when the function is stopping, or when `abandoned` (asked
  /// every 100 ms while the request waits) says its client went: a request
  /// nobody waits for leaves the queue, and never reaches a container.
  core::Result<WebLease> Acquire(const std::function<bool()>& abandoned = {});

  /// No new requests; what waits is served, then every container drains and
  /// stops. Returns at once; Retired() tells when it is done.
  void Retire();
  bool Retired() const;
  /// Stops every container now; waiting requests get kUnavailable.
  void Stop();

  /// Desired and actual containers, requests, and why (GET /v1/status).
  nlohmann::json Status() const;
  /// Each container not yet stopped, by id: "starting", "ready" or "draining".
  std::map<std::string, std::string> ContainerStates() const;

 private:
  using Clock = std::chrono::steady_clock;
  struct Entry {
    std::shared_ptr<WebContainer> container;
    int in_flight = 0;
    bool draining = false;
  };

  friend class WebLease;  // gives its input back with Release

  WebFunction(PreparedFunction function, ContainerParts parts);
  void ScaleLoop();
  /// One tick: reaps stopped containers, asks the autoscaler, starts and
  /// drains. Needs mutex_ held; returns the containers to destroy unlocked.
  std::vector<std::shared_ptr<WebContainer>> Tick(Clock::time_point now);
  void Release(const WebContainer& container);
  /// The ready container with a free input and the fewest in flight.
  Entry* PickContainer();
  /// Adds (in-flight + queued) × time since the last change to the integral.
  void Account(Clock::time_point now);
  void Wake();

  PreparedFunction function_;
  ContainerParts parts_;

  mutable std::mutex mutex_;
  // Two, so that a request's end, the common event, wakes no thread when
  // none waits: the scaling loop wakes on Wake() and for a low socket stock only.
  std::condition_variable changed_;  // waiting requests: an input may be free
  std::condition_variable wake_scaler_;
  std::vector<Entry> containers_;
  std::list<std::uint64_t> waiting_;  // tickets of waiting requests, in order
  std::uint64_t next_ticket_ = 0;
  std::uint64_t next_container_ = 0;
  int in_flight_ = 0;
  int arrived_ = 0;
  int refused_ = 0;                  // turned away by a full queue since the last tick
  double concurrency_integral_ = 0;  // request-milliseconds since the last tick
  Clock::time_point last_change_, last_tick_;
  bool wake_ = false;
  bool scaler_busy_ = false;  // the scaling loop waits its busy tick, not its idle one
  bool restock_ = false;      // a container's socket stock is low: StockSockets on each ready one
  bool retiring_ = false;
  bool stopping_ = false;
  Autoscaler autoscaler_;
  ScalingDecision decision_;
  int crashes_ = 0;  // in a row
  std::string last_crash_;
  Clock::time_point next_start_;
  std::thread scaler_;
};

}  // namespace agents
