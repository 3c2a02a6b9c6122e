#include "agents/web_function.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/random.h"

namespace agents {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr std::chrono::milliseconds kBusyTick = 100ms;
constexpr std::chrono::milliseconds kIdleTick = 1s;
constexpr std::chrono::milliseconds kFirstBackoff = 1s;
constexpr std::chrono::milliseconds kLongestBackoff = 60s;
/// How often a waiting request looks whether its client has gone.
constexpr std::chrono::milliseconds kAbandonedCheck = 100ms;

core::Error Unavailable(const std::string& message) {
  return core::Error{core::ErrorCode::kUnavailable, message, {}};
}

}  // namespace

WebLease::~WebLease() {
  if (function_ && container_) function_->Release(*container_);
}

std::shared_ptr<WebFunction> WebFunction::Start(PreparedFunction function, ContainerParts parts) {
  std::shared_ptr<WebFunction> web(new WebFunction(std::move(function), std::move(parts)));
  web->scaler_ = std::thread([raw = web.get()] { raw->ScaleLoop(); });
  return web;
}

WebFunction::WebFunction(PreparedFunction function, ContainerParts parts)
    : function_(std::move(function)),
      parts_(std::move(parts)),
      last_change_(Clock::now()),
      last_tick_(last_change_),
      autoscaler_(function_.function),
      next_start_(last_change_) {}

WebFunction::~WebFunction() {
  Stop();
  if (scaler_.joinable()) scaler_.join();
}

void WebFunction::Wake() {
  wake_ = true;
  wake_scaler_.notify_one();
  changed_.notify_all();  // what woke the scaler may concern them too (a container ready)
}

void WebFunction::Account(Clock::time_point now) {
  double level = in_flight_ + static_cast<double>(waiting_.size());
  concurrency_integral_ +=
      level * std::chrono::duration<double, std::milli>(now - last_change_).count();
  last_change_ = now;
}

WebFunction::Entry* WebFunction::PickContainer() {
  Entry* best = nullptr;
  for (Entry& entry : containers_) {
    if (entry.draining || entry.container->state() != WebContainerState::kReady ||
        entry.in_flight >= function_.function.max_inputs) {
      continue;
    }
    if (!best || entry.in_flight < best->in_flight) best = &entry;
  }
  return best;
}

core::Result<WebLease> WebFunction::Acquire(const std::function<bool()>& abandoned) {
  const WebState& web = *function_.function.web;
  std::unique_lock lock(mutex_);
  auto now = Clock::now();
  if (stopping_) return Unavailable("the function is stopping");
  ++arrived_;
  auto take = [&](Entry* entry) {
    Account(Clock::now());
    ++entry->in_flight;
    ++in_flight_;
    return WebLease(shared_from_this(), entry->container);
  };
  if (waiting_.empty()) {
    if (Entry* entry = PickContainer()) return take(entry);
  }
  if (static_cast<int>(waiting_.size()) >= web.max_queued) {
    // Demand all the same: the scaling loop counts it at its next tick
    // (with max_queued 0, nothing else would ever start a container). On its
    // busy tick it sees it within 100 ms; waiting its idle second, it is
    // woken now, once.
    ++refused_;
    if (!scaler_busy_) {
      wake_ = true;
      wake_scaler_.notify_one();
    }
    return Unavailable("too many requests waiting (" + std::to_string(web.max_queued) + ")");
  }
  Account(now);
  // No container of the function is ready at all: this request waits for a start.
  bool cold = std::none_of(containers_.begin(), containers_.end(), [](const Entry& entry) {
    return !entry.draining && entry.container->state() == WebContainerState::kReady;
  });
  if (cold && parts_.metrics) {
    parts_.metrics->cold_waits.Add({{"app", function_.app}, {"function", function_.function.name}});
  }
  std::uint64_t ticket = next_ticket_++;
  auto me = waiting_.insert(waiting_.end(), ticket);
  Wake();  // a request waits: the scaling loop looks now (a cold start)
  auto deadline = now + web.queue_timeout;
  auto next_check = now + kAbandonedCheck;
  bool gone = false;
  while (true) {
    if (stopping_) break;
    if (waiting_.front() == ticket) {
      if (Entry* entry = PickContainer()) {
        Account(Clock::now());
        waiting_.erase(me);
        if (!waiting_.empty()) changed_.notify_all();  // the next in line may go
        ++entry->in_flight;
        ++in_flight_;
        return WebLease(shared_from_this(), entry->container);
      }
    }
    // Woken in turn, or now and then to see whether its client is still there.
    auto until = abandoned ? std::min(deadline, next_check) : deadline;
    bool timed_out = changed_.wait_until(lock, until) == std::cv_status::timeout;
    // abandoned() is a poll with no wait, under the lock: at most
    // kMaxWaitingRequests (router.h) waiters make it, ten times a second.
    if (abandoned && Clock::now() >= next_check) {
      if (abandoned()) {
        gone = true;
        break;
      }
      next_check = Clock::now() + kAbandonedCheck;
    }
    if (timed_out && Clock::now() >= deadline) {
      if (waiting_.front() == ticket && PickContainer()) continue;
      break;
    }
  }
  Account(Clock::now());
  waiting_.erase(me);
  if (!waiting_.empty()) changed_.notify_all();
  if (stopping_) return Unavailable("the function is stopping");
  if (gone) return Unavailable("the client went while its request waited for a container");
  std::string why = "no container of " + function_.app + "/" + function_.function.name +
                    " was ready within " + std::to_string(web.queue_timeout.count()) + " ms";
  if (crashes_ > 0) why += " (its containers keep failing: " + last_crash_ + ")";
  return Unavailable(why);
}

