#include "core/wall_clock.h"

#include <catch2/catch.hpp>
#include <string>

namespace core {
namespace {

using Catch::Matchers::Contains;
using std::chrono::milliseconds;
using Instant = std::chrono::sys_time<milliseconds>;

const date::time_zone* Zone(std::string_view name) {
  Result<const date::time_zone*> zone = FindTimeZone(name);
  if (!zone.ok()) FAIL(zone.error().message);
  return *zone;
}

Instant Parse(std::string_view text, const date::time_zone* zone = nullptr) {
  Result<Instant> parsed = ParseTimestamp(text, zone);
  if (!parsed.ok()) FAIL(parsed.error().message);
  return *parsed;
}

std::string ErrorOf(std::string_view text, const date::time_zone* zone = nullptr) {
  Result<Instant> parsed = ParseTimestamp(text, zone);
  INFO(std::string(text));
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.error().code == ErrorCode::kInvalidArgument);
  return parsed.error().message;
}

// 2026-03-29T01:00:00Z: the instant Europe/Berlin springs forward.
constexpr Instant kSpringForward{milliseconds(1'774'746'000'000)};

TEST_CASE("wall clock: time zones by IANA name, with a did-you-mean") {
  CHECK(Zone("Europe/Berlin")->name() == "Europe/Berlin");
  CHECK(Zone("UTC")->name() == "UTC");
  auto typo = FindTimeZone("Europe/Pariss");
  REQUIRE_FALSE(typo.ok());
  CHECK(typo.error().code == ErrorCode::kInvalidArgument);
  CHECK(typo.error().message ==
        "unknown timezone \"Europe/Pariss\" (an IANA name such as Europe/Paris or UTC); did you "
        "mean \"Europe/Paris\"?");
  auto nothing_close = FindTimeZone("Nowhere");
  REQUIRE_FALSE(nothing_close.ok());
  CHECK(nothing_close.error().message ==
        "unknown timezone \"Nowhere\" (an IANA name such as Europe/Paris or UTC)");
  auto long_name = FindTimeZone(std::string(100'000, 'x'));
  REQUIRE_FALSE(long_name.ok());
  CHECK(long_name.error().message.size() < 200);
  CHECK_FALSE(FindTimeZone("").ok());
}

TEST_CASE("wall clock: timestamps are written in the zone's local time with its offset") {
  CHECK(FormatTimestamp(kSpringForward, Zone("Europe/Berlin")) == "2026-03-29T03:00:00+02:00");
  CHECK(FormatTimestamp(kSpringForward - milliseconds(1), Zone("Europe/Berlin")) ==
        "2026-03-29T01:59:59.999+01:00");
  CHECK(FormatTimestamp(kSpringForward, Zone("UTC")) == "2026-03-29T01:00:00+00:00");
  CHECK(FormatTimestamp(kSpringForward, nullptr) == "2026-03-29T01:00:00+00:00");
  CHECK(FormatTimestamp(kSpringForward, Zone("America/St_Johns")) == "2026-03-28T22:30:00-02:30");
  CHECK(FormatTimestamp(kSpringForward, Zone("Asia/Kathmandu")) == "2026-03-29T06:45:00+05:45");
  CHECK(FormatTimestamp(Instant(milliseconds(0)), Zone("UTC")) == "1970-01-01T00:00:00+00:00");
  CHECK(FormatTimestamp(Instant(milliseconds(-1500)), nullptr) == "1969-12-31T23:59:58.500+00:00");
  // Local mean time before standard time: an offset with seconds.
  CHECK(FormatTimestamp(Parse("1850-01-01T00:00:00Z"), Zone("Europe/Berlin")) ==
        "1850-01-01T00:53:28+00:53:28");
}

TEST_CASE("wall clock: ISO 8601 timestamps with offsets") {
  CHECK(Parse("2026-03-29T01:00:00Z") == kSpringForward);
  CHECK(Parse("2026-03-29T01:00:00z") == kSpringForward);
  CHECK(Parse("2026-03-29T03:00:00+02:00") == kSpringForward);
  CHECK(Parse("2026-03-29T03:00:00+0200") == kSpringForward);
  CHECK(Parse("2026-03-29T03:00+02") == kSpringForward);
  CHECK(Parse("2026-03-28t22:30:00-02:30") == kSpringForward);
  CHECK(Parse("2026-03-29 01:00:00.250Z") == kSpringForward + milliseconds(250));
  CHECK(Parse("2026-03-29T01:00:00.5Z") == kSpringForward + milliseconds(500));
  CHECK(Parse("2026-03-29T01:00:00.123456789Z") == kSpringForward + milliseconds(123));
  CHECK(Parse("2026-03-29T01:00:00,5Z") == kSpringForward + milliseconds(500));
  CHECK(Parse("1969-12-31T23:59:58.5Z") == Instant(milliseconds(-1500)));
  CHECK(Parse("2024-02-29T00:00:00Z") < Parse("2024-03-01T00:00:00Z"));
  // An offset wins over the zone.
  CHECK(Parse("2026-03-29T01:00:00Z", Zone("Asia/Tokyo")) == kSpringForward);
}

TEST_CASE("wall clock: timestamps without an offset are local to the zone") {
  CHECK(Parse("2026-03-29T01:00:00") == kSpringForward);  // no zone: UTC
  CHECK(Parse("2026-03-29") == Parse("2026-03-29T00:00:00Z"));
  CHECK(Parse("2026-03-29T03:00", Zone("Europe/Berlin")) == kSpringForward);
  CHECK(Parse("2026-03-29", Zone("Europe/Berlin")) == Parse("2026-03-29T00:00:00+01:00"));
  // A repeated local time is its first occurrence.
  CHECK(Parse("2026-10-25T02:30:00", Zone("Europe/Berlin")) == Parse("2026-10-25T02:30:00+02:00"));
  // A skipped one does not exist.
  CHECK_THAT(ErrorOf("2026-03-29T02:30:00", Zone("Europe/Berlin")),
             Contains("does not exist in Europe/Berlin") && Contains("give an offset"));
}

TEST_CASE("wall clock: malformed timestamps are one clear line") {
  CHECK(ErrorOf("tomorrow") ==
        "invalid timestamp \"tomorrow\": expected a date YYYY-MM-DD (ISO 8601, e.g. "
        "2026-03-29T01:30:00+01:00)");
  CHECK_THAT(ErrorOf(""), Contains("expected a date YYYY-MM-DD"));
  CHECK_THAT(ErrorOf("26-03-29"), Contains("expected a date"));
  CHECK_THAT(ErrorOf("2026-13-01"), Contains("month 13 is not 01-12"));
  CHECK_THAT(ErrorOf("2026-02-29"), Contains("no day 29 in that month"));
  CHECK_THAT(ErrorOf("2026-04-31T00:00Z"), Contains("no day 31"));
  CHECK_THAT(ErrorOf("2026-03-29X10:00"), Contains("expected T between date and time"));
  CHECK_THAT(ErrorOf("2026-03-29T10"), Contains("expected a time HH:MM"));
  CHECK_THAT(ErrorOf("2026-03-29T24:00"), Contains("hour 24 is not 00-23"));
  CHECK_THAT(ErrorOf("2026-03-29T10:60"), Contains("minute 60"));
  CHECK_THAT(ErrorOf("2026-03-29T10:00:60Z"), Contains("second 60"));
  CHECK_THAT(ErrorOf("2026-03-29T10:00:"), Contains("expected seconds"));
  CHECK_THAT(ErrorOf("2026-03-29T10:00:00."), Contains("digits after the decimal point"));
  CHECK_THAT(ErrorOf("2026-03-29T10:00:00 UTC"), Contains("expected an offset"));
  CHECK_THAT(ErrorOf("2026-03-29T10:00:00+2"), Contains("expected an offset"));
  CHECK_THAT(ErrorOf("2026-03-29T10:00:00+24:00"), Contains("offset is out of range"));
  CHECK_THAT(ErrorOf("2026-03-29T10:00:00Zjunk"), Contains("unexpected text after"));
  CHECK_THAT(ErrorOf("2026-03-29\x01"), Contains("\\x01"));
  CHECK(ErrorOf(std::string(10'000, '2')).size() < 200);
}

}  // namespace
}  // namespace core
