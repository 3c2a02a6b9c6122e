#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.h"

namespace core {

/// Durations as users write them: a sequence of number+unit pairs, units
/// ms, s, m, h and d ("300s", "5m", "1h30m", "1.5h", "500ms"); a bare number
/// is seconds. The result is rounded to whole milliseconds.
Result<std::chrono::milliseconds> ParseDuration(std::string_view text);

/// The shortest form ParseDuration reads back: "1h30m", "300ms", "0s".
std::string FormatDuration(std::chrono::milliseconds duration);

/// Sizes as Kubernetes quantities: a number with an optional suffix, binary
/// (Ki Mi Gi Ti Pi Ei) or decimal (k M G T P E); a bare number is bytes.
/// "512Mi", "2Gi", "1G", "1.5Gi". The result must be a whole number of bytes.
Result<std::uint64_t> ParseSize(std::string_view text);

/// A size for people to read, rounded: "189 B", "1.2 MiB". Not read back.
std::string FormatSizeForPeople(std::uint64_t bytes);

/// The exact form with the largest unit that divides the size: "2Gi", "1G", "1000".
std::string FormatSize(std::uint64_t bytes);

}  // namespace core
