#include "core/schedule_times.h"

#include <algorithm>
#include <deque>
#include <string>
#include <utility>

#include "core/quantity.h"
#include "core/wall_clock.h"

namespace core {
namespace {

using date::local_days;
using date::local_seconds;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;
using std::chrono::sys_seconds;

// The first local minute in [from, limit) that `cron` matches.
std::optional<local_seconds> FirstMatch(const CronExpression& cron, local_seconds from,
                                        local_seconds limit) {
  const auto first_minute = date::ceil<minutes>(from);
  local_days day = date::floor<date::days>(first_minute);
  // Where to start on the first day; every later day starts at 00:00.
  int start_hour = static_cast<int>(date::floor<hours>(first_minute - day).count());
  int start_minute = static_cast<int>((first_minute - day - hours(start_hour)).count());
  while (day < limit) {
    const date::year_month_day ymd(day);
    const int month = static_cast<int>(static_cast<unsigned>(ymd.month()));
    if (!cron.months[static_cast<std::size_t>(month)]) {
      // The whole month is out: go to the 1st of the next.
      day = local_days((ymd.year() / ymd.month() / 1) + date::months(1));
      start_hour = start_minute = 0;
      continue;
    }
    const int day_of_week = static_cast<int>(date::weekday(day).c_encoding());
    if (cron.MatchesDay(static_cast<int>(static_cast<unsigned>(ymd.day())), month, day_of_week)) {
      for (int hour = start_hour; hour < 24; ++hour) {
        if (!cron.hours[static_cast<std::size_t>(hour)]) continue;
        for (int minute = hour == start_hour ? start_minute : 0; minute < 60; ++minute) {
          if (!cron.minutes[static_cast<std::size_t>(minute)]) continue;
          const local_seconds match = day + hours(hour) + minutes(minute);
          if (match >= limit) return std::nullopt;
          return match;
        }
      }
    }
    day += date::days(1);
    start_hour = start_minute = 0;
  }
  return std::nullopt;
}

local_seconds ToLocal(sys_seconds instant, seconds offset) {
  return local_seconds(instant.time_since_epoch() + offset);
}

// How far back DueBetween looks for missed cron due times: far beyond any
// downtime, and short enough that the window arithmetic cannot overflow.
constexpr milliseconds kCatchUpLimit = std::chrono::hours(24 * 366 * 1000);

// How many whole periods from the epoch to `instant`, floored (negative before it).
long long PeriodIndex(milliseconds period, FireTime instant) {
  const long long count = instant.time_since_epoch().count();
  const long long length = period.count();
  long long index = count / length;
  if (count % length < 0) --index;
  return index;
}

}  // namespace

std::optional<sys_seconds> NextFireTime(const CronExpression& cron, const date::time_zone* zone,
                                        sys_seconds after) {
  // Walk the zone's offset periods (sys_info: [begin, end) at one offset) from
  // the one holding `after`. Inside one, local time is after + offset, a
  // one-to-one map, so the first local match is the first instant. What a
  // change of offset does is decided where a period begins.
  const bool hourly = cron.hours.all();
  const sys_seconds horizon = after + kCronHorizon;
  date::sys_info period = zone->get_info(after);
  while (true) {
    local_seconds window_begin = ToLocal(period.begin, period.offset);
    const local_seconds window_end = ToLocal(std::min(period.end, horizon), period.offset);
    // A change of offset can only matter to `after` if it was at most a day
    // before (offsets differ by less than that); this also keeps away from
    // the first period of a zone, which begins at the dawn of time.
    if (!hourly && period.begin > after - hours(48)) {
      const date::sys_info previous = zone->get_info(period.begin - seconds(1));
      const local_seconds previous_end = ToLocal(period.begin, previous.offset);
      if (previous.offset < period.offset) {
        // Spring forward: local times in [previous_end, window_begin) never
        // happen; if one matches, it fires as the gap ends.
        if (period.begin > after && FirstMatch(cron, previous_end, window_begin))
          return period.begin;
      } else if (previous.offset > period.offset) {
        // Fall back: local times before previous_end happened already, in the
        // previous period, and fired there.
        window_begin = std::max(window_begin, previous_end);
      }
    }
    const local_seconds from = std::max(window_begin, ToLocal(after, period.offset) + seconds(1));
    if (auto match = FirstMatch(cron, from, window_end))
      return sys_seconds(match->time_since_epoch() - period.offset);
    if (period.end >= horizon) return std::nullopt;
    period = zone->get_info(period.end);
  }
}

FireTime NextPeriodTime(milliseconds period, FireTime after) {
  return FireTime((PeriodIndex(period, after) + 1) * period);
}

Result<ScheduleTimes> ScheduleTimes::Cron(std::string_view expression, std::string_view timezone) {
  Result<CronExpression> cron = ParseCron(expression);
  if (!cron.ok()) return cron.error();
  Result<const date::time_zone*> zone = FindTimeZone(timezone);
  if (!zone.ok()) return zone.error();
  return Cron(std::move(cron).value(), *zone);
}

ScheduleTimes ScheduleTimes::Cron(CronExpression expression, const date::time_zone* zone) {
  return ScheduleTimes(std::move(expression), zone, milliseconds(0));
}

Result<ScheduleTimes> ScheduleTimes::Every(milliseconds period) {
  if (period < kMinPeriod || period > kMaxPeriod) {
    return Error{ErrorCode::kInvalidArgument,
                 "a period must be between " + FormatDuration(kMinPeriod) + " and " +
                     FormatDuration(kMaxPeriod) + ", got " + FormatDuration(period),
                 {}};
  }
  return ScheduleTimes(std::nullopt, nullptr, period);
}

std::optional<FireTime> ScheduleTimes::Next(FireTime after) const {
  if (!cron_) return NextPeriodTime(period_, after);
  // Cron fires on whole seconds, so "after `after`" is "after its second".
  auto next = NextFireTime(*cron_, zone_, date::floor<seconds>(after));
  if (!next) return std::nullopt;
  return FireTime(*next);
}

DueRuns ScheduleTimes::DueBetween(FireTime last_fire, FireTime now, int max_catch_up,
                                  milliseconds on_time) const {
  DueRuns due;
  if (now <= last_fire) return due;
  max_catch_up = std::max(max_catch_up, 0);
  // The newest `wanted` due times in (last_fire, now]: enough for the on-time
  // one, max_catch_up missed ones, and one more to know whether any was
  // skipped. `total` counts every due time found in the window searched.
  const std::size_t wanted = static_cast<std::size_t>(max_catch_up) + 2;
  std::deque<FireTime> newest;
  long long total = 0;
  if (!cron_) {
    const long long first = PeriodIndex(period_, last_fire) + 1;
    const long long last = PeriodIndex(period_, now);
    total = last - first + 1;
    for (long long index = std::max(first, last - static_cast<long long>(wanted) + 1);
         index <= last; ++index) {
      newest.push_back(FireTime(index * period_));
    }
  } else {
    // Search back from `now` in windows four times longer each time, so a
    // year of downtime of a minutely job costs a few thousand steps. Due
    // times more than kCatchUpLimit old are not looked for.
    const FireTime oldest = std::max(last_fire, now - kCatchUpLimit);
    milliseconds window = std::chrono::hours(24);
    while (true) {
      const FireTime start = now - oldest > window ? now - window : oldest;
      newest.clear();
      total = 0;
      for (auto next = Next(start); next && *next <= now; next = Next(*next)) {
        newest.push_back(*next);
        if (newest.size() > wanted) newest.pop_front();
        ++total;
      }
      if (newest.size() >= wanted || start == oldest) break;
      window *= 4;
    }
  }
  if (newest.empty()) return due;
  due.latest = newest.back();
  std::optional<FireTime> on_time_run;
  if (now - newest.back() < on_time) {
    on_time_run = newest.back();
    newest.pop_back();
  }
  const std::size_t missed_to_run = std::min(newest.size(), static_cast<std::size_t>(max_catch_up));
  due.run.assign(newest.end() - static_cast<std::ptrdiff_t>(missed_to_run), newest.end());
  if (on_time_run) due.run.push_back(*on_time_run);
  due.skipped = total > static_cast<long long>(due.run.size());
  return due;
}

}  // namespace core
