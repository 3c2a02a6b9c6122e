#include "core/schedule_times.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "core/wall_clock.h"

namespace core {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;
using std::chrono::sys_seconds;

const date::time_zone* Zone(std::string_view name) {
  Result<const date::time_zone*> zone = FindTimeZone(name);
  if (!zone.ok()) FAIL(zone.error().message);
  return *zone;
}

FireTime At(std::string_view timestamp, const date::time_zone* zone = nullptr) {
  Result<FireTime> parsed = ParseTimestamp(timestamp, zone);
  if (!parsed.ok()) FAIL(parsed.error().message);
  return *parsed;
}

CronExpression Cron(std::string_view text) {
  Result<CronExpression> parsed = ParseCron(text);
  if (!parsed.ok()) FAIL("\"" << std::string(text) << "\": " << parsed.error().message);
  return *parsed;
}

// The next `count` fire times of `expression` in `zone` after `from`, as
// `gantry schedule next` prints them.
std::vector<std::string> Next(std::string_view expression, std::string_view zone_name,
                              std::string_view from, int count = 1) {
  const date::time_zone* zone = Zone(zone_name);
  const CronExpression cron = Cron(expression);
  std::vector<std::string> times;
  sys_seconds after = date::floor<seconds>(At(from, zone));
  for (int i = 0; i < count; ++i) {
    std::optional<sys_seconds> next = NextFireTime(cron, zone, after);
    if (!next) break;
    times.push_back(FormatTimestamp(*next, zone));
    after = *next;
  }
  return times;
}

using Times = std::vector<std::string>;

// robfig/cron's spec_test.go TestNext table (github.com/robfig/cron, the
// 6-field version with seconds, commit 0422546), cut to 5 fields: its seconds
// field dropped, "?" written "*", times in UTC. Where gantry's rules differ
// the row says so.
TEST_CASE("cron next fire time: robfig/cron's TestNext vectors") {
  struct Row {
    const char* from;
    const char* expression;
    const char* expected;
  };
  const Row rows[] = {
      // Simple cases.
      {"2012-07-09T14:45:00Z", "0/15 * * * *", "2012-07-09T15:00:00+00:00"},
      {"2012-07-09T14:59:00Z", "0/15 * * * *", "2012-07-09T15:00:00+00:00"},
      {"2012-07-09T14:59:59Z", "0/15 * * * *", "2012-07-09T15:00:00+00:00"},
      // Wrap around hours.
      {"2012-07-09T15:45:00Z", "20-35/15 * * * *", "2012-07-09T16:20:00+00:00"},
      // Wrap around days.
      {"2012-07-09T23:46:00Z", "*/15 * * * *", "2012-07-10T00:00:00+00:00"},
      {"2012-07-09T23:45:00Z", "20-35/15 * * * *", "2012-07-10T00:20:00+00:00"},
      {"2012-07-09T23:35:51Z", "20-35/15 * * * *", "2012-07-10T00:20:00+00:00"},
      {"2012-07-09T23:35:51Z", "20-35/15 1/2 * * *", "2012-07-10T01:20:00+00:00"},
      {"2012-07-09T23:35:51Z", "20-35/15 10-12 * * *", "2012-07-10T10:20:00+00:00"},
      {"2012-07-09T23:35:51Z", "20-35/15 1/2 */2 * *", "2012-07-11T01:20:00+00:00"},
      {"2012-07-09T23:35:51Z", "20-35/15 * 9-20 * *", "2012-07-10T00:20:00+00:00"},
      {"2012-07-09T23:35:51Z", "20-35/15 * 9-20 jul *", "2012-07-10T00:20:00+00:00"},
      // Wrap around months.
      {"2012-07-09T23:35:00Z", "0 0 9 apr-oct *", "2012-08-09T00:00:00+00:00"},
      // robfig/cron v1, whose vectors these are, reads "*/5" as
      // unrestricted, so both day fields must match (Monday 6 August); here,
      // as in v3 (Kubernetes' CronJob), a stepped wildcard is a restriction
      // and the OR rule lets in Wednesday 1 August (core/cron.h).
      {"2012-07-09T23:35:00Z", "0 0 */5 apr,aug,oct mon", "2012-08-01T00:00:00+00:00"},
      {"2012-07-09T23:35:00Z", "0 0 */5 oct mon", "2012-10-01T00:00:00+00:00"},
      // Wrap around years.
      {"2012-07-09T23:35:00Z", "0 0 * feb mon", "2013-02-04T00:00:00+00:00"},
      {"2012-07-09T23:35:00Z", "0 0 * feb mon/2", "2013-02-01T00:00:00+00:00"},
      // Wrap around minute, hour, day, month and year.
      {"2012-12-31T23:59:45Z", "* * * * *", "2013-01-01T00:00:00+00:00"},
      // Leap year.
      {"2012-07-09T23:35:00Z", "0 0 29 feb *", "2016-02-29T00:00:00+00:00"},
  };
  for (const Row& row : rows) {
    INFO(row.expression << " after " << row.from);
    CHECK(Next(row.expression, "UTC", row.from) == Times{row.expected});
  }
}

TEST_CASE("cron next fire time: robfig/cron's daylight-saving vectors in America/New_York") {
  // robfig skips a local time that does not exist to the next year
  // (2013-03-11T02:30:00-04:00); here it fires as the gap ends.
  CHECK(Next("30 2 11 mar *", "America/New_York", "2012-03-11T00:00:00-05:00") ==
        Times{"2012-03-11T03:00:00-04:00"});
  CHECK(Next("30 2 4 nov *", "America/New_York", "2012-11-04T00:00:00-04:00") ==
        Times{"2012-11-04T02:30:00-05:00"});
  // robfig fires 01:30 again in its second occurrence (01:30-05:00); here a
  // repeated local time fired at its first, before 01:45-04:00, so not again.
  CHECK(Next("30 1 4 nov *", "America/New_York", "2012-11-04T01:45:00-04:00") ==
        Times{"2013-11-04T01:30:00-05:00"});
}

TEST_CASE("cron next fire time is strictly after the time given") {
  CHECK(Next("0 9 * * *", "UTC", "2026-01-05T09:00:00Z") == Times{"2026-01-06T09:00:00+00:00"});
  CHECK(Next("0 9 * * *", "UTC", "2026-01-05T08:59:59.999Z") == Times{"2026-01-05T09:00:00+00:00"});
  CHECK(Next("0 9 * * *", "UTC", "2026-01-05T09:00:00.001Z") == Times{"2026-01-06T09:00:00+00:00"});
  CHECK(Next("* * * * *", "UTC", "2026-01-05T09:00:30Z", 3) == Times{"2026-01-05T09:01:00+00:00",
                                                                     "2026-01-05T09:02:00+00:00",
                                                                     "2026-01-05T09:03:00+00:00"});
}

TEST_CASE("cron next fire time: leap days, month ends and the day OR rule") {
  CHECK(
      Next("0 0 29 feb *", "UTC", "2024-02-29T00:00:00Z", 3) ==
      Times{"2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00", "2036-02-29T00:00:00+00:00"});
  // 2100 is not a leap year: the longest gap there is, 8 years.
  CHECK(Next("0 0 29 feb *", "UTC", "2096-03-01T00:00:00Z") == Times{"2104-02-29T00:00:00+00:00"});
  // The 31st only in months that have one.
  CHECK(
      Next("0 12 31 * *", "UTC", "2026-01-31T12:00:00Z", 3) ==
      Times{"2026-03-31T12:00:00+00:00", "2026-05-31T12:00:00+00:00", "2026-07-31T12:00:00+00:00"});
  // Every 13th and every Friday (Vixie's OR rule): Friday 2 January 2026,
  // Friday 9, Tuesday 13, Friday 16.
  CHECK(Next("0 0 13 * fri", "UTC", "2026-01-01T00:00:00Z", 4) ==
        Times{"2026-01-02T00:00:00+00:00", "2026-01-09T00:00:00+00:00", "2026-01-13T00:00:00+00:00",
              "2026-01-16T00:00:00+00:00"});
  // With the day-of-month "*", the day of the week alone decides.
  CHECK(Next("0 0 * * fri", "UTC", "2026-01-01T00:00:00Z", 2) ==
        Times{"2026-01-02T00:00:00+00:00", "2026-01-09T00:00:00+00:00"});
  // 30 February never exists, but the OR rule still fires on Mondays.
  CHECK(Next("0 0 30 feb mon", "UTC", "2026-01-01T00:00:00Z", 2) ==
        Times{"2026-02-02T00:00:00+00:00", "2026-02-09T00:00:00+00:00"});
  // Day-of-week 7 is Sunday.
  CHECK(Next("0 0 * * 7", "UTC", "2026-01-01T00:00:00Z") == Times{"2026-01-04T00:00:00+00:00"});
}

TEST_CASE("cron next fire time: @macros") {
  CHECK(Next("@yearly", "UTC", "2026-03-29T12:00:00Z") == Times{"2027-01-01T00:00:00+00:00"});
  CHECK(Next("@annually", "Asia/Tokyo", "2026-12-31T23:59:00+09:00") ==
        Times{"2027-01-01T00:00:00+09:00"});
  CHECK(Next("@monthly", "UTC", "2026-02-01T00:00:00Z") == Times{"2026-03-01T00:00:00+00:00"});
  CHECK(Next("@weekly", "UTC", "2026-03-29T00:00:00Z") == Times{"2026-04-05T00:00:00+00:00"});
  CHECK(Next("@daily", "Europe/Berlin", "2026-03-28T12:00:00+01:00", 2) ==
        Times{"2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00"});
  CHECK(Next("@midnight", "UTC", "2026-03-29T00:00:00Z") == Times{"2026-03-30T00:00:00+00:00"});
  CHECK(Next("@hourly", "UTC", "2026-03-29T10:59:59Z", 2) ==
        Times{"2026-03-29T11:00:00+00:00", "2026-03-29T12:00:00+00:00"});
}

TEST_CASE("cron next fire time: spring forward in Europe/Berlin (02:00 -> 03:00, 2026-03-29)") {
  // A skipped local time fires once, as the gap ends.
  CHECK(Next("30 2 * * *", "Europe/Berlin", "2026-03-29T00:00:00+01:00", 2) ==
        Times{"2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"});
  CHECK(Next("30 3 * * *", "Europe/Berlin", "2026-03-29T00:00:00+01:00") ==
        Times{"2026-03-29T03:30:00+02:00"});
  // Several skipped times fire once together ...
  CHECK(Next("*/10 2 * * *", "Europe/Berlin", "2026-03-29T01:00:00+01:00", 2) ==
        Times{"2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00"});
  // ... and not twice when 03:00 itself matches.
  CHECK(
      Next("0,30 2,3 * * *", "Europe/Berlin", "2026-03-29T01:00:00+01:00", 3) ==
      Times{"2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00", "2026-03-30T02:00:00+02:00"});
  // Hourly expressions follow the clock: the skipped hour just is not there.
  CHECK(
      Next("30 * * * *", "Europe/Berlin", "2026-03-29T00:45:00+01:00", 3) ==
      Times{"2026-03-29T01:30:00+01:00", "2026-03-29T03:30:00+02:00", "2026-03-29T04:30:00+02:00"});
  CHECK(
      Next("*/15 * * * *", "Europe/Berlin", "2026-03-29T01:40:00+01:00", 3) ==
      Times{"2026-03-29T01:45:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:15:00+02:00"});
  CHECK(Next("@hourly", "Europe/Berlin", "2026-03-29T00:30:00+01:00", 2) ==
        Times{"2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00"});
  // Asked from inside the gap's hour in real time (01:00:30Z is 03:00:30+02:00).
  CHECK(Next("30 2 * * *", "Europe/Berlin", "2026-03-29T03:00:30+02:00") ==
        Times{"2026-03-30T02:30:00+02:00"});
}

TEST_CASE("cron next fire time: fall back in Europe/Berlin (03:00 -> 02:00, 2026-10-25)") {
  // A repeated local time fires once, at its first occurrence.
  CHECK(Next("30 2 * * *", "Europe/Berlin", "2026-10-25T00:00:00+02:00", 2) ==
        Times{"2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"});
  // Asked during the second pass, it does not fire again.
  CHECK(Next("30 2 * * *", "Europe/Berlin", "2026-10-25T02:10:00+01:00") ==
        Times{"2026-10-26T02:30:00+01:00"});
  CHECK(Next("*/20 2 * * *", "Europe/Berlin", "2026-10-25T01:59:00+02:00", 4) ==
        Times{"2026-10-25T02:00:00+02:00", "2026-10-25T02:20:00+02:00", "2026-10-25T02:40:00+02:00",
              "2026-10-26T02:00:00+01:00"});
  // Hourly expressions fire in both passes, keeping their rhythm.
  CHECK(Next("*/20 * * * *", "Europe/Berlin", "2026-10-25T01:59:00+02:00", 7) ==
        Times{"2026-10-25T02:00:00+02:00", "2026-10-25T02:20:00+02:00", "2026-10-25T02:40:00+02:00",
              "2026-10-25T02:00:00+01:00", "2026-10-25T02:20:00+01:00", "2026-10-25T02:40:00+01:00",
              "2026-10-25T03:00:00+01:00"});
  CHECK(
      Next("@hourly", "Europe/Berlin", "2026-10-25T01:30:00+02:00", 3) ==
      Times{"2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"});
}

TEST_CASE("cron next fire time: America/New_York (2026-03-08 and 2026-11-01)") {
  CHECK(Next("30 2 * * *", "America/New_York", "2026-03-08T00:00:00-05:00", 2) ==
        Times{"2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"});
  CHECK(Next("30 1 * * *", "America/New_York", "2026-11-01T00:00:00-04:00", 2) ==
        Times{"2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"});
  CHECK(
      Next("0 * * * *", "America/New_York", "2026-11-01T00:30:00-04:00", 3) ==
      Times{"2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00"});
  // Weekdays at 09:00 go on at 09:00 local across the change.
  CHECK(Next("0 9 * * mon-fri", "America/New_York", "2026-03-06T10:00:00-05:00", 2) ==
        Times{"2026-03-09T09:00:00-04:00", "2026-03-10T09:00:00-04:00"});
}

TEST_CASE("cron next fire time: Australia/Lord_Howe's half-hour daylight saving") {
  // Spring forward 02:00 -> 02:30 on 2026-10-04.
  CHECK(Next("15 2 * * *", "Australia/Lord_Howe", "2026-10-04T00:00:00+10:30", 2) ==
        Times{"2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"});
  CHECK(Next("45 2 * * *", "Australia/Lord_Howe", "2026-10-04T00:00:00+10:30") ==
        Times{"2026-10-04T02:45:00+11:00"});
  // Fall back 02:00 -> 01:30 on 2026-04-05: 01:30-01:59 happens twice.
  CHECK(Next("45 1 * * *", "Australia/Lord_Howe", "2026-04-05T00:00:00+11:00", 2) ==
        Times{"2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"});
  CHECK(
      Next("45 * * * *", "Australia/Lord_Howe", "2026-04-05T00:50:00+11:00", 3) ==
      Times{"2026-04-05T01:45:00+11:00", "2026-04-05T01:45:00+10:30", "2026-04-05T02:45:00+10:30"});
}

TEST_CASE("cron next fire time: a skipped midnight and a skipped day") {
  // São Paulo sprang forward at midnight on 2018-11-04: @daily fired at 01:00.
  CHECK(Next("@daily", "America/Sao_Paulo", "2018-11-03T12:00:00-03:00", 2) ==
        Times{"2018-11-04T01:00:00-02:00", "2018-11-05T00:00:00-02:00"});
  // Samoa skipped 30 December 2011 when it crossed the date line.
  CHECK(Next("0 12 * * *", "Pacific/Apia", "2011-12-29T13:00:00-10:00", 2) ==
        Times{"2011-12-31T00:00:00+14:00", "2011-12-31T12:00:00+14:00"});
}

TEST_CASE("cron next fire time: an expression that never fires gives nullopt, quickly") {
  CronExpression empty;  // no values in any field: ParseCron never makes one
  CHECK_FALSE(NextFireTime(empty, Zone("UTC"), sys_seconds(hours(24 * 365 * 56))).has_value());
  CHECK_FALSE(NextFireTime(empty, Zone("Europe/Berlin"), sys_seconds(hours(24 * 365 * 56))));
  // Built by hand: 30 February, which ParseCron rejects.
  CronExpression thirtieth_of_february = Cron("0 0 * * *");
  thirtieth_of_february.days_of_month.reset();
  thirtieth_of_february.days_of_month.set(30);
  thirtieth_of_february.day_of_month_restricted = true;
  thirtieth_of_february.months.reset();
  thirtieth_of_february.months.set(2);
  CHECK_FALSE(NextFireTime(thirtieth_of_february, Zone("America/New_York"),
                           sys_seconds(hours(24 * 365 * 56))));
}

// The rule written as plainly as possible, minute by minute in real time: at
// instant t the wall clock shows local(t); an hourly expression fires whenever
// that matches; any other fires when it matches and is the first occurrence
// of that local time, or when t ends a gap that skipped a matching time.
std::vector<sys_seconds> BruteForce(const CronExpression& cron, const date::time_zone* zone,
                                    sys_seconds from, sys_seconds to) {
  auto matches = [&](date::local_seconds local) {
    const auto day = date::floor<date::days>(local);
    const date::year_month_day ymd(day);
    const date::hh_mm_ss<seconds> time(local - day);
    return cron.Matches(static_cast<int>(time.minutes().count()),
                        static_cast<int>(time.hours().count()),
                        static_cast<int>(static_cast<unsigned>(ymd.day())),
                        static_cast<int>(static_cast<unsigned>(ymd.month())),
                        static_cast<int>(date::weekday(day).c_encoding()));
  };
  std::vector<sys_seconds> fires;
  for (sys_seconds t = from; t < to; t += minutes(1)) {
    const date::sys_info info = zone->get_info(t);
    const date::local_seconds local(t.time_since_epoch() + info.offset);
    bool fires_now = false;
    if (matches(local)) {
      if (cron.hours.all()) {
        fires_now = true;
      } else {
        const date::local_info at = zone->get_info(local);
        fires_now = at.result == date::local_info::unique ||
                    t.time_since_epoch() == local.time_since_epoch() - at.first.offset;
      }
    }
    if (!cron.hours.all() && t == info.begin) {
      const date::sys_info before = zone->get_info(t - seconds(1));
      for (auto skipped = date::local_seconds(t.time_since_epoch() + before.offset);
           skipped < local; skipped += minutes(1)) {
        fires_now = fires_now || matches(skipped);
      }
    }
    if (fires_now) fires.push_back(t);
  }
  return fires;
}

TEST_CASE("cron next fire time agrees with minute-by-minute stepping around DST changes") {
  const char* expressions[] = {"30 2 * * *",  "*/10 2 * * *", "0,30 2,3 * * *", "*/15 * * * *",
                               "45 * * * *",  "0 1-3 * * *",  "* 2 * * *",      "@daily",
                               "0 */2 * * *", "15 1 * * sun", "59 23 * * *",    "0 0 1 * *"};
  struct Window {
    const char* zone;
    const char* from;
  };
  const Window windows[] = {
      {"Europe/Berlin", "2026-03-28T00:00:00Z"},
      {"Europe/Berlin", "2026-10-24T00:00:00Z"},
      {"America/New_York", "2026-03-07T00:00:00Z"},
      {"America/New_York", "2026-10-31T00:00:00Z"},
      {"Australia/Lord_Howe", "2026-04-04T00:00:00Z"},
      {"Australia/Lord_Howe", "2026-10-03T00:00:00Z"},
      {"America/Sao_Paulo", "2018-11-03T00:00:00Z"},
      {"Pacific/Apia", "2011-12-29T00:00:00Z"},
  };
  for (const Window& window : windows) {
    const date::time_zone* zone = Zone(window.zone);
    const sys_seconds from = date::floor<seconds>(At(window.from));
    const sys_seconds to = from + hours(72);
    for (const char* expression : expressions) {
      INFO(expression << " in " << window.zone << " from " << window.from);
      const CronExpression cron = Cron(expression);
      std::vector<sys_seconds> chained;
      for (auto next = NextFireTime(cron, zone, from - seconds(1)); next && *next < to;
           next = NextFireTime(cron, zone, *next)) {
        chained.push_back(*next);
      }
      CHECK(chained == BruteForce(cron, zone, from, to));
    }
  }
}

TEST_CASE("cron next fire time is fast: no minute-by-minute stepping") {
  // 1,500 leap days in a row, each found by searching four years ahead
  // through months and days that do not match: stepping minute by minute
  // would take 3 billion steps.
  const date::time_zone* zone = Zone("Europe/Berlin");
  const CronExpression leap_day = Cron("0 0 29 feb *");
  sys_seconds after = date::floor<seconds>(At("1970-01-01T00:00:00Z"));
  for (int i = 0; i < 1'500; ++i) {
    auto next = NextFireTime(leap_day, zone, after);
    REQUIRE(next);
    after = *next;
  }
  CHECK(after > At("7000-01-01T00:00:00Z"));
}

TEST_CASE("periods: the next multiple of the period since the Unix epoch, strictly after") {
  CHECK(NextPeriodTime(seconds(90), At("1970-01-01T00:00:00Z")) == At("1970-01-01T00:01:30Z"));
  CHECK(NextPeriodTime(seconds(90), At("1970-01-01T00:01:29.999Z")) == At("1970-01-01T00:01:30Z"));
  CHECK(NextPeriodTime(seconds(90), At("1970-01-01T00:01:30Z")) == At("1970-01-01T00:03:00Z"));
  // Before the epoch too.
  CHECK(NextPeriodTime(seconds(90), At("1969-12-31T23:59:00Z")) == At("1970-01-01T00:00:00Z"));
  CHECK(NextPeriodTime(seconds(90), At("1969-12-31T23:58:00Z")) == At("1969-12-31T23:58:30Z"));
  // 2026-03-29T00:00:00Z is 1774742400 s, a multiple of 90 and of 3600.
  CHECK(NextPeriodTime(seconds(90), At("2026-03-29T00:00:00Z")) == At("2026-03-29T00:01:30Z"));
  CHECK(NextPeriodTime(hours(1), At("2026-03-29T00:59:59.999Z")) == At("2026-03-29T01:00:00Z"));
  CHECK(NextPeriodTime(hours(1), At("2026-03-29T01:00:00Z")) == At("2026-03-29T02:00:00Z"));
  // Periods ignore time zones and daylight saving: 1d is midnight UTC.
  CHECK(NextPeriodTime(hours(24), At("2026-03-29T00:30:00+01:00")) == At("2026-03-29T00:00:00Z"));
  CHECK(NextPeriodTime(milliseconds(1500), At("1970-01-01T00:00:00Z")) ==
        At("1970-01-01T00:00:01.5Z"));
}

TEST_CASE("schedule times: Cron and Every build from what the spec holds") {
  auto cron = ScheduleTimes::Cron("30 2 * * *", "Europe/Berlin");
  REQUIRE(cron.ok());
  CHECK_FALSE(cron->is_period());
  CHECK(cron->zone()->name() == "Europe/Berlin");
  CHECK(cron->Next(At("2026-03-29T00:00:00+01:00")) == At("2026-03-29T03:00:00+02:00"));

  auto every = ScheduleTimes::Every(seconds(90));
  REQUIRE(every.ok());
  CHECK(every->is_period());
  CHECK(every->zone() == nullptr);
  CHECK(every->Next(At("2026-03-29T00:00:00Z")) == At("2026-03-29T00:01:30Z"));

  auto bad_cron = ScheduleTimes::Cron("61 * * * *", "UTC");
  REQUIRE_FALSE(bad_cron.ok());
  CHECK(bad_cron.error().message == "minute 61 is out of range 0-59 (item \"61\")");
  auto bad_zone = ScheduleTimes::Cron("@daily", "Europe/Berlni");
  REQUIRE_FALSE(bad_zone.ok());
  CHECK(bad_zone.error().code == ErrorCode::kInvalidArgument);
  CHECK_THAT(bad_zone.error().message, Catch::Contains("did you mean \"Europe/Berlin\"?"));
  auto too_short = ScheduleTimes::Every(milliseconds(999));
  REQUIRE_FALSE(too_short.ok());
  CHECK(too_short.error().message == "a period must be between 1s and 8784h, got 999ms");
  CHECK_FALSE(ScheduleTimes::Every(hours(24 * 367)).ok());
}

TEST_CASE("schedule times: DueBetween runs the on-time run and the most recent missed ones") {
  auto hourly = *ScheduleTimes::Cron("0 * * * *", "UTC");
  const FireTime last = At("2026-01-05T09:00:00Z");

  SECTION("nothing due") {
    DueRuns due = hourly.DueBetween(last, At("2026-01-05T09:59:59Z"), 1);
    CHECK(due.run.empty());
    CHECK_FALSE(due.latest);
    CHECK_FALSE(due.skipped);
    CHECK(hourly.DueBetween(last, last, 1).run.empty());
    CHECK(hourly.DueBetween(last, last - hours(5), 1).run.empty());
  }
  SECTION("on time: due less than a minute ago, run even with no catch-up") {
    for (int max_catch_up : {0, 1, 5}) {
      DueRuns due = hourly.DueBetween(last, At("2026-01-05T10:00:00.300Z"), max_catch_up);
      CHECK(due.run == std::vector<FireTime>{At("2026-01-05T10:00:00Z")});
      CHECK(due.latest == At("2026-01-05T10:00:00Z"));
      CHECK_FALSE(due.skipped);
    }
  }
  SECTION("after downtime: at most max_catch_up missed runs, the most recent") {
    const FireTime now = At("2026-01-05T12:30:00Z");
    DueRuns one = hourly.DueBetween(last, now, 1);
    CHECK(one.run == std::vector<FireTime>{At("2026-01-05T12:00:00Z")});
    CHECK(one.latest == At("2026-01-05T12:00:00Z"));
    CHECK(one.skipped);

    DueRuns none = hourly.DueBetween(last, now, 0);
    CHECK(none.run.empty());
    CHECK(none.latest == At("2026-01-05T12:00:00Z"));
    CHECK(none.skipped);

    DueRuns all = hourly.DueBetween(last, now, 5);
    CHECK(all.run == std::vector<FireTime>{At("2026-01-05T10:00:00Z"), At("2026-01-05T11:00:00Z"),
                                           At("2026-01-05T12:00:00Z")});
    CHECK_FALSE(all.skipped);

    DueRuns exactly = hourly.DueBetween(last, now, 3);
    CHECK(exactly.run.size() == 3);
    CHECK_FALSE(exactly.skipped);
  }
  SECTION("back just as a run is due: that one is on time, plus the catch-up") {
    DueRuns due = hourly.DueBetween(last, At("2026-01-05T12:00:20Z"), 1);
    CHECK(due.run == std::vector<FireTime>{At("2026-01-05T11:00:00Z"), At("2026-01-05T12:00:00Z")});
    CHECK(due.skipped);  // 10:00
    // A custom on-time window: 20 s late is late.
    DueRuns strict = hourly.DueBetween(last, At("2026-01-05T12:00:20Z"), 1, seconds(10));
    CHECK(strict.run == std::vector<FireTime>{At("2026-01-05T12:00:00Z")});
  }
  SECTION("a long downtime of a minutely job stays cheap") {
    auto minutely = *ScheduleTimes::Cron("* * * * *", "Europe/Berlin");
    DueRuns due = minutely.DueBetween(At("2016-01-01T00:00:00Z"), At("2026-01-01T00:00:30Z"), 1);
    CHECK(due.run == std::vector<FireTime>{At("2025-12-31T23:59:00Z"), At("2026-01-01T00:00:00Z")});
    CHECK(due.skipped);
  }
  SECTION("a leap-day job missed years ago is still found") {
    auto leap_day = *ScheduleTimes::Cron("0 0 29 feb *", "UTC");
    DueRuns due = leap_day.DueBetween(At("2019-01-01T00:00:00Z"), At("2026-01-01T00:00:00Z"), 1);
    CHECK(due.run == std::vector<FireTime>{At("2024-02-29T00:00:00Z")});
    CHECK(due.latest == At("2024-02-29T00:00:00Z"));
    CHECK(due.skipped);  // 2020-02-29
  }
}

TEST_CASE("schedule times: DueBetween on periods") {
  auto every = *ScheduleTimes::Every(seconds(90));
  // Due at 90, 180, ..., 540 s; 540 s is 30 s before now: on time.
  DueRuns due = every.DueBetween(At("1970-01-01T00:00:00Z"), At("1970-01-01T00:09:30Z"), 2);
  CHECK(due.run == std::vector<FireTime>{At("1970-01-01T00:06:00Z"), At("1970-01-01T00:07:30Z"),
                                         At("1970-01-01T00:09:00Z")});
  CHECK(due.latest == At("1970-01-01T00:09:00Z"));
  CHECK(due.skipped);
  // A year of a 1 s period is arithmetic, not 31 million steps.
  auto second = *ScheduleTimes::Every(seconds(1));
  DueRuns year = second.DueBetween(At("2025-01-01T00:00:00Z"), At("2026-01-01T00:00:00.500Z"), 0);
  CHECK(year.run == std::vector<FireTime>{At("2026-01-01T00:00:00Z")});
  CHECK(year.skipped);
  DueRuns none = every.DueBetween(At("1970-01-01T00:01:30Z"), At("1970-01-01T00:02:59Z"), 1);
  CHECK(none.run.empty());
  CHECK_FALSE(none.latest);
}

// An agent driven by a test clock: it wakes at each Next() (a little late,
// as a real one is), runs what DueBetween says and persists `latest`. Across
// DST days every due time runs exactly once, in order.
TEST_CASE("schedule times: an agent ticking with a test clock runs each due time once") {
  for (const char* expression : {"*/30 * * * *", "30 2 * * *", "0,30 2,3 * * *"}) {
    INFO(expression);
    auto times = *ScheduleTimes::Cron(expression, "Europe/Berlin");
    for (const char* start : {"2026-03-28T12:00:00Z", "2026-10-24T12:00:00Z"}) {
      INFO(start);
      FireTime last_fire = At(start);
      FireTime clock = last_fire;
      std::vector<FireTime> ran;
      while (clock < At(start) + hours(48)) {
        clock = *times.Next(clock) + milliseconds(250);
        DueRuns due = times.DueBetween(last_fire, clock, 1);
        ran.insert(ran.end(), due.run.begin(), due.run.end());
        if (due.latest) last_fire = *due.latest;
        CHECK_FALSE(due.skipped);
      }
      std::vector<FireTime> expected;
      for (auto next = times.Next(At(start)); next && *next < clock; next = times.Next(*next))
        expected.push_back(*next);
      CHECK(ran == expected);
    }
  }
}

}  // namespace
}  // namespace core
