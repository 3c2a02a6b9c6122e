#pragma once

#include <date/tz.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.h"

namespace core {

// Wall-clock time as people read and write it: IANA time zones found by name,
// and instants written as ISO 8601 timestamps with their UTC offset. Its uses:
// 1) checking the `timezone:` of a schedule when the spec is read; 2) the
// schedule engine (core/schedule_times.h), which evaluates cron in a zone;
// 3) `gantry schedule next`, which reads --from and prints fire times.
// The zones come from the operating system's tz database (Debian `tzdata`),
// read through Howard Hinnant's date/tz.

/// Now on the wall clock as Unix epoch milliseconds: the time the agent's
/// records, its API and its usage ledger are written in.
std::int64_t NowMs();

/// The IANA zone called `name` ("Europe/Berlin", "UTC"). Fails with
/// kInvalidArgument: `unknown timezone "Europe/Pariss" (an IANA name such as
/// Europe/Paris or UTC); did you mean "Europe/Paris"?` (the hint when a known
/// name is close), or, when the database cannot be read, a message that says
/// to install tzdata.
Result<const date::time_zone*> FindTimeZone(std::string_view name);

/// `instant` in `zone`'s local time with its offset, RFC 3339 style:
/// "2026-03-29T03:00:00+02:00"; milliseconds appear only when not zero
/// ("…:00.500+02:00"); UTC is written "+00:00". An offset that is not whole
/// minutes (local mean time before 1900) gets its seconds: "+00:53:28".
/// A null `zone` means UTC.
std::string FormatTimestamp(std::chrono::sys_time<std::chrono::milliseconds> instant,
                            const date::time_zone* zone);

/// Reads an ISO 8601 timestamp: "YYYY-MM-DD", or "YYYY-MM-DDTHH:MM" with
/// optional ":SS" and fraction (".5", to the millisecond; more digits are cut),
/// then an optional offset "Z", "±HH:MM", "±HHMM" or "±HH". The separator may
/// also be "t" or a space. Without an offset the time is local to `zone`: a
/// local time that a daylight-saving change skips is an error, one that it
/// repeats means its first occurrence (a null `zone` means UTC). Fails with kInvalidArgument and a
/// message that quotes the text and says what is wrong.
Result<std::chrono::sys_time<std::chrono::milliseconds>> ParseTimestamp(
    std::string_view text, const date::time_zone* zone);

/// A point in time as a command's option gives it (`gantry usage --since`,
/// `gantry logs --since`): a duration back from `now_ms` ("24h", "30m") or
/// an ISO 8601 timestamp as ParseTimestamp reads it (UTC unless it has an
/// offset). Unix epoch milliseconds; kInvalidArgument naming `option`.
Result<std::int64_t> ParseTimeOption(const std::string& option, std::string_view text,
                                     std::int64_t now_ms);

}  // namespace core
