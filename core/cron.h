#pragma once

#include <bitset>
#include <string_view>

#include "core/result.h"

namespace core {

/// A parsed 5-field cron expression (minute hour day-of-month month
/// day-of-week), as the set of allowed values of each field. It is for
/// deciding whether a scheduled job is due at a given wall-clock minute. Its
/// uses: 1) checking a schedule when it is read, so that a typo is reported
/// then instead of the job silently never running; 2) asking whether a job is
/// due at a wall-clock minute; 3) finding the next fire times in a time zone
/// (core/schedule_times.h, which skips whole months, days and hours).
///
/// Days follow Vixie cron: when both day fields are restricted (neither is
/// "*"), a day matches if EITHER field matches ("0 0 13 * fri" runs on every
/// 13th and every Friday); otherwise both must match. Unlike Vixie cron, which
/// only looks at the field's first character, but as robfig/cron v3
/// (Kubernetes' CronJob) does, a stepped wildcard such as "*/2" counts as
/// restricted: a day field is open when one of its items is a wildcard of
/// step 1 ("*", "*/1", "*,5").
struct CronExpression {
  std::bitset<60> minutes;               // 0-59
  std::bitset<24> hours;                 // 0-23
  std::bitset<32> days_of_month;         // bits 1-31; bit 0 is never set
  std::bitset<13> months;                // bits 1-12; bit 0 is never set
  std::bitset<7> days_of_week;           // 0 = Sunday ... 6 = Saturday
  bool day_of_month_restricted = false;  // no day-of-month item was "*" or "*/1"
  bool day_of_week_restricted = false;   // no day-of-week item was "*" or "*/1"

  /// Whether the expression fires at this time. day_of_week is 0-6 with
  /// 0 = Sunday (7 is also read as Sunday); any argument out of its field's
  /// range does not match.
  bool Matches(int minute, int hour, int day_of_month, int month, int day_of_week) const;

  /// Whether the expression fires on this day at all (its month and the day
  /// rule above), whatever the hour and minute. Same argument ranges as Matches.
  bool MatchesDay(int day_of_month, int month, int day_of_week) const;
};

/// Parses a cron expression: exactly 5 fields separated by spaces or tabs, each
/// a comma-separated list of `*`, `N`, `N-M`, `*/S`, `N-M/S` or `N/S` (N up to
/// the field's maximum, every S). Months take jan..dec and days of the week
/// sun..sat (case-insensitive, also in ranges: "mon-fri"); day-of-week 7 is
/// Sunday. The whole expression may instead be one of the macros @yearly,
/// @annually, @monthly, @weekly, @daily, @midnight or @hourly.
///
/// An expression that names no real day fails too: "0 0 30 feb *" or
/// "0 0 31 apr,jun *" would never fire (29 February counts: it fires in leap
/// years). Vixie cron accepts such a line and silently never runs it.
///
/// Fails with kInvalidArgument and a message that names the field, the reason
/// and the offending item as written; the message carries no location (the
/// caller knows where the expression came from).
Result<CronExpression> ParseCron(std::string_view text);

}  // namespace core
