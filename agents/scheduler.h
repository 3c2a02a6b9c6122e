#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agents/agent_records.h"
#include "agents/desired_state.h"
#include "agents/function_container.h"
#include "core/schedule_times.h"

namespace agents {

/// One scheduled job function, as the scheduler fires it.
struct ScheduledJob {
  std::string app;
  std::string function;
  ScheduleState schedule;
  PreparedFunction prepared;  // what a run is made from
  /// Wanted, but its image is still being unpacked or pulled: it fires
  /// nothing and keeps its last fire, so that once it can run it catches up
  /// as after downtime.
  bool held = false;
};

/// Fires the scheduled job functions of this agent on time. For each one it
/// keeps, in the agent's records, the newest due time it has dealt with and
/// the call of its last run (AgentRecords::ScheduleFire), saved in the same
/// transaction as the call it starts: an agent restart neither repeats a run
/// nor loses one. Each tick it asks core::ScheduleTimes::DueBetween what is
/// due since then: a run due less than a minute ago is on time; of the runs
/// missed while the agent was down only the `catch_up` most recent are made
/// up. A run due while the previous one is still queued or running is
/// skipped (`overlap: skip`), started as well (`allow`), or started after
/// the previous one is stopped (`replace`). A schedule new to this agent
/// begins at the time it is set: it does not fire for the past.
///
/// The clock is an argument, so that tests drive it minute by minute; the
/// agent runs Tick on a thread of its own (Start), waking at the next due
/// time or within a second.
class Scheduler {
 public:
  struct Hooks {
    /// Now.
    std::function<core::FireTime()> now;
    /// Starts the run of `job` due at `due` (ISO 8601 in the schedule's
    /// zone) and saves `fire` with its call (CallRunner::Submit).
    std::function<core::Status(const ScheduledJob& job, const std::string& due, ScheduleFire* fire)>
        run;
    /// Whether a call is still queued or running.
    std::function<bool(const std::string& call_id)> unfinished;
    /// Stops a call (overlap: replace).
    std::function<void(const std::string& call_id)> cancel;
    /// Why runs of `app` must be skipped now (its budget stopped it), if
    /// they must: such a run is dealt with, counted as skipped, not retried.
    std::function<std::optional<std::string>(const std::string& app)> refusal;
  };

  /// The most missed runs one tick counts as skipped (counting costs one
  /// due-time search each): a longer downtime adds this many.
  static constexpr std::int64_t kMostSkippedCounted = 100'000;

  Scheduler(AgentRecords* records, Hooks hooks);
  ~Scheduler();

  /// The jobs to fire from now on (held ones included), replacing those
  /// before. A schedule not among them is gone, its record with it: added
  /// again later, it starts afresh.
  void Set(std::vector<ScheduledJob> jobs);
  /// Fires what is due now.
  void Tick();
  /// Ticks on a thread of its own until Stop().
  void Start();
  void Stop();

  /// For GET /v1/status: next and last fire time (ISO 8601 in the
  /// schedule's zone), last call, runs skipped since this agent started
  /// (each due time not run counts one: missed while the agent was down
  /// beyond `catch_up`, an overlap, a budget's stop) and why the last one
  /// was; null for a job not known.
  nlohmann::json Status(const std::string& app, const std::string& function) const;

 private:
  struct Entry {
    ScheduledJob job;
    core::ScheduleTimes times;
    ScheduleFire fire;
    std::int64_t skipped = 0;  // due times not run, since this agent started
    std::string last_skip_reason;
  };
  void TickEntry(Entry& entry, core::FireTime now);

  AgentRecords* records_;
  Hooks hooks_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, Entry> entries_;  // "app/function"
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace agents
