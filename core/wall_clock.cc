#include "core/wall_clock.h"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <utility>
#include <vector>

#include "core/quantity.h"
#include "core/suggestion.h"

namespace core {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Instant = std::chrono::sys_time<milliseconds>;

Error WallClockError(std::string message) {
  return Error{ErrorCode::kInvalidArgument, std::move(message), {}};
}

// `text` in double quotes, unprintable bytes as \xNN, cut to 64 characters so
// that a pasted paragraph still makes a one-line message (as the spec's
// messages quote: "xxx..." (100000 characters)).
std::string Quote(std::string_view text) {
  constexpr std::size_t kShown = 64;
  std::string quoted = "\"";
  for (std::size_t i = 0; i < text.size() && i < kShown; ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte < 0x20 || byte >= 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
      quoted += escaped;
    } else {
      if (text[i] == '"' || text[i] == '\\') quoted += '\\';
      quoted += text[i];
    }
  }
  if (text.size() > kShown)
    return quoted + "...\" (" + std::to_string(text.size()) + " characters)";
  return quoted + "\"";
}

// "+02:00", "-03:30", "+00:53:28".
std::string FormatOffset(seconds offset) {
  const char sign = offset < seconds(0) ? '-' : '+';
  const long long total = std::llabs(offset.count());
  char text[48];
  if (total % 60 == 0) {
    std::snprintf(text, sizeof text, "%c%02lld:%02lld", sign, total / 3600, total / 60 % 60);
  } else {
    std::snprintf(text, sizeof text, "%c%02lld:%02lld:%02lld", sign, total / 3600, total / 60 % 60,
                  total % 60);
  }
  return text;
}

// Reads ISO 8601 pieces left to right; every Read* fails with the reason.
class TimestampReader {
 public:
  explicit TimestampReader(std::string_view text) : text_(text) {}

  Result<Instant> Read(const date::time_zone* zone) {
    int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
    milliseconds fraction(0);
    if (!Digits(4, &year) || !Char('-') || !Digits(2, &month) || !Char('-') || !Digits(2, &day)) {
      return Fail("expected a date YYYY-MM-DD");
    }
    if (month < 1 || month > 12) return Fail("month " + std::to_string(month) + " is not 01-12");
    const date::year_month_day date_part{date::year(year),
                                         date::month(static_cast<unsigned>(month)),
                                         date::day(static_cast<unsigned>(day))};
    if (!date_part.ok()) return Fail("there is no day " + std::to_string(day) + " in that month");
    std::optional<seconds> offset;
    if (pos_ < text_.size()) {
      if (!Char('T') && !Char('t') && !Char(' ')) return Fail("expected T between date and time");
      if (!Digits(2, &hour) || !Char(':') || !Digits(2, &minute))
        return Fail("expected a time HH:MM after the date");
      if (Char(':') && !Digits(2, &second)) return Fail("expected seconds SS after HH:MM:");
      if (Char('.') || Char(',')) {
        const std::size_t start = pos_;
        int scale = 100;
        while (pos_ < text_.size() && IsDigit(text_[pos_])) {
          fraction += milliseconds((text_[pos_] - '0') * scale);
          scale /= 10;
          ++pos_;
        }
        if (pos_ == start) return Fail("expected digits after the decimal point");
      }
      if (hour > 23) return Fail("hour " + std::to_string(hour) + " is not 00-23");
      if (minute > 59) return Fail("minute " + std::to_string(minute) + " is not 00-59");
      if (second > 59) return Fail("second " + std::to_string(second) + " is not 00-59");
      if (pos_ < text_.size()) {
        Status read = ReadOffset(&offset);
        if (!read.ok()) return read.error();
      }
    }
    if (pos_ < text_.size()) return Fail("unexpected text after the timestamp");

    const auto local_time = date::local_days(date_part) + std::chrono::hours(hour) +
                            std::chrono::minutes(minute) + seconds(second);
    if (!offset && zone == nullptr) offset = seconds(0);
    if (offset) return Instant(local_time.time_since_epoch() - *offset + fraction);
    const date::local_info info = zone->get_info(local_time);
    if (info.result == date::local_info::nonexistent) {
      return Fail("that local time does not exist in " + std::string(zone->name()) +
                  " (a daylight-saving change skips it); give an offset");
    }
    // Unique, or the first of two occurrences (the earlier offset).
    return Instant(local_time.time_since_epoch() - info.first.offset + fraction);
  }

