#include "agents/scheduler.h"

#include <catch2/catch.hpp>
#include <set>

#include "core/wall_clock.h"
#include "tests/temp_dir.h"

namespace agents {
namespace {

using namespace std::chrono_literals;

core::FireTime At(const std::string& text) {
  return core::ParseTimestamp(text, core::FindTimeZone("UTC").value()).value();
}

/// A scheduler over real records with a clock the test moves, recording
/// every run it starts (as CallRunner::Submit would: the fire saved with it).
struct Harness {
  explicit Harness(const std::filesystem::path& db) : records(AgentRecords::Open(db).value()) {}

  std::unique_ptr<Scheduler> Make() {
    Scheduler::Hooks hooks;
    hooks.now = [this] { return now; };
    hooks.run = [this](const ScheduledJob& job, const std::string& due,
                       ScheduleFire* fire) -> core::Status {
      fire->last_call = "call-" + std::to_string(++calls);
      runs.push_back(job.function + "@" +
                     core::FormatTimestamp(
                         core::FireTime(std::chrono::milliseconds(fire->last_fire_ms)), nullptr));
      dues.push_back(due);
      running.insert(fire->last_call);
      return records->SaveScheduleFire(*fire);
    };
    hooks.unfinished = [this](const std::string& id) { return running.count(id) > 0; };
    hooks.cancel = [this](const std::string& id) {
      cancelled.push_back(id);
      running.erase(id);
    };
    return std::make_unique<Scheduler>(records.get(), std::move(hooks));
  }

  /// Moves the clock to `until` a minute at a time, ticking each time.
  void RunUntil(Scheduler& scheduler, core::FireTime until, bool finish_each_run = true) {
    while (now < until) {
      now += 1min;
      scheduler.Tick();
      if (finish_each_run) running.clear();
    }
  }

