#include "agents/scheduler.h"

#include <spdlog/spdlog.h>

#include "core/wall_clock.h"

namespace agents {
namespace {

using namespace std::chrono_literals;

core::FireTime FromMs(std::int64_t ms) {
  return core::FireTime(std::chrono::milliseconds(ms));
}

std::int64_t ToMs(core::FireTime time) {
  return time.time_since_epoch().count();
}

core::Result<core::ScheduleTimes> TimesOf(const ScheduleState& schedule) {
  return schedule.every ? core::ScheduleTimes::Every(*schedule.every)
                        : core::ScheduleTimes::Cron(schedule.cron, schedule.timezone);
}

/// The due times of `times` in (last_fire, latest] that `due` does not
/// run: those before its first run (all of them when it runs none), runs
/// being the newest due times. One Next per run counted, so a count stops
/// at kMostSkippedCounted (a minutely job down for ten weeks).
std::int64_t SkippedRuns(const core::ScheduleTimes& times, core::FireTime last_fire,
                         const core::DueRuns& due) {
  std::int64_t skipped = 0;
  for (auto next = times.Next(last_fire);
       next && (due.run.empty() ? *next <= *due.latest : *next < due.run.front()) &&
       skipped < Scheduler::kMostSkippedCounted;
       next = times.Next(*next)) {
    ++skipped;
  }
  return skipped;
}

}  // namespace

Scheduler::Scheduler(AgentRecords* records, Hooks hooks)
    : records_(records), hooks_(std::move(hooks)) {}

Scheduler::~Scheduler() {
  Stop();
}

void Scheduler::Set(std::vector<ScheduledJob> jobs) {
  core::FireTime now = hooks_.now();
  std::lock_guard lock(mutex_);
  std::map<std::string, Entry> entries;
  for (ScheduledJob& job : jobs) {
    std::string key = job.app + "/" + job.function;
    auto times = TimesOf(job.schedule);
    if (!times) {  // the desired state was checked when it came: not expected
      spdlog::warn("agent: schedule of {}: {}", key, times.error().message);
      continue;
    }
    auto known = entries_.find(key);
    if (known != entries_.end()) {
      Entry entry = std::move(known->second);
      entry.job = std::move(job);
      entry.times = std::move(times).value();
      entries.emplace(key, std::move(entry));
      continue;
    }
    ScheduleFire fire{job.app, job.function, ToMs(now), ""};
    auto stored = records_->FindScheduleFire(job.app, job.function);
    if (!stored) {
      spdlog::warn("agent: {}", stored.error().message);
    } else if (*stored) {
      fire = **stored;
    } else if (auto saved = records_->SaveScheduleFire(fire); !saved.ok()) {
      spdlog::warn("agent: {}", saved.error().message);
    }
    entries.emplace(key, Entry{std::move(job), std::move(times).value(), std::move(fire), 0, {}});
  }
  entries_ = std::move(entries);
  // A schedule removed, then added again later, starts afresh: no catch-up
  // for the time it was gone.
  std::vector<std::pair<std::string, std::string>> kept;
  for (const auto& [key, entry] : entries_) kept.emplace_back(entry.job.app, entry.job.function);
  if (auto retained = records_->RetainScheduleFires(kept); !retained.ok())
    spdlog::warn("agent: {}", retained.error().message);
  changed_.notify_all();
}

void Scheduler::Tick() {
  core::FireTime now = hooks_.now();
  std::lock_guard lock(mutex_);
  for (auto& [key, entry] : entries_) TickEntry(entry, now);
}

void Scheduler::TickEntry(Entry& entry, core::FireTime now) {
  if (entry.job.held) return;
  const std::string key = entry.job.app + "/" + entry.job.function;
  core::DueRuns due =
      entry.times.DueBetween(FromMs(entry.fire.last_fire_ms), now, entry.job.schedule.catch_up);
  if (!due.latest) return;
  if (due.skipped) {
    const std::int64_t missed = SkippedRuns(entry.times, FromMs(entry.fire.last_fire_ms), due);
    entry.skipped += missed;
    spdlog::warn("agent: {}: {} missed runs skipped (catch_up {})", key, missed,
                 entry.job.schedule.catch_up);
  }
  ScheduleFire fire = entry.fire;
  bool ran = false;
  std::string before_this_tick =
      entry.fire.last_call;  // runs of this tick do not overlap each other
  for (core::FireTime run : due.run) {
    const std::string due_at = core::FormatTimestamp(run, entry.times.zone());
    const std::int64_t previous_fire = fire.last_fire_ms;
    fire.last_fire_ms = ToMs(run == due.run.back() ? *due.latest : run);
    if (auto refused = hooks_.refusal ? hooks_.refusal(entry.job.app) : std::nullopt) {
      ++entry.skipped;
      entry.last_skip_reason = *refused;
      spdlog::info("agent: {}: run due at {} skipped: {}", key, due_at, *refused);
      continue;
    }
    bool previous = !before_this_tick.empty() && fire.last_call == before_this_tick &&
                    hooks_.unfinished(fire.last_call);
    if (previous && entry.job.schedule.overlap == Overlap::kSkip) {
      ++entry.skipped;
      entry.last_skip_reason = fire.last_call + " was still running";
      spdlog::info("agent: {}: run due at {} skipped: {} is still running", key, due_at,
                   fire.last_call);
      continue;
    }
    if (previous && entry.job.schedule.overlap == Overlap::kReplace) {
      spdlog::info("agent: {}: stopping {} for the run due at {}", key, fire.last_call, due_at);
      hooks_.cancel(fire.last_call);
    }
    if (auto started = hooks_.run(entry.job, due_at, &fire); !started.ok()) {
      // Not recorded as dealt with: the next tick tries this run again.
      spdlog::warn("agent: {}: the run due at {} could not start: {}", key, due_at,
                   started.error().message);
      fire.last_fire_ms = previous_fire;
      if (auto saved = records_->SaveScheduleFire(fire); !saved.ok())
        spdlog::warn("agent: {}", saved.error().message);
      entry.fire = fire;
      return;
    }
    ran = true;
    entry.fire = fire;  // saved with the call
  }
  fire.last_fire_ms = ToMs(*due.latest);
  if (!ran || entry.fire.last_fire_ms != fire.last_fire_ms) {
    if (auto saved = records_->SaveScheduleFire(fire); !saved.ok()) {
      spdlog::warn("agent: {}", saved.error().message);
      return;  // tried again at the next tick
    }
  }
  entry.fire = fire;
}

void Scheduler::Start() {
  thread_ = std::thread([this] {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      lock.unlock();
      Tick();
      lock.lock();
      // Until the next due time, at most a second (a clock that jumps is seen soon).
      core::FireTime now = hooks_.now();
      auto wait = std::chrono::milliseconds(1000);
      for (const auto& [key, entry] : entries_) {
        if (entry.job.held) continue;
        if (auto next = entry.times.Next(now))
          wait = std::min(wait,
                          std::chrono::duration_cast<std::chrono::milliseconds>(*next - now) + 1ms);
      }
      changed_.wait_for(lock, wait, [&] { return stopping_; });
    }
  });
}

void Scheduler::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    changed_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

nlohmann::json Scheduler::Status(const std::string& app, const std::string& function) const {
  std::lock_guard lock(mutex_);
  auto found = entries_.find(app + "/" + function);
  if (found == entries_.end()) return nullptr;
  const Entry& entry = found->second;
  nlohmann::json status = {
      {"last_fire", core::FormatTimestamp(FromMs(entry.fire.last_fire_ms), entry.times.zone())},
      {"last_call", entry.fire.last_call},
      {"skipped_runs", entry.skipped}};
  if (!entry.last_skip_reason.empty()) status["last_skip_reason"] = entry.last_skip_reason;
  if (entry.job.held) {
    status["held"] = "its image is not ready yet: runs due meanwhile are caught up once it is";
  } else if (auto next = entry.times.Next(hooks_.now())) {
    status["next_fire"] = core::FormatTimestamp(*next, entry.times.zone());
  }
  return status;
}

}  // namespace agents
