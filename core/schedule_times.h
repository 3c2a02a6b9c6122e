#pragma once

// When schedules fire. This pair sits beside core/cron.h rather than inside
// it: cron.h is the expression (parse and match, no clock, no time zone),
// this is time arithmetic over it in a time zone, with the tz database as a
// dependency, plus `every:` periods, which are not cron at all.

#include <date/tz.h>

#include <chrono>
#include <optional>
#include <string_view>
#include <vector>

#include "core/cron.h"
#include "core/result.h"

namespace core {

/// An instant, UTC, to the millisecond: when a schedule is due.
using FireTime = std::chrono::sys_time<std::chrono::milliseconds>;

/// The first time after `after` (strictly) at which `cron` fires, evaluated
/// in `zone`'s local time, or nullopt when it never fires.
///
/// Daylight-saving changes follow Vixie cron (ISC cron 4, cronie), with its
/// "wildcard" test made exact as "the hour field allows all 24 hours":
/// - A local time that a spring-forward skips fires once, at the first
///   instant after the gap: "30 2 * * *" in Europe/Berlin on 2026-03-29 fires
///   at 03:00+02:00. Several skipped times ("*/10 2 * * *") fire once
///   together, and not again if the first time after the gap matches too.
/// - A local time that a fall-back repeats fires once, at its first
///   occurrence: "30 2 * * *" in Berlin on 2026-10-25 fires at 02:30+02:00,
///   not again at 02:30+01:00.
/// - Except for expressions whose hour field allows every hour ("*/15 * * *
///   *", "0 * * * *", "@hourly"): they follow the wall clock instant by
///   instant, so they keep their rhythm in real time: they fire in both
///   passes of a repeated hour, and skipped times simply do not occur.
/// Vixie cron tests the hour field's first character for "*", so it treats
/// "0 */2 * * *" as hourly; here that is a fixed-time expression.
///
/// Search: day by day in local time, skipping months and days that do not
/// match and hours that do not match, from one offset period of the zone to
/// the next. It looks at most kCronHorizon ahead: the longest gap between two
/// fire times of any expression ParseCron accepts is 8 years ("0 0 29 feb *"
/// from 2096 to 2104, 2100 not being a leap year), so nullopt means the
/// expression never fires (ParseCron rejects those; a hand-built expression
/// with an empty field is one).
std::optional<std::chrono::sys_seconds> NextFireTime(const CronExpression& cron,
                                                     const date::time_zone* zone,
                                                     std::chrono::sys_seconds after);

/// How far NextFireTime looks ahead: 8 years of 366 days and a week.
inline constexpr std::chrono::seconds kCronHorizon = std::chrono::hours(24 * (8 * 366 + 7));

/// The first time strictly after `after` of a period: the instants
/// 1970-01-01T00:00:00Z + k × period, for every whole k. Anchoring at the
/// Unix epoch, not at a deploy or a start, means every agent and every restart
/// agrees on the due times without storing anything (`every: 1h` fires on the
/// hour UTC, `every: 90s` at 00:00:00, 00:01:30, 00:03:00 UTC...). `period`
/// must be positive.
FireTime NextPeriodTime(std::chrono::milliseconds period, FireTime after);

/// What is due when a schedule is looked at at `now`, having last fired at
/// `last_fire` (see ScheduleTimes::DueBetween).
struct DueRuns {
  std::vector<FireTime> run;       // the due times to run now, oldest first
  std::optional<FireTime> latest;  // the newest due time in (last_fire, now]: the new last fire
  bool skipped = false;            // some missed due times are not in `run`
};

/// A schedule that can say when it is next due and which due times were
/// missed: a cron expression in a time zone, or a period. It is for the
/// agent's scheduler, and for `gantry schedule next`. Its uses: 1) Next(now)
/// is when to wake up; 2) DueBetween(last_fire, now, ...) is what to run when
/// woken, on time or after the agent was down; 3) printing fire times in the
/// schedule's zone(). Pure functions of their arguments: the clock is an
/// argument, so tests (and the agent's tests) drive it with a test clock.
class ScheduleTimes {
 public:
  /// A cron schedule: `expression` as ParseCron reads it, in the IANA zone
  /// `timezone`. Fails with ParseCron's or FindTimeZone's error.
  static Result<ScheduleTimes> Cron(std::string_view expression, std::string_view timezone);
  static ScheduleTimes Cron(CronExpression expression, const date::time_zone* zone);

  /// A period (`every: 90s`), anchored at the Unix epoch (NextPeriodTime).
  /// Fails unless kMinPeriod <= period <= kMaxPeriod, the bounds the spec's
  /// `every:` has.
  static Result<ScheduleTimes> Every(std::chrono::milliseconds period);

  static constexpr std::chrono::milliseconds kMinPeriod = std::chrono::seconds(1);
  static constexpr std::chrono::milliseconds kMaxPeriod = std::chrono::hours(24 * 366);

  /// The first due time strictly after `after`; nullopt when a cron
  /// schedule never fires (see NextFireTime).
  std::optional<FireTime> Next(FireTime after) const;

  /// The due times in (last_fire, now] and which of them to run. The newest
  /// one, if less than `on_time` before `now`, is on time and always runs. The
  /// others were missed (the agent was down, or fell behind); of those only
  /// the most recent `max_catch_up` run (0: none), the rest are skipped.
  /// Persist `latest` as the new last fire whether or not it ran, so that a
  /// restart neither repeats nor loses a run.
  ///
  /// `on_time` defaults to a minute, cron's own resolution: an agent slowed
  /// by a loaded host must not drop a run that is a few seconds late. The cost
  /// is proportional to the due times looked at, not to the downtime: it
  /// searches back from `now` in growing windows until it has enough.
  DueRuns DueBetween(FireTime last_fire, FireTime now, int max_catch_up,
                     std::chrono::milliseconds on_time = kOnTime) const;

  static constexpr std::chrono::milliseconds kOnTime = std::chrono::minutes(1);

  /// The zone a cron schedule is evaluated in; nullptr for a period, which
  /// needs no zone (FormatTimestamp writes it in UTC).
  const date::time_zone* zone() const { return zone_; }
  bool is_period() const { return !cron_.has_value(); }

 private:
  ScheduleTimes(std::optional<CronExpression> cron, const date::time_zone* zone,
                std::chrono::milliseconds period)
      : cron_(std::move(cron)), zone_(zone), period_(period) {}

  std::optional<CronExpression> cron_;  // nullopt: a period
  const date::time_zone* zone_;         // nullptr for a period
  std::chrono::milliseconds period_{0};
};

}  // namespace core
