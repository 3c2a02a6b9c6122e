#include "core/cron.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdio>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace core {
namespace {

/// What one of the five fields accepts, and what its messages call it.
struct FieldSpec {
  std::string_view name;
  int low;
  int high;           // the largest value one may write (7 for day-of-week, also Sunday)
  int wildcard_high;  // where "*" and "N/S" stop (6 for day-of-week, so Sunday is not set twice)
  std::span<const std::string_view> names;  // names[i] means first_name_value + i
  int first_name_value;
  std::string_view names_hint;  // "jan..dec": how a message lists the names
};

constexpr std::array<std::string_view, 12> kMonthNames = {"jan", "feb", "mar", "apr", "may", "jun",
                                                          "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr std::array<std::string_view, 7> kDayNames = {"sun", "mon", "tue", "wed",
                                                       "thu", "fri", "sat"};

constexpr std::array<FieldSpec, 5> kFields = {{
    {"minute", 0, 59, 59, {}, 0, ""},
    {"hour", 0, 23, 23, {}, 0, ""},
    {"day-of-month", 1, 31, 31, {}, 0, ""},
    {"month", 1, 12, 12, kMonthNames, 1, "jan..dec"},
    {"day-of-week", 0, 7, 6, kDayNames, 0, "sun..sat"},
}};

constexpr std::string_view kFieldList = "minute hour day-of-month month day-of-week";

struct Macro {
  std::string_view name;
  std::string_view expansion;
};

constexpr std::array<Macro, 7> kMacros = {{
    {"@yearly", "0 0 1 1 *"},
    {"@annually", "0 0 1 1 *"},
    {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"},
    {"@daily", "0 0 * * *"},
    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
}};

// Numbers are read saturating at this value, so that a run of a thousand
// digits is simply "out of range" rather than an overflow. It is far above
// every field's maximum.
constexpr int kValueCap = 1'000'000;

// Expressions in messages are cut to this many characters, so that one
// pasted by mistake (or by a fuzzer) still makes a one-line error.
constexpr std::size_t kQuoteLimit = 64;

Error CronError(std::string message) {
  return Error{ErrorCode::kInvalidArgument, std::move(message), {}};
}

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
bool IsDigit(char c) {
  return c >= '0' && c <= '9';
}
bool IsLetter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
char ToLower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool EqualsIgnoringCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ToLower(a[i]) != ToLower(b[i])) return false;
  }
  return true;
}

// `c` as it can be printed in a message: itself, or \xNN when not printable.
std::string Printable(char c) {
  const auto byte = static_cast<unsigned char>(c);
  if (byte >= 0x20 && byte < 0x7f) return std::string(1, c);
  char escaped[8];
  std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
  return escaped;
}

// `text` in double quotes, escaped, cut to kQuoteLimit characters.
std::string Quote(std::string_view text) {
  std::string quoted = "\"";
  for (std::size_t i = 0; i < text.size() && i < kQuoteLimit; ++i) {
    if (text[i] == '"' || text[i] == '\\') quoted += '\\';
    quoted += Printable(text[i]);
  }
  if (text.size() > kQuoteLimit) quoted += "...";
  return quoted + "\"";
}

// Like Quote, without the quotes: for names the message shows bare (@every).
std::string Unquoted(std::string_view text) {
  std::string quoted = Quote(text);
  return quoted.substr(1, quoted.size() - 2);
}

std::vector<std::string_view> SplitFields(std::string_view text) {
  std::vector<std::string_view> fields;
  std::size_t pos = 0;
  while (pos < text.size()) {
    while (pos < text.size() && IsSpace(text[pos])) ++pos;
    const std::size_t start = pos;
    while (pos < text.size() && !IsSpace(text[pos])) ++pos;
    if (pos > start) fields.push_back(text.substr(start, pos - start));
  }
  return fields;
}

// Reads one list item ("*", "5", "mon-fri", "*/15", "10-50/5", "5/10") of a
// field and sets its values in `bits`; `*open` is set when it is a wildcard
// of step 1 ("*", "*/1", "*/01").
class ItemParser {
 public:
  ItemParser(const FieldSpec& field, std::string_view item) : field_(field), item_(item) {}

