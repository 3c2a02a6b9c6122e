#include "agents/autoscaler.h"

#include <catch2/catch.hpp>

namespace agents {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

FunctionState Web(int min_containers, int max_containers, int max_inputs = 1,
                  std::chrono::milliseconds scaledown_window = 10s) {
  FunctionState function;
  function.web = WebState{};
  function.min_containers = min_containers;
  function.max_containers = max_containers;
  function.max_inputs = max_inputs;
  function.scaledown_window = scaledown_window;
  return function;
}

/// Ticks every 100 ms for `duration` at a steady concurrency.
ScalingDecision Hold(Autoscaler& autoscaler, Clock::time_point* now,
                     std::chrono::milliseconds duration, double concurrency, int containers) {
  ScalingDecision decision;
  for (auto end = *now + duration; *now < end;) {
    *now += 100ms;
    ScalingSample sample;
    sample.now = *now;
    sample.concurrency = concurrency;
    sample.in_flight = static_cast<int>(concurrency);
    sample.arrived = concurrency > 0 ? 1 : 0;
    sample.ready = containers;
    decision = autoscaler.Tick(sample);
  }
  return decision;
}

TEST_CASE("the autoscaler follows average concurrency over max_inputs", "[autoscaler]") {
  Autoscaler autoscaler(Web(0, 10, /*max_inputs=*/4));
  Clock::time_point now{};
  CHECK(Hold(autoscaler, &now, 1s, 0, 0).desired == 0);
  // 10 requests at 4 per container: 3 containers, once the averages catch up.
  ScalingDecision decision = Hold(autoscaler, &now, 12s, 10, 3);
  CHECK(decision.desired == 3);
  CHECK_FALSE(decision.panic);
}

TEST_CASE("target utilisation keeps headroom: the average over max_inputs times it",
          "[autoscaler]") {
  FunctionState function = Web(0, 10, /*max_inputs=*/4);
  function.target_utilisation = 0.5;  // target_inputs 2 of 4
  Autoscaler autoscaler(function);
  Clock::time_point now{};
  // 10 requests at 2 per container, not 4: 5 containers, each with room for a burst.
  ScalingDecision decision = Hold(autoscaler, &now, 12s, 10, 5);
  CHECK(decision.desired == 5);
  CHECK(decision.reason.find("at 2 per container") != std::string::npos);
  // 3 requests: 2 containers at 2 each, where 1 would do at max_inputs.
  decision = Hold(autoscaler, &now, 25s, 3, 2);
  CHECK(decision.desired == 2);
}

/// One tick with `queued` requests waiting and `refused` turned away by a
/// full queue, after 5 s of idling at zero.
ScalingDecision AfterIdle(Autoscaler& autoscaler, Clock::time_point* now, int queued, int refused) {
  Hold(autoscaler, now, 5s, 0, 0);
  *now += 100ms;
  ScalingSample sample;
  sample.now = *now;
  sample.queued = queued;
  sample.refused = refused;
  sample.arrived = queued + refused;
  return autoscaler.Tick(sample);
}

TEST_CASE("a request with no container starts one at once", "[autoscaler]") {
  Autoscaler autoscaler(Web(0, 10));
  Clock::time_point now{};
  CHECK(AfterIdle(autoscaler, &now, 1, 0).desired == 1);
}

TEST_CASE("requests a full queue turned away count as demand", "[autoscaler]") {
  // max_queued 0: a request finding no free input is turned away at once,
  // and neither waits nor is in flight. Without counting it, a function at
  // zero would never start.
  Autoscaler autoscaler(Web(0, 10));
  Clock::time_point now{};
  ScalingDecision decision = AfterIdle(autoscaler, &now, 0, 2);
  CHECK(decision.desired == 2);
  CHECK(decision.reason == "2 requests now at 1 per container");
  // Kept for the scaledown window, for the requests that come back.
  CHECK(Hold(autoscaler, &now, 5s, 0, 2).desired == 2);
  CHECK(Hold(autoscaler, &now, 6s, 0, 2).desired == 0);
}

TEST_CASE("a burst panics: up at once, capped at max_containers, never down while it lasts",
          "[autoscaler]") {
  Autoscaler autoscaler(Web(0, 5));
  Clock::time_point now{};
  Hold(autoscaler, &now, 2s, 1, 1);
  ScalingDecision burst = Hold(autoscaler, &now, 1s, 20, 1);
  CHECK(burst.panic);
  CHECK(burst.desired == 5);
  CHECK(burst.reason.find("max_containers") != std::string::npos);
  // Demand drops within the panic: the count holds.
  ScalingDecision calmer = Hold(autoscaler, &now, 1s, 1, 5);
  CHECK(calmer.desired == 5);
}

TEST_CASE("scaling down waits for the scaledown window, then goes to min_containers",
          "[autoscaler]") {
  Autoscaler autoscaler(Web(0, 10, 1, /*scaledown_window=*/10s));
  Clock::time_point now{};
  CHECK(Hold(autoscaler, &now, 12s, 4, 4).desired == 4);
  // Demand falls to 1: the 4 are held for the window, then follow.
  CHECK(Hold(autoscaler, &now, 5s, 1, 4).desired == 4);
  CHECK(Hold(autoscaler, &now, 16s, 1, 4).desired == 1);
  // Nothing at all for the window: zero.
  CHECK(Hold(autoscaler, &now, 5s, 0, 1).desired == 1);
  ScalingDecision idle = Hold(autoscaler, &now, 6s, 0, 1);
  CHECK(idle.desired == 0);
  CHECK(idle.reason.find("idle") != std::string::npos);

  Autoscaler warm(Web(2, 10, 1, 10s));
  Clock::time_point later{};
  ScalingDecision kept = Hold(warm, &later, 30s, 0, 2);
  CHECK(kept.desired == 2);
  CHECK(kept.reason.find("min_containers 2 kept warm") != std::string::npos);
}

TEST_CASE("buffer containers are added only while there is demand", "[autoscaler]") {
  FunctionState function = Web(0, 10);
  function.buffer_containers = 2;
  Autoscaler autoscaler(function);
  Clock::time_point now{};
  CHECK(Hold(autoscaler, &now, 12s, 1, 3).desired == 3);
  CHECK(Hold(autoscaler, &now, 25s, 0, 3).desired == 0);
}

}  // namespace
}  // namespace agents
