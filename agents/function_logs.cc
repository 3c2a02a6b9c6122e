#include "agents/function_logs.h"

#include <fstream>

namespace agents {

namespace fs = std::filesystem;
using nlohmann::json;

json LogLine::ToJson() const {
  json line = {{"time_ms", time_ms}, {"stream", stream}, {"text", text}};
  if (!call.empty()) line["call"] = call;
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

std::string FunctionLogs::ReadNew(const std::string& app, const std::string& function,
                                  LogCursor* cursor) const {
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
    std::uint64_t& offset = cursor->offsets[file];
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
  return text;
}

}  // namespace agents
