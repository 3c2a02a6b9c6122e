#include "agents/budget_guard.h"

#include <catch2/catch.hpp>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/temp_dir.h"

namespace agents {
namespace {

using namespace std::chrono_literals;

/// Unix ms of a UTC date and time, by the C library (timegm), not by the
/// code under test.
std::int64_t UtcMs(int year, int month, int day, int hour = 0, int minute = 0, int second = 0) {
  std::tm parts{};
  parts.tm_year = year - 1900;
  parts.tm_mon = month - 1;
  parts.tm_mday = day;
  parts.tm_hour = hour;
  parts.tm_min = minute;
  parts.tm_sec = second;
  return static_cast<std::int64_t>(timegm(&parts)) * 1000;
}

/// A closed record of `app` from `start_ms` to `end_ms` at `usd_per_second`.
UsageRecord Closed(std::int64_t start_ms, std::int64_t end_ms, double usd_per_second) {
  UsageRecord record;
  record.app = "demo";
  record.start_ms = start_ms;
  record.end_ms = end_ms;
  record.checkpoint_ms = end_ms;
  record.billable_seconds = BillableSeconds(start_ms, end_ms);
  record.usd_per_second = usd_per_second;
  record.cost_usd = static_cast<double>(record.billable_seconds) * usd_per_second;
  record.closed_by = "exit";
  return record;
}

TEST_CASE("budget periods are the UTC day and the UTC calendar month", "[budget_guard]") {
  std::int64_t noon = UtcMs(2026, 12, 1, 12);
  CHECK(UtcDay(noon).start_ms == UtcMs(2026, 12, 1));
  CHECK(UtcDay(noon).end_ms == UtcMs(2026, 12, 2));
  CHECK(UtcDay(UtcMs(2026, 12, 2)).start_ms == UtcMs(2026, 12, 2));  // midnight opens its day
  CHECK(UtcDay(UtcMs(2026, 12, 2) - 1).start_ms == UtcMs(2026, 12, 1));

  CHECK(UtcMonth(noon).start_ms == UtcMs(2026, 12, 1));
  CHECK(UtcMonth(noon).end_ms == UtcMs(2027, 1, 1));  // over the year's end
  CHECK(UtcMonth(UtcMs(2027, 1, 1) - 1).end_ms == UtcMs(2027, 1, 1));
  CHECK(UtcMonth(UtcMs(2028, 2, 15)).end_ms == UtcMs(2028, 3, 1));  // a leap February
  CHECK(UtcMonth(UtcMs(2027, 2, 28, 23, 59, 59)).end_ms == UtcMs(2027, 3, 1));
}

TEST_CASE("spend counts each record's share of the UTC day and month", "[budget_guard]") {
  const double rate = 0.01;  // USD a second

  SECTION("a record straddling UTC midnight counts in each day for its time there") {
    std::int64_t midnight = UtcMs(2026, 12, 2);
    // 30 s before midnight, 90 s after: 120 s billed.
    std::vector<UsageRecord> records = {Closed(midnight - 30'000, midnight + 90'000, rate)};
    BudgetSpend after = SpendOf(records, midnight + 100'000);
    CHECK(after.day_usd == Approx(120 * rate * 90 / 120));
    CHECK(after.month_usd == Approx(120 * rate));
    BudgetSpend before = SpendOf(records, midnight - 1);
    CHECK(before.day_usd == Approx(120 * rate * 30 / 120));
  }
  SECTION("at the month's rollover, the new month starts with the new day's share") {
    std::int64_t new_year = UtcMs(2027, 1, 1);
    std::vector<UsageRecord> records = {Closed(new_year - 60'000, new_year + 60'000, rate),
                                        Closed(new_year - 7'200'000, new_year - 3'600'000, rate)};
    BudgetSpend spend = SpendOf(records, new_year + 120'000);
    CHECK(spend.day_usd == Approx(60 * rate));
    CHECK(spend.month_usd == Approx(60 * rate));
    // December keeps the first record's first minute and the whole second record.
    BudgetSpend old_year = SpendOf(records, new_year - 1);
    CHECK(old_year.month_usd == Approx(60 * rate + 3600 * rate));
  }
  SECTION("a running record is measured to now") {
    std::int64_t start = UtcMs(2026, 12, 1, 12);
    UsageRecord running = Closed(start, start + 1000, rate);
    running.end_ms = 0;
    running.closed_by = "";
    BudgetSpend spend = SpendOf({running}, start + 10'000);
    CHECK(spend.day_usd == Approx(10 * rate));
  }
}

TEST_CASE("a cap is reached when the spend is at it", "[budget_guard]") {
  std::int64_t now = UtcMs(2026, 12, 1, 12);
  BudgetState budget;
  budget.daily_usd = 1;
  budget.monthly_usd = 10;
  CHECK_FALSE(FindBreach(budget, {0.99, 5}, now));
  auto daily = FindBreach(budget, {1, 10}, now);  // both: the daily one is named
  REQUIRE(daily);
  CHECK(daily->cap == "daily_usd");
  CHECK(daily->period.end_ms == UtcMs(2026, 12, 2));
  auto monthly = FindBreach(budget, {0.5, 10.5}, now);
  REQUIRE(monthly);
  CHECK(monthly->cap == "monthly_usd");
  CHECK(monthly->period.end_ms == UtcMs(2027, 1, 1));
  // A cap of nothing (an agent's share of a budget whose replicas there
  // cost nothing) is reached by spending, not before.
  BudgetState nothing;
  nothing.daily_usd = 0;
  CHECK_FALSE(FindBreach(nothing, {0, 0}, now));
  CHECK(FindBreach(nothing, {0.000001, 0.000001}, now));

  core::Error error = BudgetExceeded("demo", *daily);
  CHECK(error.code == core::ErrorCode::kBudgetExceeded);
  CHECK(error.message ==
        "app demo has spent $1.00 of its daily budget of $1.00 on this agent (budget.daily_usd, "
        "the UTC day from 2026-12-01T00:00:00+00:00): it is stopped until "
        "2026-12-02T00:00:00+00:00; raise "
        "budget.daily_usd in its spec and apply it to lift the stop sooner");
}

/// A usage ledger over a fresh agent.db in `dir`, with the default rates.
std::unique_ptr<UsageLedger> OpenLedger(const std::filesystem::path& dir) {
  auto database = AgentDatabase::Open(dir / "agent.db");
  REQUIRE(database.ok());
  auto ledger = UsageLedger::Open(*database, core::RateCard::Defaults(), "host-1", 1h);
  REQUIRE(ledger.ok());
  return std::move(ledger).value();
}

TEST_CASE("the guard stops an app at its cap until the period rolls over or the budget is raised",
          "[budget_guard]") {
  tests::TempDir dir("gantry-budget-test");
  auto opened = OpenLedger(dir.path());
  UsageLedger& ledger = *opened;

  const std::int64_t t0 = UtcMs(2026, 12, 1, 12);
  std::int64_t now = t0 + 20'000;
  std::vector<std::string> stopped, resumed;
  BudgetGuard::Hooks hooks;
  hooks.stop = [&](const std::string& app, const core::Error& why) {
    CHECK(why.code == core::ErrorCode::kBudgetExceeded);
    stopped.push_back(app);
  };
  hooks.resume = [&](const std::string& app) { resumed.push_back(app); };
  BudgetGuard guard(&ledger, hooks, 1s, [&] { return now; });

  // demo ran 10 s; other ran too, without a budget.
  MeteredContainer container{"demo", "train", "c1", "call-1", {"H100"}, 1, 1ull << 30};
  ledger.Stop(ledger.Start(container, t0), t0 + 10'000);
  container.app = "other";
  ledger.Stop(ledger.Start(container, t0), t0 + 10'000);
  auto records = ledger.Query(0, now, "demo");
  REQUIRE(records.ok());
  REQUIRE(records->size() == 1);
  const double cost = (*records)[0].cost_usd;
  REQUIRE(cost > 0);

  BudgetState budget;
  budget.daily_usd = cost / 2;
  guard.Set({{"demo", budget}});
  // Set reads nothing (the agent holds its lock): a new budget is judged by
  // the next evaluation, which calls the hooks.
  CHECK_FALSE(guard.Refusal("demo"));
  guard.Evaluate();
  auto refusal = guard.Refusal("demo");
  REQUIRE(refusal);
  CHECK(refusal->message.find("daily budget") != std::string::npos);
  CHECK_FALSE(guard.Refusal("other"));
  CHECK(stopped == std::vector<std::string>{"demo"});
  nlohmann::json status = guard.Status("demo");
  CHECK(status["state"] == "stopped");
  CHECK(status["spent_today_usd"].get<double>() == Approx(cost));
  CHECK(status["spent_month_usd"].get<double>() == Approx(cost));
  CHECK(status["daily_usd"].get<double>() == Approx(cost / 2));
  CHECK_FALSE(status.contains("monthly_usd"));
  CHECK(guard.Status("other").is_null());
  guard.Evaluate();
  // Stopped again at each evaluation while it lasts (a call that slipped
  // past the check ends), the warning logged once.
  CHECK(stopped == std::vector<std::string>{"demo", "demo"});
  stopped.clear();

  SECTION("a raised budget lifts the stop") {
    budget.daily_usd = cost * 2;
    guard.Set({{"demo", budget}});
    CHECK_FALSE(guard.Refusal("demo"));
    guard.Evaluate();
    CHECK(resumed == std::vector<std::string>{"demo"});
    CHECK(guard.Status("demo")["state"] == "ok");
  }
  SECTION("the next UTC day lifts a daily stop, not a monthly one") {
    now = UtcDay(t0).end_ms + 1000;
    guard.Evaluate();
    CHECK(resumed == std::vector<std::string>{"demo"});
    CHECK(guard.Status("demo")["spent_today_usd"].get<double>() == 0);
    CHECK(guard.Status("demo")["spent_month_usd"].get<double>() == Approx(cost));
    budget.daily_usd.reset();
    budget.monthly_usd = cost / 2;
    guard.Set({{"demo", budget}});
    CHECK(guard.Refusal("demo"));
    now = UtcMonth(t0).end_ms;
    guard.Evaluate();
    CHECK_FALSE(guard.Refusal("demo"));
  }
  SECTION("a budget removed lifts the stop") {
    guard.Set({});
    CHECK_FALSE(guard.Refusal("demo"));
    guard.Evaluate();
    CHECK(resumed == std::vector<std::string>{"demo"});
  }
  SECTION("alert marks the app and lets it run") {
    budget.on_exceed = BudgetAction::kAlert;
    guard.Set({{"demo", budget}});
    guard.Evaluate();
    CHECK_FALSE(guard.Refusal("demo"));
    CHECK(resumed == std::vector<std::string>{"demo"});  // it was stopped before
    CHECK(guard.Status("demo")["state"] == "alerted");
    CHECK(guard.Status("demo")["reason"].get<std::string>().find("budget.daily_usd") !=
          std::string::npos);
  }
}

TEST_CASE(
    "the spend counter reads only the records since its last read and agrees with a whole read",
    "[budget_guard]") {
  tests::TempDir dir("gantry-spend-counter-test");
  auto opened = OpenLedger(dir.path());
  UsageLedger& ledger = *opened;
  MeteredContainer container{"demo", "train", "c1", "", {"H100"}, 1, 1ull << 30};
  // What a whole read of the month says: the reference.
  auto whole = [&](std::int64_t now) {
    auto records = ledger.Query(UtcMonth(now).start_ms, now + 1, "demo");
    REQUIRE(records.ok());
    return SpendOf(*records, now);
  };
  SpendCounter counter;
  auto read = [&](std::int64_t now) {
    auto spend = counter.Read(ledger, "demo", now);
    REQUIRE(spend.ok());
    BudgetSpend expected = whole(now);
    CHECK(spend->day_usd == Approx(expected.day_usd));
    CHECK(spend->month_usd == Approx(expected.month_usd));
    return *spend;
  };

  // 200 containers ran earlier this month, 30 s each; one runs now.
  const std::int64_t t0 = UtcMs(2026, 12, 10, 12);
  for (int i = 1; i <= 200; ++i)
    ledger.Stop(ledger.Start(container, t0 - i * 3'600'000), t0 - i * 3'600'000 + 30'000);
  const std::string running = ledger.Start(container, t0 - 5'000);
  BudgetSpend first = read(t0);
  CHECK(counter.records_read() == 201);  // the first read is whole
  CHECK(first.month_usd > first.day_usd);
  read(t0 + 1'000);
  CHECK(counter.records_read() == 1);  // the running one: the rest are settled

  // One stops, another runs a second: both are read until they settle.
  ledger.Stop(running, t0 + 2'000);
  ledger.Stop(ledger.Start(container, t0 + 3'000), t0 + 4'000);
  read(t0 + 5'000);
  CHECK(counter.records_read() == 2);
  read(t0 + 120'000);
  CHECK(counter.records_read() == 2);
  BudgetSpend settled = read(t0 + 125'000);
  CHECK(counter.records_read() == 0);
  CHECK(counter.last()->month_usd == settled.month_usd);

  // A record written late, that ended before the settled mark, is counted
  // at the next whole read (10 minutes on at most), not before.
  ledger.Stop(ledger.Start(container, t0 + 10'000), t0 + 20'000);
  auto missed = counter.Read(ledger, "demo", t0 + 126'000);
  REQUIRE(missed.ok());
  CHECK(missed->month_usd == Approx(settled.month_usd));
  CHECK(missed->month_usd < whole(t0 + 126'000).month_usd);
  read(t0 + 126'000 + 10 * 60'000);
  CHECK(counter.records_read() == 203);

  // The next UTC day is read whole: nothing spent in it yet.
  BudgetSpend next_day = read(UtcDay(t0).end_ms + 1'000);
  CHECK(counter.records_read() == 203);
  CHECK(next_day.day_usd == 0);
  CHECK(next_day.month_usd == Approx(whole(t0 + 700'000).month_usd));
}

}  // namespace
}  // namespace agents
