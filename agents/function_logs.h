#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace agents {

/// One line that a function's container, or the agent about it, wrote.
struct LogLine {
  std::int64_t time_ms = 0;  // Unix epoch milliseconds
  std::string call;          // the call id ("" for lines not about one call)
  std::string stream;        // "stdout", "stderr", or "agent" (attempts, exits)
  std::string text;          // without its newline; bytes that are not UTF-8 are replaced
  std::string container;     // a web container's id ("" for lines not about one)

  nlohmann::json ToJson() const;
};

/// Where a reader of the logs has got to: a byte offset into each
/// function's log file, by function name.
struct LogCursor {
  std::map<std::string, std::uint64_t> offsets;
  bool started = false;

  /// As GET /v1/logs gives it to a client to ask from next time
  /// (`?cursor=`): "FUNCTION:OFFSET,…" ("-" when it has none yet).
  std::string Encode() const;
  /// The cursor `text` (Encode's) stands for, started; nullopt when it is
  /// not one.
  static std::optional<LogCursor> Decode(std::string_view text);
};

/// Each function's log, what `GET /v1/logs` serves: DATA_DIR/logs/APP/FUNCTION.log,
/// one JSON object per line (LogLine::ToJson). When a file would grow past
/// `max_bytes` it is renamed FUNCTION.log.1 (replacing the previous one) and
/// a new one begun, so a function's logs never take more than twice that.
class FunctionLogs {
 public:
  explicit FunctionLogs(std::filesystem::path dir, std::uint64_t max_bytes = 8 << 20);

  core::Status Append(const std::string& app, const std::string& function,
                      const std::vector<LogLine>& lines);

  /// The complete lines written since `cursor` for one function, or for every
  /// function of the app when `function` is empty; the first read of a cursor
  /// starts with the rotated files. Advances the cursor. Lines of a time
  /// before `since_ms` (Unix epoch milliseconds) are left out.
  std::string ReadNew(const std::string& app, const std::string& function, LogCursor* cursor,
                      std::int64_t since_ms = 0) const;

 private:
  std::filesystem::path FileOf(const std::string& app, const std::string& function) const;

  std::filesystem::path dir_;
  std::uint64_t max_bytes_;
  mutable std::mutex mutex_;
};

/// One container's output on its way into its function's log, line by line
/// as the container writes it (what `GET /v1/logs?follow=1` shows while a
/// job runs and while a web container serves). Each stream's bytes are cut
/// at newlines and every complete line is appended as it arrives, with the
/// time it arrived and the call and container of `about`; Finish() appends
/// what is left of a last line without its newline, then how the container
/// ended. The first MiB of each stream is logged (the call's own files keep
/// more), then one agent line says it was cut short. Safe to use from the
/// thread reading the output and the one finishing it.
class OutputLog {
 public:
  OutputLog(FunctionLogs* logs, std::string app, std::string function, LogLine about);

  /// The next bytes of `stream` ("stdout" or "stderr").
  void Write(const std::string& stream, std::string_view data);
  /// The partial last lines, then `outcome` as an agent line.
  core::Status Finish(const std::string& outcome);

  static constexpr std::size_t kLoggedBytes = 1 << 20;  // per stream and container

 private:
  /// What one stream has sent: the line not yet ended, the bytes logged.
  struct Stream {
    std::string partial;
    std::size_t logged = 0;
    bool cut = false;
  };
  /// Adds `text` as a line of `stream` to `lines`, unless it is past the limit.
  void AddLine(const std::string& stream, Stream& state, std::string text,
               std::vector<LogLine>* lines);
  core::Status AppendLines(const std::vector<LogLine>& lines);

  FunctionLogs* logs_;
  std::string app_;
  std::string function_;
  LogLine about_;
  std::mutex mutex_;
  std::map<std::string, Stream> streams_;
};

}  // namespace agents
