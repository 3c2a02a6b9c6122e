#pragma once

#include <string>
#include <vector>

#include "core/error.h"

namespace toolchain {

enum class LogFormat { kText, kJson };

/// Sets up spdlog on stderr for the whole command: level (debug with
/// --verbose) and format (plain text, or one JSON object per line: "time",
/// "level", "message", and the fields "component", "pid", "thread"). Called
/// again (`gantry agent --log-format`), it replaces the previous set-up.
void ConfigureLogging(bool verbose, LogFormat format);

/// Writes user-facing errors to stderr, one line each: "FILE:LINE:COLUMN:
/// message" as compilers do, or with --log-format json one JSON object per
/// line with the location, code and message as fields.
void ReportErrors(const std::vector<core::Error>& errors);

}  // namespace toolchain