 private:
  static bool IsDigit(char c) { return c >= '0' && c <= '9'; }

  bool Char(char expected) {
    if (pos_ < text_.size() && text_[pos_] == expected) {
      ++pos_;
      return true;
    }
    return false;
  }

  bool Digits(int count, int* value) {
    *value = 0;
    for (int i = 0; i < count; ++i) {
      if (pos_ >= text_.size() || !IsDigit(text_[pos_])) return false;
      *value = *value * 10 + (text_[pos_++] - '0');
    }
    return true;
  }

  Status ReadOffset(std::optional<seconds>* offset) {
    if (Char('Z') || Char('z')) {
      *offset = seconds(0);
      return Ok{};
    }
    int sign = 0;
    if (Char('+'))
      sign = 1;
    else if (Char('-'))
      sign = -1;
    else
      return Fail("expected an offset Z, +HH:MM or -HH:MM after the time");
    int hours = 0, minutes = 0;
    if (!Digits(2, &hours)) return Fail("expected an offset Z, +HH:MM or -HH:MM after the time");
    if (pos_ < text_.size()) {
      Char(':');
      if (!Digits(2, &minutes))
        return Fail("expected an offset Z, +HH:MM or -HH:MM after the time");
    }
    if (hours > 23 || minutes > 59) return Fail("offset is out of range -23:59..+23:59");
    *offset = sign * (std::chrono::hours(hours) + std::chrono::minutes(minutes));
    return Ok{};
  }

  Error Fail(const std::string& reason) const {
    return WallClockError("invalid timestamp " + Quote(text_) + ": " + reason +
                          " (ISO 8601, e.g. 2026-03-29T01:30:00+01:00)");
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

}  // namespace

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<const date::time_zone*> FindTimeZone(std::string_view name) {
  const std::string wanted(name);
  try {
    return date::locate_zone(wanted);
  } catch (const std::runtime_error&) {
    // Not found, or the database cannot be read: told apart below.
  }
  std::string message =
      "unknown timezone " + Quote(name) + " (an IANA name such as Europe/Paris or UTC)";
  try {
    std::vector<std::string> names;
    for (const auto& zone : date::get_tzdb().zones) names.push_back(std::string(zone.name()));
    if (auto suggestion = ClosestMatch(name, names))
      message += "; did you mean " + Quote(*suggestion) + "?";
  } catch (const std::runtime_error&) {
    message += "; the timezone database could not be read (install tzdata)";
  }
  return WallClockError(std::move(message));
}

std::string FormatTimestamp(Instant instant, const date::time_zone* zone) {
  const seconds offset = zone ? zone->get_info(date::floor<seconds>(instant)).offset : seconds(0);
  const auto local = date::local_time<milliseconds>(instant.time_since_epoch() + offset);
  const auto day = date::floor<date::days>(local);
  const date::year_month_day ymd(day);
  const date::hh_mm_ss<milliseconds> time(local - day);
  char text[64];
  std::snprintf(text, sizeof text, "%04d-%02u-%02uT%02d:%02d:%02d", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(time.hours().count()), static_cast<int>(time.minutes().count()),
                static_cast<int>(time.seconds().count()));
  std::string result = text;
  if (time.subseconds().count() != 0) {
    std::snprintf(text, sizeof text, ".%03d", static_cast<int>(time.subseconds().count()));
    result += text;
  }
  return result + FormatOffset(offset);
}

Result<Instant> ParseTimestamp(std::string_view text, const date::time_zone* zone) {
  return TimestampReader(text).Read(zone);
}

Result<std::int64_t> ParseTimeOption(const std::string& option, std::string_view text,
                                     std::int64_t now_ms) {
  if (auto duration = ParseDuration(text); duration) return now_ms - duration->count();
  auto timestamp = ParseTimestamp(text, nullptr);
  if (!timestamp) {
    return Error{ErrorCode::kInvalidArgument,
                 option + ": \"" + std::string(text) +
                     "\" is neither a duration back from now (24h, 30m) nor an ISO 8601 "
                     "time (2026-05-01, 2026-05-01T12:00Z)",
                 {}};
  }
  return timestamp->time_since_epoch().count();
}

}  // namespace core
