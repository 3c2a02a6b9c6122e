#include "agents/function_logs.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <fstream>
#include <sstream>

#include "core/wall_clock.h"

namespace agents {

namespace fs = std::filesystem;
using nlohmann::json;

json LogLine::ToJson() const {
  json line = {{"time_ms", time_ms}, {"stream", stream}, {"text", text}};
  if (!call.empty()) line["call"] = call;
  if (!container.empty()) line["container"] = container;
  return line;
}

FunctionLogs::FunctionLogs(fs::path dir, std::uint64_t max_bytes)
    : dir_(std::move(dir)), max_bytes_(max_bytes) {}

fs::path FunctionLogs::FileOf(const std::string& app, const std::string& function) const {
  return dir_ / app / (function + ".log");
}

core::Status FunctionLogs::Append(const std::string& app, const std::string& function,
                                  const std::vector<LogLine>& lines) {
  std::string text;
  for (const LogLine& line : lines)
    text += line.ToJson().dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  std::lock_guard lock(mutex_);
  fs::path file = FileOf(app, function);
  std::error_code error;
  fs::create_directories(file.parent_path(), error);
  std::uint64_t size = fs::exists(file, error) ? fs::file_size(file, error) : 0;
  if (size > 0 && size + text.size() > max_bytes_) {
    fs::rename(file, fs::path(file.string() + ".1"), error);
    if (error)
      return core::Error{
          core::ErrorCode::kIo, "cannot rotate " + file.string() + ": " + error.message(), {}};
  }
  std::ofstream out(file, std::ios::app | std::ios::binary);
  out << text;
  out.flush();
  if (!out) return core::Error{core::ErrorCode::kIo, "cannot write " + file.string(), {}};
  return core::Ok{};
}

std::string LogCursor::Encode() const {
  std::string text;
  for (const auto& [function, offset] : offsets)
    text += (text.empty() ? "" : ",") + function + ":" + std::to_string(offset);
  return text.empty() ? "-" : text;
}

std::optional<LogCursor> LogCursor::Decode(std::string_view text) {
  LogCursor cursor;
  cursor.started = true;
  if (text == "-") return cursor;
  for (bool more = !text.empty(); more;) {
    std::size_t end = std::min(text.find(','), text.size());
    std::string_view pair = text.substr(0, end);
    more = end < text.size();
    text = more ? text.substr(end + 1) : std::string_view();
    std::size_t colon = pair.find(':');
    if (colon == std::string_view::npos || colon == 0) return std::nullopt;
    // A function's name: what its log file is named after.
    if (!std::all_of(pair.begin(), pair.begin() + colon, [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
        })) {
      return std::nullopt;
    }
    std::string_view digits = pair.substr(colon + 1);
    std::uint64_t offset = 0;
    auto [last, error] = std::from_chars(digits.data(), digits.data() + digits.size(), offset);
    if (error != std::errc() || last != digits.data() + digits.size() || digits.empty())
      return std::nullopt;
    cursor.offsets[std::string(pair.substr(0, colon))] = offset;
  }
  if (cursor.offsets.empty()) return std::nullopt;
  return cursor;
}

std::string FunctionLogs::ReadNew(const std::string& app, const std::string& function,
                                  LogCursor* cursor, std::int64_t since_ms) const {
  std::lock_guard lock(mutex_);
  std::vector<fs::path> files;
  std::error_code error;
  if (!function.empty()) {
    files.push_back(FileOf(app, function));
  } else if (fs::is_directory(dir_ / app, error)) {
    for (const auto& entry : fs::directory_iterator(dir_ / app, error)) {
      if (entry.path().extension() == ".log") files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
  }
  std::string text;
  for (const fs::path& file : files) {
    if (!cursor->started) {
      std::ifstream rotated(file.string() + ".1", std::ios::binary);
      text.append(std::istreambuf_iterator<char>(rotated), {});
    }
    std::uint64_t size = fs::exists(file, error) ? fs::file_size(file, error) : 0;
    std::uint64_t& offset = cursor->offsets[file.stem().string()];
    if (size < offset) offset = 0;  // rotated since the last read
    std::ifstream in(file, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(offset));
    std::string fresh(std::istreambuf_iterator<char>(in), {});
    // Only whole lines: a line being written is read next time.
    std::size_t end = fresh.rfind('\n');
    if (end == std::string::npos) continue;
    text += fresh.substr(0, end + 1);
    offset += end + 1;
  }
  cursor->started = true;
  if (since_ms <= 0) return text;
  std::string kept;
  for (std::size_t start = 0, end; start < text.size(); start = end + 1) {
    end = std::min(text.find('\n', start), text.size());
    std::string_view line(text.data() + start, end - start);
    json parsed = json::parse(line, nullptr, false);
    if (parsed.is_object() && parsed.value("time_ms", std::int64_t{0}) >= since_ms)
      kept.append(line).append("\n");
  }
  return kept;
}

OutputLog::OutputLog(FunctionLogs* logs, std::string app, std::string function, LogLine about)
    : logs_(logs), app_(std::move(app)), function_(std::move(function)), about_(std::move(about)) {}

void OutputLog::AddLine(const std::string& stream, Stream& state, std::string text,
                        std::vector<LogLine>* lines) {
  if (state.cut) return;
  LogLine line = about_;
  line.time_ms = core::NowMs();
  if ((state.logged += text.size() + 1) > kLoggedBytes) {
    state.cut = true;
    line.stream = "agent";
    line.text = stream + " cut short here (1 MiB of it is logged)";
  } else {
    line.stream = stream;
    line.text = std::move(text);
  }
  lines->push_back(std::move(line));
}

core::Status OutputLog::AppendLines(const std::vector<LogLine>& lines) {
  if (lines.empty()) return core::Ok{};
  return logs_->Append(app_, function_, lines);
}

void OutputLog::Write(const std::string& stream, std::string_view data) {
  std::vector<LogLine> lines;
  {
    std::lock_guard lock(mutex_);
    Stream& state = streams_[stream];
    if (state.cut) return;
    for (std::size_t end; (end = data.find('\n')) != std::string_view::npos;) {
      state.partial.append(data.substr(0, end));
      AddLine(stream, state, std::move(state.partial), &lines);
      state.partial.clear();
      data.remove_prefix(end + 1);
    }
    state.partial.append(data);
    // A line not yet ended that is already past the limit is cut here.
    if (state.logged + state.partial.size() >= kLoggedBytes) {
      AddLine(stream, state, std::move(state.partial), &lines);
      state.partial.clear();
    }
    // Appended under the lock: lines of one container stay in order.
    if (auto appended = AppendLines(lines); !appended.ok())
      spdlog::warn("agent: {}", appended.error().message);
  }
}

core::Status OutputLog::Finish(const std::string& outcome) {
  std::lock_guard lock(mutex_);
  std::vector<LogLine> lines;
  for (const char* stream : {"stdout", "stderr"}) {
    Stream& state = streams_[stream];
    if (!state.partial.empty()) AddLine(stream, state, std::move(state.partial), &lines);
    state.partial.clear();
  }
  LogLine last = about_;
  last.time_ms = core::NowMs();
  last.stream = "agent";
  last.text = outcome;
  lines.push_back(std::move(last));
  return AppendLines(lines);
}

}  // namespace agents