void WebFunction::Release(const WebContainer& container) {
  std::lock_guard lock(mutex_);
  Account(Clock::now());
  --in_flight_;
  for (Entry& entry : containers_) {
    if (entry.container.get() != &container) continue;
    --entry.in_flight;
    if (entry.draining && entry.in_flight == 0) entry.container->Stop();
  }
  if (!waiting_.empty()) changed_.notify_all();
}

void WebFunction::Retire() {
  std::lock_guard lock(mutex_);
  retiring_ = true;
  Wake();
}

bool WebFunction::Retired() const {
  std::lock_guard lock(mutex_);
  return retiring_ && containers_.empty() && waiting_.empty();
}

void WebFunction::Stop() {
  std::lock_guard lock(mutex_);
  stopping_ = true;
  Wake();
}

void WebFunction::ScaleLoop() {
  std::unique_lock lock(mutex_);
  while (true) {
    bool busy = in_flight_ > 0 || !waiting_.empty() ||
                std::any_of(containers_.begin(), containers_.end(), [](const Entry& entry) {
                  return entry.container->state() != WebContainerState::kReady || entry.draining;
                });
    scaler_busy_ = busy;
    const Clock::time_point due = last_tick_ + (busy ? kBusyTick : kIdleTick);
    wake_scaler_.wait_until(lock, due, [&] { return wake_ || restock_ || stopping_; });
    if (stopping_) break;
    if (restock_) {
      // Sockets for the router, made here so that no request waits for them.
      restock_ = false;
      std::vector<std::shared_ptr<WebContainer>> running;
      for (const Entry& entry : containers_) {
        if (entry.container->state() != WebContainerState::kStopped)
          running.push_back(entry.container);
      }
      lock.unlock();
      for (const auto& container : running) container->StockSockets();
      running.clear();  // may be the last hold: joins threads that call back into this object
      lock.lock();
      if (!wake_ && !stopping_ && Clock::now() < due) continue;  // woken for the stock alone
    }
    wake_ = false;
    auto gone = Tick(Clock::now());
    lock.unlock();
    gone.clear();  // joins their threads, which may call back into this object
    lock.lock();
  }
  // Stopping: every container is asked to stop, and waited for.
  for (Entry& entry : containers_) entry.container->Stop();
  std::vector<Entry> all = std::move(containers_);
  containers_.clear();
  changed_.notify_all();
  lock.unlock();
  all.clear();
}

