// `gantry schedule next` through the real binary: its output, line by line,
// and its one-line errors and exit codes.

#include <algorithm>
#include <catch2/catch.hpp>
#include <regex>
#include <string>

#include "tests/gantry_command.h"

using tests::RunGantry;

namespace {

// The output of a successful run; fails the test otherwise.
std::string Next(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"schedule", "next"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto result = RunGantry(argv);
  INFO(result.err);
  CHECK(result.exit_code == 0);
  CHECK(result.err.empty());
  return result.out;
}

}  // namespace

TEST_CASE("gantry schedule next: a time skipped by spring-forward fires as the gap ends") {
  CHECK(Next({"30 2 * * *", "--timezone", "Europe/Berlin", "--from", "2026-03-28T12:00:00+01:00",
              "--count", "3"}) ==
        "2026-03-29T03:00:00+02:00\n"
        "2026-03-30T02:30:00+02:00\n"
        "2026-03-31T02:30:00+02:00\n");
  // A time repeated by fall-back fires once, at its first occurrence.
  CHECK(Next({"30 1 * * *", "--timezone", "America/New_York", "--from", "2026-11-01T00:00:00-04:00",
              "--count", "2"}) ==
        "2026-11-01T01:30:00-04:00\n"
        "2026-11-02T01:30:00-05:00\n");
  // Hourly expressions fire in both passes of the repeated hour.
  CHECK(Next({"@hourly", "--timezone", "Europe/Berlin", "--from", "2026-10-25T01:30:00+02:00",
              "--count", "3"}) ==
        "2026-10-25T02:00:00+02:00\n"
        "2026-10-25T02:00:00+01:00\n"
        "2026-10-25T03:00:00+01:00\n");
}

TEST_CASE("gantry schedule next: defaults, words and --from forms") {
  // UTC by default; --from without an offset is local to --timezone.
  CHECK(Next({"0 0 29 feb *", "--from", "2024-03-01", "--count", "2"}) ==
        "2028-02-29T00:00:00+00:00\n2032-02-29T00:00:00+00:00\n");
  CHECK(Next({"0 9 * * mon-fri", "--timezone", "Asia/Tokyo", "--from", "2026-01-02T09:00",
              "--count", "1"}) == "2026-01-05T09:00:00+09:00\n");
  // The fields may come as separate words.
  CHECK(Next({"0", "12", "*", "*", "*", "--from", "2026-01-01T00:00:00Z", "--count", "1"}) ==
        "2026-01-01T12:00:00+00:00\n");
  // Strictly after --from.
  CHECK(Next({"0 12 * * *", "--from", "2026-01-01T12:00:00Z", "--count", "1"}) ==
        "2026-01-02T12:00:00+00:00\n");
  // Five times from now by default, each in the future and in order.
  auto now = RunGantry({"schedule", "next", "* * * * *"});
  CHECK(now.exit_code == 0);
  const std::regex line(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:00\+00:00)");
  std::size_t lines = 0;
  std::string previous;
  for (std::size_t start = 0; start < now.out.size();) {
    std::size_t end = now.out.find('\n', start);
    REQUIRE(end != std::string::npos);
    std::string text = now.out.substr(start, end - start);
    CHECK(std::regex_match(text, line));
    CHECK(text > previous);
    previous = text;
    ++lines;
    start = end + 1;
  }
  CHECK(lines == 5);
}

TEST_CASE("gantry schedule next: periods are \"every DURATION\", anchored at the Unix epoch") {
  CHECK(Next({"every 90s", "--from", "2026-03-29T00:00:00Z", "--count", "3"}) ==
        "2026-03-29T00:01:30+00:00\n2026-03-29T00:03:00+00:00\n2026-03-29T00:04:30+00:00\n");
  CHECK(Next({"every", "1h", "--from", "2026-03-29T00:30:00Z", "--count", "1"}) ==
        "2026-03-29T01:00:00+00:00\n");
  // --timezone only changes how a period's times are written.
  CHECK(Next({"every 1d", "--timezone", "Europe/Berlin", "--from", "2026-03-29T12:00:00+02:00",
              "--count", "2"}) == "2026-03-30T02:00:00+02:00\n2026-03-31T02:00:00+02:00\n");
  CHECK(Next({"every 1500ms", "--from", "1970-01-01T00:00:00Z", "--count", "2"}) ==
        "1970-01-01T00:00:01.500+00:00\n1970-01-01T00:00:03+00:00\n");
}

TEST_CASE("gantry schedule next: mistakes are one line on stderr and exit 2") {
  struct Case {
    std::vector<std::string> args;
    std::string error;
  };
  const Case cases[] = {
      {{"61 * * * *"}, "EXPR: minute 61 is out of range 0-59 (item \"61\")\n"},
      {{"0 0 30 feb *"},
       "EXPR: cron expression never fires: no month in \"feb\" has a day \"30\"\n"},
      {{"* * * *"},
       "EXPR: cron expression needs 5 fields (minute hour day-of-month month day-of-week), got 4: "
       "\"* * * *\"\n"},
      {{"90s"},
       "EXPR: cron expression needs 5 fields (minute hour day-of-month month day-of-week), got 1: "
       "\"90s\"; a period is written \"every 90s\"\n"},
      {{"every", "soon"}, "EXPR: "},
      {{"  "}, "EXPR: empty; expected a cron expression or \"every 90s\"\n"},
      {{"every 0s"}, "EXPR: a period must be between 1s and 8784h, got 0s\n"},
      {{"every 1h 2h"}, "EXPR: a period is \"every\" and one duration, e.g. \"every 90s\"\n"},
      {{"@daily", "--timezone", "Europe/Pariss"},
       "--timezone: unknown timezone \"Europe/Pariss\" (an IANA name such as Europe/Paris or UTC); "
       "did you mean \"Europe/Paris\"?\n"},
      {{"@daily", "--from", "yesterday"},
       "--from: invalid timestamp \"yesterday\": expected a date YYYY-MM-DD (ISO 8601, e.g. "
       "2026-03-29T01:30:00+01:00)\n"},
      {{"@daily", "--timezone", "Europe/Berlin", "--from", "2026-03-29T02:30"},
       "--from: invalid timestamp \"2026-03-29T02:30\": that local time does not exist in "
       "Europe/Berlin"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> argv = {"schedule", "next"};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    auto result = RunGantry(argv);
    INFO(c.args.front() << "\n" << result.err);
    CHECK(result.exit_code == 2);
    CHECK(result.out.empty());
    CHECK(result.err.rfind(c.error, 0) == 0);
    CHECK(std::count(result.err.begin(), result.err.end(), '\n') == 1);
  }
  // Command-line mistakes CLI11 catches exit 2 too.
  CHECK(RunGantry({"schedule", "next"}).exit_code == 2);
  CHECK(RunGantry({"schedule"}).exit_code == 2);
  CHECK(RunGantry({"schedule", "next", "@daily", "--count", "0"}).exit_code == 2);
  CHECK(RunGantry({"schedule", "next", "@daily", "--count", "many"}).exit_code == 2);
}

TEST_CASE("gantry schedule next: errors as JSON with --log-format json") {
  auto result = RunGantry({"--log-format", "json", "schedule", "next", "* 24 * * *"});
  CHECK(result.exit_code == 2);
  CHECK(result.err ==
        "{\"code\":\"invalid-argument\",\"level\":\"error\",\"message\":\"EXPR: hour 24 is out of "
        "range 0-23 (item \\\"24\\\")\"}\n");
}