  Status Parse(std::bitset<64>* bits, bool* open) {
    int begin = 0;
    int end = 0;
    const bool wildcard = Peek() == '*';
    if (wildcard) {
      ++pos_;
      begin = field_.low;
      end = field_.wildcard_high;
    } else {
      const std::size_t start = pos_;
      Status first = ReadValue("", &begin);
      if (!first.ok()) return first;
      end = begin;
      if (Peek() == '-') {
        ++pos_;
        Status second = ReadValue("-", &end);
        if (!second.ok()) return second;
        if (begin > end) {
          return Fail("range " + Unquoted(item_.substr(start, pos_ - start)) + " in " +
                      std::string(field_.name) + " runs backwards");
        }
      } else if (Peek() == '/') {
        // "N/S" runs from N to the end of the field.
        end = std::max(begin, field_.wildcard_high);
      }
    }
    int step = 1;
    if (Peek() == '/') {
      ++pos_;
      Status read = ReadStep(&step);
      if (!read.ok()) return read;
    }
    if (pos_ < item_.size()) return UnexpectedCharacter();
    for (int value = begin; value <= end; value += step) bits->set(static_cast<std::size_t>(value));
    if (wildcard && step == 1) *open = true;
    return Ok{};
  }

 private:
  char Peek() const { return pos_ < item_.size() ? item_[pos_] : '\0'; }

  Error Fail(std::string reason) const {
    return CronError(std::move(reason) + " (item " + Quote(item_) + ")");
  }

  Error UnexpectedCharacter() const {
    return Fail("unexpected character '" + Printable(item_[pos_]) + "' in " +
                std::string(field_.name));
  }

  // After `after` ("-" or "/", empty at the start of the item), the item ended.
  Error Missing(std::string_view what, std::string_view after) const {
    if (after.empty())
      return Fail("missing " + std::string(what) + " in " + std::string(field_.name));
    return Fail("missing " + std::string(what) + " after \"" + std::string(after) + "\" in " +
                std::string(field_.name));
  }

  // Reads a run of digits, saturating at kValueCap; returns its text.
  std::string_view ReadDigits(int* number) {
    const std::size_t start = pos_;
    *number = 0;
    while (pos_ < item_.size() && IsDigit(item_[pos_])) {
      if (*number < kValueCap) *number = *number * 10 + (item_[pos_] - '0');
      ++pos_;
    }
    return item_.substr(start, pos_ - start);
  }

  // Reads a number or a name, checked against the field's range.
  Status ReadValue(std::string_view after, int* value) {
    const std::string field_name(field_.name);
    if (IsDigit(Peek())) {
      const std::string_view digits = ReadDigits(value);
      if (*value < field_.low || *value > field_.high) {
        return Fail(field_name + " " + Unquoted(digits) + " is out of range " +
                    std::to_string(field_.low) + "-" + std::to_string(field_.high));
      }
      return Ok{};
    }
    if (IsLetter(Peek())) {
      const std::size_t start = pos_;
      while (pos_ < item_.size() && IsLetter(item_[pos_])) ++pos_;
      const std::string_view word = item_.substr(start, pos_ - start);
      const std::string range = std::to_string(field_.low) + "-" + std::to_string(field_.high);
      if (field_.names.empty()) {
        return Fail(field_name + " takes numbers only, not names like " + Quote(word) +
                    "; expected " + range);
      }
      for (std::size_t i = 0; i < field_.names.size(); ++i) {
        if (EqualsIgnoringCase(word, field_.names[i])) {
          *value = field_.first_name_value + static_cast<int>(i);
          return Ok{};
        }
      }
      return Fail("unknown " + field_name + " name " + Quote(word) + "; expected " +
                  std::string(field_.names_hint) + " or " + range);
    }
    if (pos_ == item_.size()) return Missing("a value", after);
    return UnexpectedCharacter();
  }

  // Reads the S of "/S": a number from 1 to the largest step that can hit
  // two values of the field.
  Status ReadStep(int* step) {
    if (!IsDigit(Peek())) {
      if (pos_ == item_.size()) return Missing("a step", "/");
      return UnexpectedCharacter();
    }
    const std::string_view digits = ReadDigits(step);
    const int largest = field_.wildcard_high - field_.low;
    if (*step < 1 || *step > largest) {
      return Fail(std::string(field_.name) + " step " + Unquoted(digits) + " is out of range 1-" +
                  std::to_string(largest));
    }
    return Ok{};
  }

  const FieldSpec& field_;
  std::string_view item_;
  std::size_t pos_ = 0;
};

// Parses one field's comma-separated list into `bits` (bit i = value i).
// `*open`: some item is a wildcard of step 1, which leaves a day field open
// for the OR rule whatever else the list has, as robfig/cron (Kubernetes'
// CronJob) reads it.
Status ParseField(const FieldSpec& field, std::string_view text, std::bitset<64>* bits,
                  bool* open) {
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = text.find(',', start);
    const std::string_view item = text.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    if (item.empty()) {
      return CronError("empty item in " + std::string(field.name) + " list " + Quote(text));
    }
    Status parsed = ItemParser(field, item).Parse(bits, open);
    if (!parsed.ok()) return parsed;
    if (comma == std::string_view::npos) return Ok{};
    start = comma + 1;
  }
}

