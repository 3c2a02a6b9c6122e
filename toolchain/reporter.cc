#include "toolchain/reporter.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string_view>

#include "core/wall_clock.h"

namespace toolchain {
namespace {

LogFormat g_format = LogFormat::kText;

// One JSON object per line: "time" (UTC, ISO 8601 with milliseconds),
// "level", "message", and as fields: "component" when the message begins
// with one ("agent: applied generation 3" is component "agent", message
// "applied generation 3"), "pid" and "thread". Messages carry no secret
// (the agent never logs one), so neither does the line.
class JsonLineFormatter : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& message, spdlog::memory_buf_t& destination) override {
    std::string text(message.payload.data(), message.payload.size());
    nlohmann::json line = {
        {"time",
         core::FormatTimestamp(
             std::chrono::time_point_cast<std::chrono::milliseconds>(message.time), nullptr)},
        {"level", spdlog::level::to_string_view(message.level).data()}};
    // "agent: text" names its component. Found by hand, not with
    // std::regex, whose matcher recurses once per character of a long
    // message (runc's stderr can be 64 KiB) and can overflow the stack.
    const std::size_t colon = text.find(": ");
    const std::string_view component = std::string_view(text).substr(0, colon);
    const bool named = colon != std::string::npos && !component.empty() &&
                       component.front() >= 'a' && component.front() <= 'z' &&
                       std::all_of(component.begin(), component.end(),
                                   [](char c) { return (c >= 'a' && c <= 'z') || c == '-'; });
    if (named) {
      line["component"] = std::string(component);
      line["message"] = text.substr(colon + 2);
    } else {
      line["message"] = text;
    }
    line["pid"] = ::getpid();
    line["thread"] = message.thread_id;
    std::string written =
        line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    destination.append(written.data(), written.data() + written.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonLineFormatter>();
  }
};

}  // namespace

void ConfigureLogging(bool verbose, LogFormat format) {
  g_format = format;
  // The agent logs from many threads: one line never interleaves with another.
  spdlog::drop("gantry");  // set up again by a verb with its own --log-format
  auto logger = spdlog::stderr_logger_mt("gantry");
  logger->set_level(verbose ? spdlog::level::debug : spdlog::level::info);
  if (format == LogFormat::kJson) {
    logger->set_formatter(std::make_unique<JsonLineFormatter>());
  } else {
    logger->set_formatter(
        std::make_unique<spdlog::pattern_formatter>(verbose ? "%H:%M:%S.%e %l %v" : "%v"));
  }
  spdlog::set_default_logger(logger);
}

void ReportErrors(const std::vector<core::Error>& errors) {
  for (const core::Error& error : errors) {
    if (g_format == LogFormat::kJson) {
      nlohmann::json line = {{"level", "error"},
                             {"code", core::ErrorCodeName(error.code)},
                             {"message", error.message}};
      if (!error.location.file.empty()) line["file"] = error.location.file;
      if (error.location.line > 0) line["line"] = error.location.line;
      if (error.location.column > 0) line["column"] = error.location.column;
      std::fprintf(stderr, "%s\n",
                   line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else {
      std::fprintf(stderr, "%s\n", error.ToString().c_str());
    }
  }
}

}  // namespace toolchain
