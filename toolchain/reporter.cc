#include "toolchain/reporter.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <nlohmann/json.hpp>

namespace toolchain {
namespace {

LogFormat g_format = LogFormat::kText;

// %j: the message as a JSON string, quotes and escapes included.
class JsonMessageFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& message, const std::tm&,
              spdlog::memory_buf_t& destination) override {
    std::string text = nlohmann::json(std::string(message.payload.data(), message.payload.size()))
                           .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    destination.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};

}  // namespace

void ConfigureLogging(bool verbose, LogFormat format) {
  g_format = format;
  auto logger = spdlog::stderr_logger_st("gantry");
  logger->set_level(verbose ? spdlog::level::debug : spdlog::level::info);
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  if (format == LogFormat::kJson) {
    formatter->add_flag<JsonMessageFlag>('j').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","message":%j})");
  } else {
    formatter->set_pattern(verbose ? "%H:%M:%S.%e %l %v" : "%v");
  }
  logger->set_formatter(std::move(formatter));
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
