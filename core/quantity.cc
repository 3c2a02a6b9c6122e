#include "core/quantity.h"

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <utility>

namespace core {
namespace {

Error QuantityError(std::string message) {
  return Error{ErrorCode::kInvalidArgument, std::move(message), {}};
}

bool IsDigit(char c) {
  return c >= '0' && c <= '9';
}

// Reads a non-negative decimal number ("12", "1.5", ".5") at the front of
// `text`, advancing past it. Exponents and signs are not part of the syntax.
bool ReadNumber(std::string_view& text, double* number) {
  std::size_t length = 0;
  bool digits = false, point = false;
  while (length < text.size()) {
    char c = text[length];
    if (IsDigit(c)) {
      digits = true;
    } else if (c == '.' && !point) {
      point = true;
    } else {
      break;
    }
    ++length;
  }
  if (!digits) return false;
  *number = std::strtod(std::string(text.substr(0, length)).c_str(), nullptr);
  text.remove_prefix(length);
  return true;
}

constexpr std::array<std::pair<std::string_view, std::int64_t>, 5> kDurationUnits = {{
    {"ms", 1},
    {"s", 1000},
    {"m", 60'000},
    {"h", 3'600'000},
    {"d", 86'400'000},
}};

}  // namespace

Result<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  const std::string quoted = "\"" + std::string(text) + "\"";
  const std::string hint = " (write a number with a unit: 500ms, 30s, 5m, 1h30m, 2d)";
  if (text.empty()) return QuantityError("empty duration" + hint);
  double number = 0;
  std::string_view rest = text;
  if (ReadNumber(rest, &number) && rest.empty()) {
    if (number > 1e12) return QuantityError("duration " + quoted + " is too long");
    return std::chrono::milliseconds(std::llround(number * 1000));
  }
  rest = text;
  double total_ms = 0;
  while (!rest.empty()) {
    if (!ReadNumber(rest, &number)) return QuantityError("invalid duration " + quoted + hint);
    std::size_t unit_length = 0;
    while (unit_length < rest.size() && !IsDigit(rest[unit_length]) && rest[unit_length] != '.')
      ++unit_length;
    std::string_view unit = rest.substr(0, unit_length);
    rest.remove_prefix(unit_length);
    bool known = false;
    for (const auto& [name, ms] : kDurationUnits) {
      if (unit == name) {
        total_ms += number * static_cast<double>(ms);
        known = true;
      }
    }
    if (!known) {
      return QuantityError("invalid duration " + quoted + ": unknown unit \"" + std::string(unit) +
                           "\"" + hint);
    }
  }
  if (total_ms > 1e15) return QuantityError("duration " + quoted + " is too long");
  return std::chrono::milliseconds(std::llround(total_ms));
}

std::string FormatDuration(std::chrono::milliseconds duration) {
  std::int64_t ms = duration.count();
  if (ms == 0) return "0s";
  std::string text;
  for (auto it = kDurationUnits.rbegin(); it != kDurationUnits.rend(); ++it) {
    const auto& [name, unit_ms] = *it;
    if (name == "d") continue;  // hours read better than days: "48h"
    if (ms >= unit_ms) {
      text += std::to_string(ms / unit_ms) + std::string(name);
      ms %= unit_ms;
    }
  }
  return text;
}

namespace {

struct SizeUnit {
  std::string_view suffix;
  std::uint64_t factor;
};

constexpr std::array<SizeUnit, 12> kSizeUnits = {{
    {"Ei", 1ull << 60},
    {"Pi", 1ull << 50},
    {"Ti", 1ull << 40},
    {"Gi", 1ull << 30},
    {"Mi", 1ull << 20},
    {"Ki", 1ull << 10},
    {"E", 1'000'000'000'000'000'000ull},
    {"P", 1'000'000'000'000'000ull},
    {"T", 1'000'000'000'000ull},
    {"G", 1'000'000'000ull},
    {"M", 1'000'000ull},
    {"k", 1'000ull},
}};

}  // namespace

Result<std::uint64_t> ParseSize(std::string_view text) {
  const std::string quoted = "\"" + std::string(text) + "\"";
  const std::string hint = " (write bytes or a number with a unit: 512Mi, 2Gi, 1G)";
  std::string_view rest = text;
  double number = 0;
  if (!ReadNumber(rest, &number)) return QuantityError("invalid size " + quoted + hint);
  std::uint64_t factor = 1;
  if (!rest.empty()) {
    bool known = false;
    for (const SizeUnit& unit : kSizeUnits) {
      if (rest == unit.suffix) {
        factor = unit.factor;
        known = true;
      }
    }
    if (!known) {
      return QuantityError("invalid size " + quoted + ": unknown unit \"" + std::string(rest) +
                           "\"" + hint);
    }
  }
  long double bytes = static_cast<long double>(number) * static_cast<long double>(factor);
  if (bytes >= static_cast<long double>(std::numeric_limits<std::uint64_t>::max())) {
    return QuantityError("size " + quoted + " is too large");
  }
  if (std::floor(bytes) != bytes)
    return QuantityError("size " + quoted + " is not a whole number of bytes");
  return static_cast<std::uint64_t>(bytes);
}

std::string FormatSize(std::uint64_t bytes) {
  if (bytes == 0) return "0";
  for (const SizeUnit& unit : kSizeUnits) {
    if (bytes % unit.factor == 0)
      return std::to_string(bytes / unit.factor) + std::string(unit.suffix);
  }
  return std::to_string(bytes);
}

std::string FormatSizeForPeople(std::uint64_t bytes) {
  constexpr std::array<const char*, 5> kUnits = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (value >= 1024 && unit + 1 < kUnits.size()) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, unit == 0 ? "%.0f %s" : "%.1f %s", value, kUnits[unit]);
  return text;
}

}  // namespace core
