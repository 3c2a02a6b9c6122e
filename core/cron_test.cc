#include "core/cron.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

namespace core {
namespace {

CronExpression Parse(std::string_view text) {
  Result<CronExpression> parsed = ParseCron(text);
  INFO("expression: \"" << std::string(text) << "\"");
  if (!parsed.ok()) FAIL("unexpected error: " << parsed.error().message);
  return parsed.value();
}

// The message ParseCron fails with; fails the test if it parses.
std::string ErrorOf(std::string_view text) {
  Result<CronExpression> parsed = ParseCron(text);
  INFO("expression: \"" << std::string(text) << "\"");
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.error().code == ErrorCode::kInvalidArgument);
  CHECK(parsed.error().location.file.empty());
  CHECK(parsed.error().location.line == 0);
  return parsed.error().message;
}

template <std::size_t N>
std::vector<int> Values(const std::bitset<N>& bits) {
  std::vector<int> values;
  for (std::size_t i = 0; i < N; ++i) {
    if (bits[i]) values.push_back(static_cast<int>(i));
  }
  return values;
}

void RequireSameSchedule(const CronExpression& a, const CronExpression& b) {
  REQUIRE(a.minutes == b.minutes);
  REQUIRE(a.hours == b.hours);
  REQUIRE(a.days_of_month == b.days_of_month);
  REQUIRE(a.months == b.months);
  REQUIRE(a.days_of_week == b.days_of_week);
  REQUIRE(a.day_of_month_restricted == b.day_of_month_restricted);
  REQUIRE(a.day_of_week_restricted == b.day_of_week_restricted);
}

using Catch::Matchers::Contains;

TEST_CASE("a cron expression of stars allows every value and restricts no day field") {
  CronExpression every_minute = Parse("* * * * *");
  REQUIRE(every_minute.minutes.count() == 60);
  REQUIRE(every_minute.hours.count() == 24);
  REQUIRE(every_minute.days_of_month.count() == 31);
  REQUIRE_FALSE(every_minute.days_of_month[0]);
  REQUIRE(every_minute.months.count() == 12);
  REQUIRE_FALSE(every_minute.months[0]);
  REQUIRE(every_minute.days_of_week.count() == 7);
  REQUIRE_FALSE(every_minute.day_of_month_restricted);
  REQUIRE_FALSE(every_minute.day_of_week_restricted);
  REQUIRE(every_minute.Matches(0, 0, 1, 1, 0));
  REQUIRE(every_minute.Matches(59, 23, 31, 12, 6));
}

TEST_CASE("cron macros expand to their 5-field schedules") {
  RequireSameSchedule(Parse("@yearly"), Parse("0 0 1 1 *"));
  RequireSameSchedule(Parse("@annually"), Parse("0 0 1 1 *"));
  RequireSameSchedule(Parse("@monthly"), Parse("0 0 1 * *"));
  RequireSameSchedule(Parse("@weekly"), Parse("0 0 * * 0"));
  RequireSameSchedule(Parse("@daily"), Parse("0 0 * * *"));
  RequireSameSchedule(Parse("@midnight"), Parse("0 0 * * *"));
  RequireSameSchedule(Parse("@hourly"), Parse("0 * * * *"));

  CronExpression yearly = Parse("@yearly");
  REQUIRE(yearly.Matches(0, 0, 1, 1, 3));
  REQUIRE_FALSE(yearly.Matches(0, 0, 1, 2, 3));
  REQUIRE_FALSE(yearly.Matches(1, 0, 1, 1, 3));

  CronExpression weekly = Parse("@weekly");
  REQUIRE(weekly.Matches(0, 0, 17, 3, 0));
  REQUIRE_FALSE(weekly.Matches(0, 0, 18, 3, 1));

  CronExpression hourly = Parse("@hourly");
  REQUIRE(Values(hourly.minutes) == std::vector<int>{0});
  REQUIRE(hourly.hours.count() == 24);
  REQUIRE(hourly.Matches(0, 13, 5, 7, 2));
  REQUIRE_FALSE(hourly.Matches(30, 13, 5, 7, 2));
}

TEST_CASE("cron macros ignore case and surrounding whitespace") {
  RequireSameSchedule(Parse("@DAILY"), Parse("0 0 * * *"));
  RequireSameSchedule(Parse("  \t@Hourly \t "), Parse("0 * * * *"));
}

TEST_CASE("cron fields are separated by any run of spaces and tabs") {
  RequireSameSchedule(Parse("  5\t\t4  *   * \t 1  "), Parse("5 4 * * 1"));
}

TEST_CASE("cron single values and lists") {
  CronExpression expression = Parse("1,15,30 0,12 1,15 6 1,3,5");
  REQUIRE(Values(expression.minutes) == std::vector<int>{1, 15, 30});
  REQUIRE(Values(expression.hours) == std::vector<int>{0, 12});
  REQUIRE(Values(expression.days_of_month) == std::vector<int>{1, 15});
  REQUIRE(Values(expression.months) == std::vector<int>{6});
  REQUIRE(Values(expression.days_of_week) == std::vector<int>{1, 3, 5});
  REQUIRE(expression.day_of_month_restricted);
  REQUIRE(expression.day_of_week_restricted);

  // Repeated values are harmless.
  REQUIRE(Values(Parse("5,5,5 * * * *").minutes) == std::vector<int>{5});
}

TEST_CASE("cron ranges include both ends") {
  CronExpression expression = Parse("10-12 9-17 1-3,28-31 11-12 1-5");
  REQUIRE(Values(expression.minutes) == std::vector<int>{10, 11, 12});
  REQUIRE(Values(expression.hours) == std::vector<int>{9, 10, 11, 12, 13, 14, 15, 16, 17});
  REQUIRE(Values(expression.days_of_month) == std::vector<int>{1, 2, 3, 28, 29, 30, 31});
  REQUIRE(Values(expression.months) == std::vector<int>{11, 12});
  REQUIRE(Values(expression.days_of_week) == std::vector<int>{1, 2, 3, 4, 5});
  REQUIRE(Values(Parse("7-7 * * * *").minutes) == std::vector<int>{7});
  REQUIRE(Parse("0-59 0-23 1-31 1-12 0-6").minutes.count() == 60);
}

TEST_CASE("cron steps") {
  REQUIRE(Values(Parse("*/15 * * * *").minutes) == std::vector<int>{0, 15, 30, 45});
  REQUIRE(Values(Parse("10-20/5 * * * *").minutes) == std::vector<int>{10, 15, 20});
  REQUIRE(Values(Parse("10-21/5 * * * *").minutes) == std::vector<int>{10, 15, 20});
  // N/S runs from N to the end of the field.
  REQUIRE(Values(Parse("5/20 * * * *").minutes) == std::vector<int>{5, 25, 45});
  REQUIRE(Values(Parse("* */7 * * *").hours) == std::vector<int>{0, 7, 14, 21});
  // Fields that start at 1 step from 1.
  REQUIRE(Values(Parse("* * */10 * *").days_of_month) == std::vector<int>{1, 11, 21, 31});
  REQUIRE(Values(Parse("* * * */5 *").months) == std::vector<int>{1, 6, 11});
  REQUIRE(Values(Parse("* * * * */2").days_of_week) == std::vector<int>{0, 2, 4, 6});
  REQUIRE(Values(Parse("* * * * 1/2").days_of_week) == std::vector<int>{1, 3, 5});
  REQUIRE(Values(Parse("*/1 * * * *").minutes).size() == 60);
  REQUIRE(Values(Parse("*/59 * * * *").minutes) == std::vector<int>{0, 59});
  REQUIRE(Values(Parse("0-30/10,45 * * * *").minutes) == std::vector<int>{0, 10, 20, 30, 45});
}

TEST_CASE("cron month and day names, in any case and in ranges") {
  REQUIRE(Values(Parse("* * * jan *").months) == std::vector<int>{1});
  REQUIRE(Values(Parse("* * * DEC *").months) == std::vector<int>{12});
  REQUIRE(Values(Parse("* * * JAN-Mar,jun *").months) == std::vector<int>{1, 2, 3, 6});
  REQUIRE(Values(Parse("* * * jan-dec/3 *").months) == std::vector<int>{1, 4, 7, 10});
  REQUIRE(Values(Parse("* * * feb/4 *").months) == std::vector<int>{2, 6, 10});
  REQUIRE(Values(Parse("* * * * sun").days_of_week) == std::vector<int>{0});
  REQUIRE(Values(Parse("* * * * mon-fri").days_of_week) == std::vector<int>{1, 2, 3, 4, 5});
  REQUIRE(Values(Parse("* * * * SAT,Sun").days_of_week) == std::vector<int>{0, 6});
  REQUIRE(Values(Parse("* * * * mon-5").days_of_week) == std::vector<int>{1, 2, 3, 4, 5});
  RequireSameSchedule(Parse("0 9 * jan-jun mon-fri"), Parse("0 9 * 1-6 1-5"));
}

TEST_CASE("cron day-of-week 7 is Sunday") {
  CronExpression sunday = Parse("0 0 * * 7");
  REQUIRE(Values(sunday.days_of_week) == std::vector<int>{0});
  RequireSameSchedule(sunday, Parse("0 0 * * 0"));
  REQUIRE(sunday.Matches(0, 0, 10, 3, 0));
  REQUIRE(sunday.Matches(0, 0, 10, 3, 7));
  REQUIRE_FALSE(sunday.Matches(0, 0, 11, 3, 1));

  REQUIRE(Values(Parse("* * * * 5-7").days_of_week) == std::vector<int>{0, 5, 6});
  REQUIRE(Values(Parse("* * * * fri-7").days_of_week) == std::vector<int>{0, 5, 6});
  REQUIRE(Values(Parse("* * * * 0,7").days_of_week) == std::vector<int>{0});
  REQUIRE(Values(Parse("* * * * 0-7").days_of_week).size() == 7);
}

TEST_CASE("cron day fields: when both are restricted, either one matching is enough") {
  // Friday the 6th (September 2024) and Thursday the 13th (June 2024).
  CronExpression expression = Parse("0 0 13 * fri");
  REQUIRE(expression.day_of_month_restricted);
  REQUIRE(expression.day_of_week_restricted);
  REQUIRE(expression.Matches(0, 0, 6, 9, 5));
  REQUIRE(expression.Matches(0, 0, 13, 6, 4));
  REQUIRE(expression.Matches(0, 0, 13, 9, 5));
  // Saturday the 7th is neither.
  REQUIRE_FALSE(expression.Matches(0, 0, 7, 9, 6));
  // The other fields still have to match.
  REQUIRE_FALSE(expression.Matches(1, 0, 6, 9, 5));
  REQUIRE_FALSE(expression.Matches(0, 1, 13, 6, 4));

  // A stepped wildcard counts as restricted, as robfig/cron v3 (Kubernetes)
  // reads it: a day field is open when one of its items is a wildcard of
  // step 1, whatever else its list has.
  CronExpression stepped = Parse("0 0 */2 * mon");
  REQUIRE(stepped.day_of_month_restricted);
  REQUIRE(stepped.Matches(0, 0, 3, 1, 3));  // odd day, Wednesday
  REQUIRE(stepped.Matches(0, 0, 4, 1, 1));  // even day, Monday
  REQUIRE_FALSE(stepped.Matches(0, 0, 4, 1, 3));
  CronExpression every_day = Parse("0 0 */1 * mon");
  REQUIRE_FALSE(every_day.day_of_month_restricted);
  REQUIRE(every_day.Matches(0, 0, 4, 1, 1));        // Monday
  REQUIRE_FALSE(every_day.Matches(0, 0, 3, 1, 3));  // Wednesday
  REQUIRE_FALSE(Parse("0 0 1 * */1").day_of_week_restricted);
  REQUIRE_FALSE(Parse("0 0 */01 * mon").day_of_month_restricted);
  CronExpression listed = Parse("0 0 *,1 * mon");
  REQUIRE_FALSE(listed.day_of_month_restricted);
  REQUIRE_FALSE(listed.Matches(0, 0, 1, 1, 3));  // the 1st, a Wednesday: Mondays only
  REQUIRE_FALSE(Parse("0 0 1 * 1,*").day_of_week_restricted);
  REQUIRE(Parse("0 0 */2,*/3 * mon").day_of_month_restricted);
  REQUIRE(Parse("0 0 1-31 * mon").day_of_month_restricted);  // the days of "*", but not "*"
}

TEST_CASE("cron day fields: when one is \"*\", the other alone decides") {
  CronExpression thirteenth = Parse("0 0 13 * *");
  REQUIRE(thirteenth.day_of_month_restricted);
  REQUIRE_FALSE(thirteenth.day_of_week_restricted);
  REQUIRE(thirteenth.Matches(0, 0, 13, 6, 4));
  REQUIRE(thirteenth.Matches(0, 0, 13, 9, 5));
  REQUIRE_FALSE(thirteenth.Matches(0, 0, 6, 9, 5));

  CronExpression fridays = Parse("0 0 * * fri");
  REQUIRE_FALSE(fridays.day_of_month_restricted);
  REQUIRE(fridays.day_of_week_restricted);
  REQUIRE(fridays.Matches(0, 0, 6, 9, 5));
  REQUIRE_FALSE(fridays.Matches(0, 0, 13, 6, 4));

  CronExpression first_of_june = Parse("30 8 1 jun *");
  REQUIRE(first_of_june.Matches(30, 8, 1, 6, 6));
  REQUIRE_FALSE(first_of_june.Matches(30, 8, 1, 7, 1));
  REQUIRE_FALSE(first_of_june.Matches(30, 8, 2, 6, 0));
}

TEST_CASE("cron Matches rejects times outside the fields' ranges") {
  CronExpression every_minute = Parse("* * * * *");
  REQUIRE_FALSE(every_minute.Matches(-1, 0, 1, 1, 0));
  REQUIRE_FALSE(every_minute.Matches(60, 0, 1, 1, 0));
  REQUIRE_FALSE(every_minute.Matches(0, 24, 1, 1, 0));
  REQUIRE_FALSE(every_minute.Matches(0, 0, 0, 1, 0));
  REQUIRE_FALSE(every_minute.Matches(0, 0, 32, 1, 0));
  REQUIRE_FALSE(every_minute.Matches(0, 0, 1, 0, 0));
  REQUIRE_FALSE(every_minute.Matches(0, 0, 1, 13, 0));
  REQUIRE_FALSE(every_minute.Matches(0, 0, 1, 1, 8));
  REQUIRE_FALSE(every_minute.Matches(0, 0, 1, 1, -1));
  REQUIRE_FALSE(CronExpression{}.Matches(0, 0, 1, 1, 0));
}

TEST_CASE("cron MatchesDay applies the month and the day rule, whatever the time") {
  CronExpression expression = Parse("30 8 13 jun fri");
  CHECK(expression.MatchesDay(13, 6, 4));
  CHECK(expression.MatchesDay(6, 6, 5));         // a Friday in June
  CHECK_FALSE(expression.MatchesDay(13, 7, 1));  // July is out
  CHECK_FALSE(expression.MatchesDay(7, 6, 6));
  CHECK_FALSE(expression.MatchesDay(0, 6, 5));
  CHECK_FALSE(expression.MatchesDay(13, 6, 8));
  CHECK(Parse("0 0 * * sun").MatchesDay(5, 1, 7));
}

TEST_CASE("cron rejects expressions that name no real day, as they would never fire") {
  REQUIRE(ErrorOf("0 0 30 feb *") ==
          "cron expression never fires: no month in \"feb\" has a day \"30\"");
  REQUIRE_THAT(ErrorOf("0 0 31 apr,jun,sep,nov *"),
               Contains("never fires") && Contains("\"apr,jun,sep,nov\"") && Contains("\"31\""));
  REQUIRE_THAT(ErrorOf("0 0 30-31 2 *"), Contains("never fires"));
  // 29 February comes every four (or eight) years; the 31st in some months.
  REQUIRE(Parse("0 0 29 feb *").days_of_month[29]);
  REQUIRE(Parse("0 0 31 * *").days_of_month[31]);
  REQUIRE(Parse("0 0 30,31 feb,mar *").months[3]);
  // With a day of the week too, the OR rule fires on that weekday anyway.
  REQUIRE(Parse("0 0 30 feb mon").MatchesDay(2, 2, 1));
}

TEST_CASE("cron rejects the wrong number of fields") {
  std::string message = ErrorOf("* * * * * *");
  REQUIRE(message ==
          "cron expression needs 5 fields (minute hour day-of-month month day-of-week), got 6: "
          "\"* * * * * *\"");
  REQUIRE_THAT(ErrorOf("0 0 * *"), Contains("day-of-week") && Contains("got 4"));
  REQUIRE_THAT(ErrorOf(""), Contains("minute") && Contains("got 0"));
  REQUIRE_THAT(ErrorOf(" \t "), Contains("minute") && Contains("got 0"));
}

TEST_CASE("cron rejects values out of range, naming the field") {
  REQUIRE(ErrorOf("0 24 * * *") == "hour 24 is out of range 0-23 (item \"24\")");
  REQUIRE_THAT(ErrorOf("60 * * * *"), Contains("minute 60 is out of range 0-59"));
  REQUIRE_THAT(ErrorOf("* * 0 * *"), Contains("day-of-month 0 is out of range 1-31"));
  REQUIRE_THAT(ErrorOf("* * 32 * *"), Contains("day-of-month 32 is out of range 1-31"));
  REQUIRE_THAT(ErrorOf("* * * 13 *"), Contains("month 13 is out of range 1-12"));
  REQUIRE_THAT(ErrorOf("* * * 0 *"), Contains("month 0 is out of range 1-12"));
  REQUIRE_THAT(ErrorOf("* * * * 8"), Contains("day-of-week 8 is out of range 0-7"));
  // The item is quoted as written, so the user can find it.
  REQUIRE_THAT(ErrorOf("* 1,20-24/2 * * *"),
               Contains("hour 24 is out of range 0-23") && Contains("\"20-24/2\""));
}

TEST_CASE("cron rejects numbers with absurd digit counts without overflowing") {
  const std::string huge(1000, '9');
  REQUIRE_THAT(ErrorOf(huge + " * * * *"),
               Contains("minute 9999") && Contains("out of range 0-59"));
  REQUIRE_THAT(ErrorOf("* 1-" + huge + " * * *"), Contains("hour") && Contains("out of range"));
  REQUIRE_THAT(ErrorOf("* * */" + huge + " * *"),
               Contains("day-of-month step") && Contains("out of range 1-30"));
  REQUIRE_THAT(ErrorOf("* * * * 4294967296"), Contains("day-of-week 4294967296 is out of range"));
  // The message quotes a cut-down item rather than all of it.
  REQUIRE(ErrorOf(huge + " * * * *").size() < 300);
  // Leading zeros are only zeros.
  REQUIRE(Values(Parse(std::string(1000, '0') + "5 * * * *").minutes) == std::vector<int>{5});
}

TEST_CASE("cron rejects ranges that run backwards") {
  REQUIRE(ErrorOf("* * 5-2 * *") == "range 5-2 in day-of-month runs backwards (item \"5-2\")");
  REQUIRE_THAT(ErrorOf("* * * * fri-mon"), Contains("range fri-mon in day-of-week runs backwards"));
  REQUIRE_THAT(ErrorOf("* * * dec-jan *"), Contains("range dec-jan in month runs backwards"));
  REQUIRE_THAT(ErrorOf("30-10/5 * * * *"),
               Contains("range 30-10 in minute runs backwards") && Contains("\"30-10/5\""));
}

TEST_CASE("cron rejects step 0 and steps too large to repeat") {
  REQUIRE(ErrorOf("*/0 * * * *") == "minute step 0 is out of range 1-59 (item \"*/0\")");
  REQUIRE_THAT(ErrorOf("* 1-5/0 * * *"), Contains("hour step 0 is out of range 1-23"));
  REQUIRE_THAT(ErrorOf("* * * */0 *"), Contains("month step 0"));
  REQUIRE_THAT(ErrorOf("*/60 * * * *"), Contains("minute step 60 is out of range 1-59"));
  REQUIRE_THAT(ErrorOf("* * * * */7"), Contains("day-of-week step 7 is out of range 1-6"));
}

TEST_CASE("cron rejects empty list items") {
  REQUIRE(ErrorOf("1,,2 * * * *") == "empty item in minute list \"1,,2\"");
  REQUIRE_THAT(ErrorOf("* ,1 * * *"), Contains("empty item in hour list \",1\""));
  REQUIRE_THAT(ErrorOf("* * 1, * *"), Contains("empty item in day-of-month list \"1,\""));
  REQUIRE_THAT(ErrorOf("* * * , *"), Contains("empty item in month list"));
  REQUIRE_THAT(ErrorOf("* * * * mon,,fri"), Contains("empty item in day-of-week list"));
}

TEST_CASE("cron rejects unknown names") {
  REQUIRE(ErrorOf("* * * foo *") ==
          "unknown month name \"foo\"; expected jan..dec or 1-12 (item \"foo\")");
  REQUIRE_THAT(
      ErrorOf("* * * * mon-fry"),
      Contains("unknown day-of-week name \"fry\"; expected sun..sat") && Contains("\"mon-fry\""));
  // Only the three-letter names.
  REQUIRE_THAT(ErrorOf("* * * * monday"), Contains("unknown day-of-week name \"monday\""));
  REQUIRE_THAT(ErrorOf("* * * january *"), Contains("unknown month name"));
  // Names belong to their own field.
  REQUIRE_THAT(ErrorOf("* * * mon *"), Contains("unknown month name \"mon\""));
  REQUIRE_THAT(ErrorOf("jan * * * *"), Contains("minute takes numbers only"));
  REQUIRE_THAT(ErrorOf("* noon * * *"),
               Contains("hour takes numbers only, not names like \"noon\""));
  REQUIRE_THAT(ErrorOf("* * last * *"), Contains("day-of-month takes numbers only"));
  // Steps are numbers.
  REQUIRE_THAT(ErrorOf("* * * */feb *"), Contains("unexpected character 'f' in month"));
}

TEST_CASE("cron rejects unknown macros and macros with fields") {
  REQUIRE(ErrorOf("@every 5m") ==
          "unknown macro @every; expected one of @yearly, @annually, @monthly, @weekly, @daily, "
          "@midnight, @hourly");
  REQUIRE_THAT(ErrorOf("@reboot"), Contains("unknown macro @reboot"));
  REQUIRE_THAT(ErrorOf("@"), Contains("unknown macro @;"));
  REQUIRE_THAT(ErrorOf("@daily 5"), Contains("@daily") && Contains("\"@daily 5\""));
  // A macro is a whole expression, not a field.
  REQUIRE_THAT(ErrorOf("@daily * * * *"), Contains("@daily"));
  REQUIRE_THAT(ErrorOf("0 @daily * * *"), Contains("unexpected character '@' in hour"));
}

TEST_CASE("cron rejects garbage characters, naming the field") {
  REQUIRE(ErrorOf("1#2 * * * *") == "unexpected character '#' in minute (item \"1#2\")");
  REQUIRE_THAT(ErrorOf("* 1.5 * * *"), Contains("unexpected character '.' in hour"));
  REQUIRE_THAT(ErrorOf("* -1 * * *"), Contains("unexpected character '-' in hour"));
  REQUIRE_THAT(ErrorOf("*-5 * * * *"), Contains("unexpected character '-' in minute"));
  REQUIRE_THAT(ErrorOf("1-2-3 * * * *"), Contains("unexpected character '-' in minute"));
  REQUIRE_THAT(ErrorOf("** * * * *"), Contains("unexpected character '*' in minute"));
  REQUIRE_THAT(ErrorOf("* * 1/2/3 * *"), Contains("unexpected character '/' in day-of-month"));
  REQUIRE_THAT(ErrorOf("* * ? * *"), Contains("unexpected character '?' in day-of-month"));
  REQUIRE_THAT(ErrorOf("* * * * 1L"), Contains("unexpected character 'L' in day-of-week"));
  REQUIRE_THAT(ErrorOf("5- * * * *"), Contains("missing a value after \"-\" in minute"));
  REQUIRE_THAT(ErrorOf("* */ * * *"), Contains("missing a step after \"/\" in hour"));
  REQUIRE_THAT(ErrorOf("* * * 1-/2 *"), Contains("unexpected character '/' in month"));
  // Bytes that cannot be printed are escaped in the message.
  REQUIRE_THAT(ErrorOf(std::string("1\x01 * * * *")),
               Contains("unexpected character '\\x01' in minute (item \"1\\x01\")"));
  REQUIRE_THAT(ErrorOf(std::string("1\0 * * * *", 10)), Contains("'\\x00' in minute"));
}

TEST_CASE("cron errors in the minute field always name it, whatever the item") {
  // Every item of up to 4 characters from an alphabet of troublemakers either
  // parses to a non-empty set or fails naming the field.
  const std::string alphabet = "0159*/-,a#";
  int parsed = 0;
  int rejected = 0;
  std::string item;
  for (int length = 1; length <= 4; ++length) {
    int combinations = 1;
    for (int i = 0; i < length; ++i) combinations *= static_cast<int>(alphabet.size());
    for (int index = 0; index < combinations; ++index) {
      item.clear();
      for (int i = 0, rest = index; i < length; ++i, rest /= static_cast<int>(alphabet.size())) {
        item += alphabet[static_cast<std::size_t>(rest) % alphabet.size()];
      }
      Result<CronExpression> result = ParseCron(item + " * * * *");
      if (result.ok()) {
        ++parsed;
        if (result->minutes.none()) FAIL("\"" << item << "\" parsed to no minutes");
      } else {
        ++rejected;
        const std::string& message = result.error().message;
        if (message.find("minute") == std::string::npos) {
          FAIL("\"" << item << "\": " << message);
        }
      }
    }
  }
  REQUIRE(parsed > 100);
  REQUIRE(rejected > 1000);
}

}  // namespace
}  // namespace core