template <std::size_t N>
void CopyBits(const std::bitset<64>& from, std::bitset<N>* to) {
  for (std::size_t i = 0; i < N; ++i) to->set(i, from[i]);
}

Result<CronExpression> ParseMacro(std::string_view text,
                                  const std::vector<std::string_view>& fields) {
  for (const Macro& macro : kMacros) {
    if (!EqualsIgnoringCase(fields[0], macro.name)) continue;
    if (fields.size() > 1) {
      return CronError("cron macro " + std::string(macro.name) +
                       " stands alone, with no fields after it: " + Quote(text));
    }
    return ParseCron(macro.expansion);
  }
  std::string known;
  for (const Macro& macro : kMacros) {
    known += known.empty() ? "" : ", ";
    known += macro.name;
  }
  return CronError("unknown macro " + Unquoted(fields[0]) + "; expected one of " + known);
}

// Whether some month of the expression has one of its days of the month
// (February counted with 29 days).
bool SomeDayExists(const CronExpression& expression) {
  constexpr std::array<int, 13> kLongestMonth = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  for (std::size_t month = 1; month <= 12; ++month) {
    if (!expression.months[month]) continue;
    for (int day = 1; day <= kLongestMonth[month]; ++day) {
      if (expression.days_of_month[static_cast<std::size_t>(day)]) return true;
    }
  }
  return false;
}

}  // namespace

bool CronExpression::Matches(int minute, int hour, int day_of_month, int month,
                             int day_of_week) const {
  if (minute < 0 || minute > 59 || hour < 0 || hour > 23) return false;
  if (!minutes[static_cast<std::size_t>(minute)] || !hours[static_cast<std::size_t>(hour)]) {
    return false;
  }
  return MatchesDay(day_of_month, month, day_of_week);
}

bool CronExpression::MatchesDay(int day_of_month, int month, int day_of_week) const {
  if (day_of_week == 7) day_of_week = 0;
  if (day_of_month < 1 || day_of_month > 31 || month < 1 || month > 12 || day_of_week < 0 ||
      day_of_week > 6 || !months[static_cast<std::size_t>(month)]) {
    return false;
  }
  const bool day_of_month_matches = days_of_month[static_cast<std::size_t>(day_of_month)];
  const bool day_of_week_matches = days_of_week[static_cast<std::size_t>(day_of_week)];
  if (day_of_month_restricted && day_of_week_restricted) {
    return day_of_month_matches || day_of_week_matches;
  }
  return day_of_month_matches && day_of_week_matches;
}

Result<CronExpression> ParseCron(std::string_view text) {
  const std::vector<std::string_view> fields = SplitFields(text);
  if (!fields.empty() && fields[0].front() == '@') return ParseMacro(text, fields);
  if (fields.size() != kFields.size()) {
    return CronError("cron expression needs 5 fields (" + std::string(kFieldList) + "), got " +
                     std::to_string(fields.size()) + ": " + Quote(text));
  }
  std::array<std::bitset<64>, 5> bits;
  std::array<bool, 5> open{};
  for (std::size_t i = 0; i < kFields.size(); ++i) {
    Status parsed = ParseField(kFields[i], fields[i], &bits[i], &open[i]);
    if (!parsed.ok()) return parsed.error();
  }
  // Day-of-week 7 is another name for Sunday.
  if (bits[4][7]) bits[4].set(0);

  CronExpression expression;
  CopyBits(bits[0], &expression.minutes);
  CopyBits(bits[1], &expression.hours);
  CopyBits(bits[2], &expression.days_of_month);
  CopyBits(bits[3], &expression.months);
  CopyBits(bits[4], &expression.days_of_week);
  expression.day_of_month_restricted = !open[2];
  expression.day_of_week_restricted = !open[4];
  // Only the day of the month can rule out every day: with a day-of-week
  // restriction too, the OR rule lets every week in; without one, the days of
  // the month have to exist in some month of the expression.
  if (expression.day_of_month_restricted && !expression.day_of_week_restricted &&
      !SomeDayExists(expression)) {
    return CronError("cron expression never fires: no month in " + Quote(fields[3]) +
                     " has a day " + Quote(fields[2]));
  }
  return expression;
}

}  // namespace core
