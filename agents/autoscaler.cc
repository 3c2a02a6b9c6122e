#include "agents/autoscaler.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace agents {
namespace {

using std::chrono::milliseconds;

/// ceil(value), where a value a rounding error above a whole number is that number.
int CeilCount(double value) {
  return static_cast<int>(std::ceil(value - 1e-9));
}

std::string Figure(double value) {
  std::ostringstream out;
  out.precision(3);
  out << value;
  return out.str();
}

std::string Seconds(milliseconds duration) {
  return Figure(static_cast<double>(duration.count()) / 1000) + "s";
}

}  // namespace

Autoscaler::Autoscaler(const FunctionState& function)
    : min_containers_(function.min_containers),
      max_containers_(function.max_containers),
      buffer_containers_(function.buffer_containers),
      max_inputs_(function.max_inputs),
      per_container_(function.max_inputs * function.target_utilisation),
      scaledown_window_(function.scaledown_window),
      stable_window_(std::min(function.scaledown_window, milliseconds(60'000))),
      panic_window_(std::max(stable_window_ / 10, milliseconds(100))) {}

double Autoscaler::Average(Clock::time_point now, milliseconds window) const {
  double sum = 0, weight = 0;
  for (auto point = samples_.rbegin(); point != samples_.rend(); ++point) {
    if (point->at <= now - window) break;
    sum += point->concurrency * point->weight_ms;
    weight += point->weight_ms;
  }
  return weight > 0 ? sum / weight : 0;
}

ScalingDecision Autoscaler::Tick(const ScalingSample& sample) {
  const Clock::time_point now = sample.now;
  double weight_ms =
      samples_.empty()
          ? 100
          : std::clamp<double>(
                std::chrono::duration<double, std::milli>(now - samples_.back().at).count(), 1,
                1000);
  samples_.push_back({now, sample.concurrency, weight_ms});
  while (samples_.front().at <= now - stable_window_) samples_.pop_front();
  int waiting_now = sample.in_flight + sample.queued + sample.refused;
  if (waiting_now > 0 || sample.arrived > 0 || sample.concurrency > 0) last_demand_ = now;

  double stable_average = Average(now, stable_window_);
  double panic_average = Average(now, panic_window_);
  int stable = CeilCount(stable_average / per_container_);
  int panic = CeilCount(panic_average / per_container_);
  int immediate = (waiting_now + max_inputs_ - 1) / max_inputs_;
  bool active = stable > 0 || waiting_now > 0;
  int buffer = active ? buffer_containers_ : 0;

  ScalingDecision decision;
  int want = std::max(stable, immediate) + buffer;
  std::string why = "average concurrency " + Figure(stable_average) + " over " +
                    Seconds(stable_window_) + " at " + Figure(per_container_) + " per container";
  if (immediate > stable) {
    why = std::to_string(waiting_now) + " requests now at " + std::to_string(max_inputs_) +
          " per container";
  }
  if (buffer > 0) why += ", plus " + std::to_string(buffer) + " buffer";

  int have = sample.starting + sample.ready;
  if (panic > 0 && panic >= 2 * std::max(have, 1)) panic_until_ = now + stable_window_;
  if (panic_until_ && now >= *panic_until_) panic_until_.reset();
  decision.panic = panic_until_.has_value();

  int target = want;
  if (decision.panic) {
    // A burst: up to the short window's figure, and never down until it passes.
    target = std::max({want, panic + buffer, last_desired_});
    why = "panic: average concurrency " + Figure(panic_average) + " over " +
          Seconds(panic_window_) + ", scaling up only";
    held_.clear();
  }
  held_.emplace_back(now, target);
  while (held_.front().first <= now - scaledown_window_) held_.pop_front();
  if (!decision.panic) {
    int highest = 0;
    for (const auto& [at, figure] : held_) highest = std::max(highest, figure);
    if (highest > target) {
      why = "holding " + std::to_string(highest) + " for the scaledown window (" +
            Seconds(scaledown_window_) + "); " + why;
      target = highest;
    }
  }
  if (!last_demand_ || now - *last_demand_ >= scaledown_window_) {
    target = 0;
    why = last_demand_ ? "idle for the scaledown window (" + Seconds(scaledown_window_) + ")"
                       : "no requests yet";
  }

  decision.desired = std::clamp(target, min_containers_, max_containers_);
  if (decision.desired > target) {
    why = "min_containers " + std::to_string(min_containers_) + " kept warm (" + why + ")";
  } else if (decision.desired < target) {
    why = "capped at max_containers " + std::to_string(max_containers_) + " (" + why + ")";
  }
  decision.reason = why;
  last_desired_ = decision.desired;
  return decision;
}

}  // namespace agents