  std::unique_ptr<AgentRecords> records;
  core::FireTime now;
  int calls = 0;
  std::vector<std::string> runs;
  std::vector<std::string> dues;  // as the run is told its due time
  std::set<std::string> running;
  std::vector<std::string> cancelled;
};

ScheduledJob Job(const std::string& function, ScheduleState schedule) {
  ScheduledJob job;
  job.app = "demo";
  job.function = function;
  job.schedule = std::move(schedule);
  return job;
}

ScheduleState Cron(const std::string& cron, const std::string& timezone = "UTC") {
  ScheduleState schedule;
  schedule.cron = cron;
  schedule.timezone = timezone;
  return schedule;
}

TEST_CASE("a scheduled job fires at its minutes, from when it was set", "[scheduler]") {
  tests::TempDir dir("gantry-scheduler-test");
  Harness harness(dir.path() / "agent.db");
  harness.now = At("2026-03-01T00:07:30Z");
  auto scheduler = harness.Make();
  scheduler->Set({Job("report", Cron("*/15 * * * *"))});
  harness.RunUntil(*scheduler, At("2026-03-01T01:07:30Z"));
  CHECK(harness.runs == std::vector<std::string>{"report@2026-03-01T00:15:00+00:00",
                                                 "report@2026-03-01T00:30:00+00:00",
                                                 "report@2026-03-01T00:45:00+00:00",
                                                 "report@2026-03-01T01:00:00+00:00"});
  nlohmann::json status = scheduler->Status("demo", "report");
  CHECK(status["next_fire"] == "2026-03-01T01:15:00+00:00");
  CHECK(status["last_call"] == "call-4");
}

TEST_CASE("a spring-forward fires a skipped time once, after the gap", "[scheduler]") {
  tests::TempDir dir("gantry-scheduler-test");
  Harness harness(dir.path() / "agent.db");
  harness.now = At("2026-03-28T00:00:00Z");
  auto scheduler = harness.Make();
  scheduler->Set({Job("nightly", Cron("30 2 * * *", "Europe/Berlin"))});
  harness.RunUntil(*scheduler, At("2026-03-30T12:00:00Z"));
  // 02:30 CET on the 28th, 03:00 CEST on the 29th (02:30 does not exist), 02:30 CEST on the 30th.
  CHECK(harness.runs == std::vector<std::string>{"nightly@2026-03-28T01:30:00+00:00",
                                                 "nightly@2026-03-29T01:00:00+00:00",
                                                 "nightly@2026-03-30T00:30:00+00:00"});
  // Each run is told its due time in the schedule's zone.
  CHECK(harness.dues == std::vector<std::string>{"2026-03-28T02:30:00+01:00",
                                                 "2026-03-29T03:00:00+02:00",
                                                 "2026-03-30T02:30:00+02:00"});
}

TEST_CASE("a restart neither repeats nor loses a run, and catches up one missed run",
          "[scheduler]") {
  tests::TempDir dir("gantry-scheduler-test");
  Harness harness(dir.path() / "agent.db");
  harness.now = At("2026-03-01T00:00:30Z");
  {
    auto scheduler = harness.Make();
    scheduler->Set({Job("hourly", Cron("0 * * * *"))});
    harness.RunUntil(*scheduler, At("2026-03-01T02:00:30Z"));
  }
  CHECK(harness.runs == std::vector<std::string>{"hourly@2026-03-01T01:00:00+00:00",
                                                 "hourly@2026-03-01T02:00:00+00:00"});
  // Restarted at once: nothing is run again.
  {
    auto scheduler = harness.Make();
    scheduler->Set({Job("hourly", Cron("0 * * * *"))});
    scheduler->Tick();
    CHECK(harness.runs.size() == 2);
  }
  // Down for five hours: of the missed runs, only the most recent is made up.
  harness.now = At("2026-03-01T07:30:00Z");
  auto scheduler = harness.Make();
  scheduler->Set({Job("hourly", Cron("0 * * * *"))});
  scheduler->Tick();
  REQUIRE(harness.runs.size() == 3);
  CHECK(harness.runs.back() == "hourly@2026-03-01T07:00:00+00:00");
  // 03:00, 04:00, 05:00 and 06:00 were not run: four runs, in one tick.
  CHECK(scheduler->Status("demo", "hourly")["skipped_runs"] == 4);

  // catch_up: 0 makes up nothing.
  ScheduleState none = Cron("0 * * * *");
  none.catch_up = 0;
  harness.now = At("2026-03-01T12:30:00Z");
  auto later = harness.Make();
  later->Set({Job("hourly", none)});
  later->Tick();
  CHECK(harness.runs.size() == 3);
}

TEST_CASE(
    "catch-up runs of one tick do not overlap each other, and a run that cannot start is retried",
    "[scheduler]") {
  tests::TempDir dir("gantry-scheduler-test");
  Harness harness(dir.path() / "agent.db");
  harness.now = At("2026-03-01T00:00:30Z");
  ScheduleState three = Cron("0 * * * *");
  three.catch_up = 3;
  {
    auto scheduler = harness.Make();
    scheduler->Set({Job("hourly", three)});
    scheduler->Tick();
  }
  // Down for five hours, its runs never finishing (overlap: skip): three made up.
  harness.now = At("2026-03-01T05:30:00Z");
  auto scheduler = harness.Make();
  scheduler->Set({Job("hourly", three)});
  scheduler->Tick();
  CHECK(harness.runs == std::vector<std::string>{"hourly@2026-03-01T03:00:00+00:00",
                                                 "hourly@2026-03-01T04:00:00+00:00",
                                                 "hourly@2026-03-01T05:00:00+00:00"});
  CHECK(scheduler->Status("demo", "hourly")["skipped_runs"] == 2);  // 01:00 and 02:00

  // A run that cannot start is not recorded as done: the next tick tries it.
  Harness failing(dir.path() / "other.db");
  failing.now = At("2026-03-01T00:00:30Z");
  // The first start fails, by a hook that refuses once.
  Scheduler::Hooks hooks;
  int refused = 0;
  hooks.now = [&] { return failing.now; };
  hooks.run = [&](const ScheduledJob& job, const std::string&, ScheduleFire* fire) -> core::Status {
    if (refused++ == 0) return core::Error{core::ErrorCode::kIo, "disk full", {}};
    fire->last_call = "call-ok";
    failing.runs.push_back(job.function);
    return failing.records->SaveScheduleFire(*fire);
  };
  hooks.unfinished = [](const std::string&) { return false; };
  hooks.cancel = [](const std::string&) {};
  Scheduler retrying(failing.records.get(), std::move(hooks));
  retrying.Set({Job("hourly", Cron("0 * * * *"))});
  failing.now = At("2026-03-01T01:00:10Z");
  retrying.Tick();
  CHECK(failing.runs.empty());
  failing.now = At("2026-03-01T01:00:20Z");
  retrying.Tick();
  CHECK(failing.runs == std::vector<std::string>{"hourly"});
}

TEST_CASE("skipped_runs counts the runs not made, not the ticks that skipped them", "[scheduler]") {
  tests::TempDir dir("gantry-scheduler-test");
  Harness harness(dir.path() / "agent.db");
  ScheduleState every_second;
  every_second.every = 1s;
  harness.now = At("2026-03-01T00:00:00.500Z");
  {
    auto scheduler = harness.Make();
    scheduler->Set({Job("tick", every_second)});
    harness.now = At("2026-03-01T00:00:01.500Z");
    scheduler->Tick();
    REQUIRE(harness.runs == std::vector<std::string>{"tick@2026-03-01T00:00:01+00:00"});
    CHECK(scheduler->Status("demo", "tick")["skipped_runs"] == 0);
    harness.running.clear();  // each run ends before the next is due
  }
  // Down for an hour: due at 00:00:02 … 01:00:01, of which the newest
  // (on time) and the one before it (catch_up 1) run.
  harness.now = At("2026-03-01T01:00:01.500Z");
  {
    auto scheduler = harness.Make();
    scheduler->Set({Job("tick", every_second)});
    scheduler->Tick();
    CHECK(harness.runs.size() == 3);
    CHECK(scheduler->Status("demo", "tick")["skipped_runs"] == 3600 - 2);
    // A tick that skips nothing adds nothing.
    harness.running.clear();
    harness.now += 1s;
    scheduler->Tick();
    CHECK(harness.runs.size() == 4);
    CHECK(scheduler->Status("demo", "tick")["skipped_runs"] == 3600 - 2);
    harness.running.clear();
  }
  // catch_up 0, down for ten days: the count stops at its bound.
  ScheduleState none = every_second;
  none.catch_up = 0;
  harness.now += std::chrono::hours(24 * 10);
  auto scheduler = harness.Make();
  scheduler->Set({Job("tick", none)});
  scheduler->Tick();
  CHECK(harness.runs.size() == 5);  // the one on time
  CHECK(scheduler->Status("demo", "tick")["skipped_runs"] == Scheduler::kMostSkippedCounted);
}

TEST_CASE("a schedule removed and added again starts afresh", "[scheduler]") {
  tests::TempDir dir("gantry-scheduler-test");
  Harness harness(dir.path() / "agent.db");
  harness.now = At("2026-03-01T00:00:30Z");
  auto scheduler = harness.Make();
  scheduler->Set({Job("hourly", Cron("0 * * * *"))});
  scheduler->Set({});
  CHECK_FALSE(harness.records->FindScheduleFire("demo", "hourly").value().has_value());
  harness.now = At("2026-03-01T05:30:00Z");
  scheduler->Set({Job("hourly", Cron("0 * * * *"))});
  scheduler->Tick();
  CHECK(harness.runs.empty());  // nothing made up for the time it was gone
}

TEST_CASE("a schedule held while its image is unpacked catches up when back, as after downtime",
          "[scheduler]") {
  tests::TempDir dir("gantry-scheduler-test");
  Harness harness(dir.path() / "agent.db");
  harness.now = At("2026-03-01T00:00:30Z");
  auto scheduler = harness.Make();
  scheduler->Set({Job("hourly", Cron("0 * * * *"))});
  harness.RunUntil(*scheduler, At("2026-03-01T01:00:30Z"));
  REQUIRE(harness.runs == std::vector<std::string>{"hourly@2026-03-01T01:00:00+00:00"});
  // Wanted, not runnable: nothing fires, the last fire stays.
  ScheduledJob held = Job("hourly", Cron("0 * * * *"));
  held.held = true;
  scheduler->Set({held});
  harness.RunUntil(*scheduler, At("2026-03-01T04:30:00Z"));
  CHECK(harness.runs.size() == 1);
  CHECK(harness.records->FindScheduleFire("demo", "hourly").value().has_value());
  const nlohmann::json status = scheduler->Status("demo", "hourly");
  CHECK(status.contains("held"));
  CHECK_FALSE(status.contains("next_fire"));
  CHECK(status["last_fire"] == "2026-03-01T01:00:00+00:00");
  SECTION("back: the most recent missed run runs, the others are counted") {
    scheduler->Set({Job("hourly", Cron("0 * * * *"))});
    scheduler->Tick();
    CHECK(harness.runs.back() == "hourly@2026-03-01T04:00:00+00:00");
    CHECK(harness.runs.size() == 2);
    CHECK(scheduler->Status("demo", "hourly")["skipped_runs"] == 2);  // 02:00 and 03:00
  }
  SECTION("removed while held: its record goes, as any removed schedule's") {
    scheduler->Set({});
    CHECK_FALSE(harness.records->FindScheduleFire("demo", "hourly").value().has_value());
  }
}

TEST_CASE("overlapping runs are skipped, allowed or replaced as the schedule says", "[scheduler]") {
  tests::TempDir dir("gantry-scheduler-test");
  Harness harness(dir.path() / "agent.db");
  harness.now = At("2026-03-01T00:00:30Z");
  auto scheduler = harness.Make();
  ScheduleState skip = Cron("*/10 * * * *");
  ScheduleState allow = skip;
  allow.overlap = Overlap::kAllow;
  ScheduleState replace = skip;
  replace.overlap = Overlap::kReplace;
  scheduler->Set({Job("skip", skip), Job("allow", allow), Job("replace", replace)});
  // No run ever finishes.
  harness.RunUntil(*scheduler, At("2026-03-01T00:30:30Z"), /*finish_each_run=*/false);
  auto count = [&](const std::string& function) {
    return std::count_if(harness.runs.begin(), harness.runs.end(),
                         [&](const std::string& run) { return run.starts_with(function + "@"); });
  };
  CHECK(count("skip") == 1);
  CHECK(count("allow") == 3);
  CHECK(count("replace") == 3);
  CHECK(harness.cancelled.size() == 2);  // each replaced the one before
  CHECK(scheduler->Status("demo", "skip")["skipped_runs"] == 2);
}

TEST_CASE("a period fires on its epoch-anchored times", "[scheduler]") {
  tests::TempDir dir("gantry-scheduler-test");
  Harness harness(dir.path() / "agent.db");
  harness.now = At("2026-03-01T00:00:10Z");
  auto scheduler = harness.Make();
  ScheduleState every;
  every.every = 20min;
  scheduler->Set({Job("tick", every)});
  harness.RunUntil(*scheduler, At("2026-03-01T01:00:10Z"));
  CHECK(harness.runs == std::vector<std::string>{"tick@2026-03-01T00:20:00+00:00",
                                                 "tick@2026-03-01T00:40:00+00:00",
                                                 "tick@2026-03-01T01:00:00+00:00"});
}

}  // namespace
}  // namespace agents
