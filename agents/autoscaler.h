#pragma once

#include <chrono>
#include <deque>
#include <optional>
#include <string>

#include "agents/desired_state.h"

namespace agents {

/// What the autoscaler sees of one web function at one tick.
struct ScalingSample {
  std::chrono::steady_clock::time_point now;
  /// In-flight plus queued requests, averaged over the time since the
  /// sample before (so that requests shorter than a tick still count).
  double concurrency = 0;
  int arrived = 0;    // requests that came since the sample before
  int in_flight = 0;  // requests being served now
  int queued = 0;     // requests waiting for a container now
  int refused = 0;    // requests turned away by a full queue since the sample before
  int starting = 0;   // containers not ready yet
  int ready = 0;      // containers taking requests
};

/// How many containers a web function should have, and why (the status
/// shows the reason).
struct ScalingDecision {
  int desired = 0;
  bool panic = false;
  std::string reason;
};

/// Decides, tick by tick, how many containers one web function needs, in
/// the manner of Knative's KPA (knative.dev/serving/pkg/autoscaler):
///
///   per_container = max_inputs × target_utilisation
///   stable        = ceil(average concurrency over the stable window / per_container)
///   panic         = ceil(average concurrency over the panic window / per_container)
///   desired       = clamp(max(stable, requests now / max_inputs) + buffer, min, max)
///
/// where target_utilisation is the spec's target_inputs over max_inputs,
/// requests now are those in flight, queued, and turned away by a full
/// queue since the tick before (demand all the same: with `max_queued: 0`
/// the only sign of it), concurrency is in-flight plus queued requests, averaged over time
/// (each sample weighs the time since the one before), the stable window is
/// the scaledown window capped at 60 s, and the panic window a tenth of it
/// (at least one second's worth of samples, never less than 100 ms).
/// `buffer_containers` count only while the function has demand. When
/// `panic` reaches twice the containers there are, the function panics for
/// a stable window: it scales up to the panic figure and never down. Outside
/// panic, a lower figure is followed only once it has held for the whole
/// scaledown window (the highest figure of that window is kept), and a
/// function with no request at all for the scaledown window goes to
/// min_containers: zero, unless some are kept warm. Requests waiting with no
/// container at all start one at once (cold start), whatever the averages.
///
/// A plain object driven by the caller's clock: tests tick it with made-up
/// times.
class Autoscaler {
 public:
  explicit Autoscaler(const FunctionState& function);

  ScalingDecision Tick(const ScalingSample& sample);

  std::chrono::milliseconds stable_window() const { return stable_window_; }
  std::chrono::milliseconds panic_window() const { return panic_window_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Point {
    Clock::time_point at;
    double concurrency;
    double weight_ms;  // time since the sample before
  };
  double Average(Clock::time_point now, std::chrono::milliseconds window) const;

  int min_containers_, max_containers_, buffer_containers_, max_inputs_;
  double per_container_;
  std::chrono::milliseconds scaledown_window_, stable_window_, panic_window_;

  std::deque<Point> samples_;                           // the stable window's
  std::deque<std::pair<Clock::time_point, int>> held_;  // figures of the scaledown window
  std::optional<Clock::time_point> last_demand_;
  std::optional<Clock::time_point> panic_until_;
  int last_desired_ = 0;
};

}  // namespace agents