std::vector<std::shared_ptr<WebContainer>> WebFunction::Tick(Clock::time_point now) {
  const FunctionState& function = function_.function;
  std::vector<std::shared_ptr<WebContainer>> gone;
  // Stopped containers leave; those that were not asked to stop are crashes.
  for (auto entry = containers_.begin(); entry != containers_.end();) {
    WebContainer& container = *entry->container;
    if (container.state() == WebContainerState::kReady) crashes_ = 0;
    if (container.state() != WebContainerState::kStopped || entry->in_flight > 0) {
      ++entry;
      continue;
    }
    if (!entry->draining) {
      ++crashes_;
      last_crash_ = container.failure().empty() ? "stopped" : container.failure();
      auto backoff = std::min(kFirstBackoff * (1 << std::min(crashes_ - 1, 6)), kLongestBackoff);
      next_start_ = now + backoff;
      spdlog::warn("agent: {}/{}: web container {} failed ({}); next start in {} ms", function_.app,
                   function.name, container.id(), last_crash_, backoff.count());
    }
    gone.push_back(std::move(entry->container));
    entry = containers_.erase(entry);
  }

  Account(now);
  ScalingSample sample;
  sample.now = now;
  double elapsed_ms = std::chrono::duration<double, std::milli>(now - last_tick_).count();
  sample.concurrency = elapsed_ms > 0 ? concurrency_integral_ / elapsed_ms : 0;
  sample.arrived = arrived_;
  sample.in_flight = in_flight_;
  sample.queued = static_cast<int>(waiting_.size());
  sample.refused = refused_;
  for (const Entry& entry : containers_) {
    // A stopped one still holding requests is neither: it is about to go.
    if (entry.draining || entry.container->state() == WebContainerState::kStopped) continue;
    if (entry.container->state() == WebContainerState::kReady) {
      ++sample.ready;
    } else {
      ++sample.starting;
    }
  }
  concurrency_integral_ = 0;
  arrived_ = 0;
  refused_ = 0;
  last_tick_ = now;
  decision_ = autoscaler_.Tick(sample);
  int desired = decision_.desired;
  if (retiring_ && waiting_.empty()) {
    desired = 0;
    decision_.reason = "replaced or removed: draining";
  }

  int have = sample.ready + sample.starting;
  // A draining container still finishing requests is taken back before any
  // new one starts: it is ready now, where a new one would start cold.
  bool taken_back = false;
  for (auto entry = containers_.begin(); entry != containers_.end() && have < desired; ++entry) {
    if (!entry->draining || entry->in_flight == 0 ||
        entry->container->state() != WebContainerState::kReady)
      continue;  // with nothing in flight, it was asked to stop already
    entry->draining = false;
    taken_back = true;
    ++have;
    spdlog::info("agent: {}/{}: draining web container {} taken back", function_.app, function.name,
                 entry->container->id());
  }
  if (taken_back && !waiting_.empty()) changed_.notify_all();  // it has inputs free
  if (desired > have && now >= next_start_) {
    // Started for requests that wait with nothing ready to take them.
    const bool cold = !waiting_.empty() && sample.ready == 0;
    for (int i = have; i < desired; ++i) {
      auto suffix = core::RandomHex(4);
      std::string id = "web-" + function_.app + "-" + function.name + "-" +
                       std::to_string(next_container_++) + "-" + (suffix ? *suffix : "0");
      if (parts_.metrics) {
        parts_.metrics->container_starts.Add(
            {{"app", function_.app}, {"function", function.name}, {"kind", "web"}});
        if (cold)
          parts_.metrics->cold_starts.Add({{"app", function_.app}, {"function", function.name}});
      }
      auto on_change = [this] {
        std::lock_guard lock(mutex_);
        Wake();
      };
      auto on_spares_low = [this] {
        std::lock_guard lock(mutex_);
        restock_ = true;
        wake_scaler_.notify_one();
      };
      containers_.push_back(
          {WebContainer::Start(id, function_, parts_, on_change, on_spares_low), 0, false});
    }
  } else if (desired < have) {
    // Starting containers serve nothing yet: they go first, then the least busy.
    std::vector<Entry*> candidates;
    for (Entry& entry : containers_) {
      if (!entry.draining && entry.container->state() != WebContainerState::kStopped)
        candidates.push_back(&entry);
    }
    std::stable_sort(candidates.begin(), candidates.end(), [](const Entry* a, const Entry* b) {
      bool a_ready = a->container->state() == WebContainerState::kReady;
      bool b_ready = b->container->state() == WebContainerState::kReady;
      if (a_ready != b_ready) return !a_ready;
      return a->in_flight < b->in_flight;
    });
    for (int i = 0; i < have - desired; ++i) {
      candidates[i]->draining = true;
      if (candidates[i]->in_flight == 0) candidates[i]->container->Stop();
    }
  }
  return gone;
}

std::map<std::string, std::string> WebFunction::ContainerStates() const {
  std::lock_guard lock(mutex_);
  std::map<std::string, std::string> states;
  for (const Entry& entry : containers_) {
    WebContainerState state = entry.container->state();
    if (state == WebContainerState::kStopped) continue;
    states[entry.container->id()] = entry.draining ? "draining" : WebContainerStateName(state);
  }
  return states;
}

json WebFunction::Status() const {
  std::lock_guard lock(mutex_);
  int starting = 0, ready = 0, draining = 0;
  for (const Entry& entry : containers_) {
    if (entry.container->state() == WebContainerState::kStopped) continue;
    if (entry.draining) {
      ++draining;
    } else if (entry.container->state() == WebContainerState::kReady) {
      ++ready;
    } else {
      ++starting;
    }
  }
  json status = {{"desired_containers", decision_.desired},
                 {"containers", {{"starting", starting}, {"ready", ready}, {"draining", draining}}},
                 {"in_flight_requests", in_flight_},
                 {"queued_requests", waiting_.size()},
                 {"panic", decision_.panic},
                 {"scaling_reason", decision_.reason}};
  if (crashes_ > 0) {
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_start_ - Clock::now());
    status["crash_loop"] = {{"crashes", crashes_},
                            {"last_failure", last_crash_},
                            {"next_start_in_ms", std::max<std::int64_t>(0, wait.count())}};
  }
  return status;
}

}  // namespace agents
