// `gantry schedule next EXPR`: the next fire times of a schedule, so users can
// check an expression before they deploy it (and tests can check the engine
// in core/schedule_times.h against published vectors through the binary).

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "core/quantity.h"
#include "core/schedule_times.h"
#include "core/wall_clock.h"
#include "toolchain/exit_code.h"
#include "toolchain/reporter.h"
#include "toolchain/verbs.h"

namespace toolchain {
namespace {

struct NextCommand {
  std::vector<std::string> expression;  // the words of EXPR, joined by one space
  std::string timezone;                 // "" means UTC
  std::string from;                     // "" means now
  int count = 5;
};

int UsageError(const std::string& what, const std::string& message) {
  ReportErrors({core::Error{core::ErrorCode::kInvalidArgument, what + ": " + message, {}}});
  return kExitUsage;
}

int RunNext(const NextCommand& command) {
  std::string text;
  for (const std::string& word : command.expression) text += (text.empty() ? "" : " ") + word;

  const date::time_zone* zone = nullptr;
  if (!command.timezone.empty()) {
    auto found = core::FindTimeZone(command.timezone);
    if (!found) return UsageError("--timezone", found.error().message);
    zone = *found;
  }

  // "every 90s" is a period, like the spec's `every: 90s`; anything else is cron.
  std::optional<core::ScheduleTimes> schedule;
  std::vector<std::string> words;
  std::istringstream split(text);
  for (std::string word; split >> word;) words.push_back(word);
  if (words.empty())
    return UsageError("EXPR", "empty; expected a cron expression or \"every 90s\"");
  if (words.front() == "every" || words.front() == "every:") {
    if (words.size() != 2)
      return UsageError("EXPR", "a period is \"every\" and one duration, e.g. \"every 90s\"");
    auto period = core::ParseDuration(words[1]);
    if (!period) return UsageError("EXPR", period.error().message);
    auto every = core::ScheduleTimes::Every(*period);
    if (!every) return UsageError("EXPR", every.error().message);
    schedule = std::move(every).value();
  } else {
    auto cron = core::ParseCron(text);
    if (!cron) {
      std::string message = cron.error().message;
      if (words.size() == 1 && core::ParseDuration(words[0]))
        message += "; a period is written \"every " + words[0] + "\"";
      return UsageError("EXPR", message);
    }
    if (zone == nullptr) {
      auto utc = core::FindTimeZone("UTC");
      if (!utc) return UsageError("--timezone", utc.error().message);
      zone = *utc;
    }
    schedule = core::ScheduleTimes::Cron(std::move(cron).value(), zone);
  }

  core::FireTime after =
      std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
  if (!command.from.empty()) {
    auto from = core::ParseTimestamp(command.from, zone);
    if (!from) return UsageError("--from", from.error().message);
    after = *from;
  }

  for (int printed = 0; printed < command.count; ++printed) {
    std::optional<core::FireTime> next = schedule->Next(after);
    if (!next) {
      if (printed > 0) break;
      ReportErrors(
          {core::Error{core::ErrorCode::kInvalidArgument, "EXPR: " + text + " never fires", {}}});
      return kExitUserError;
    }
    std::printf("%s\n", core::FormatTimestamp(*next, zone).c_str());
    after = *next;
  }
  return kExitOk;
}

}  // namespace

void AddScheduleVerb(CLI::App& gantry, int* exit_code) {
  auto* verb = gantry.add_subcommand("schedule", "Check schedules: when a cron or period fires");
  verb->require_subcommand(1);
  auto command = std::make_shared<NextCommand>();
  auto* next = verb->add_subcommand(
      "next", "Print the next fire times of EXPR, one ISO 8601 timestamp with offset a line");
  next->add_option("EXPR", command->expression,
                   "A cron expression (\"30 2 * * *\", \"@daily\"; quote it) or a period "
                   "(\"every 90s\", anchored at 1970-01-01T00:00:00Z)")
      ->required();
  next->add_option("--timezone", command->timezone,
                   "IANA time zone the cron expression runs in and times are printed in "
                   "(default: UTC)");
  next->add_option("--from", command->from,
                   "Print fire times strictly after this ISO 8601 time (default: now); without "
                   "an offset it is local to --timezone");
  next->add_option("--count", command->count, "How many fire times to print (default: 5)")
      ->check(CLI::Range(1, 10'000));
  next->callback([command, exit_code] { *exit_code = RunNext(*command); });
}

}  // namespace toolchain
