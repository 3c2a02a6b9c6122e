#include "toolchain/build_progress.h"

#include <cstdio>

#include "core/quantity.h"

namespace toolchain {
namespace {

// "web [2/5] run make install" cut to a width that fits a terminal line.
std::string StepName(const builder::StepReport& report) {
  std::string step = report.index == 0
                         ? "base"
                         : std::to_string(report.index) + "/" + std::to_string(report.count);
  std::string description =
      report.description.size() > 48 ? report.description.substr(0, 47) + "~" : report.description;
  char text[128];
  std::snprintf(text, sizeof text, "%s [%s] %-48s", report.image.c_str(), step.c_str(),
                description.c_str());
  return text;
}

std::string Outcome(const builder::StepReport& report) {
  if (!report.has_layer) return report.index == 0 ? "ready" : "config";
  std::string state = report.index == 0 ? "ready" : report.cached ? "cached" : "built";
  return state + "  " + core::FormatSizeForPeople(report.layer_bytes);
}

}  // namespace

BuildProgress::BuildProgress(bool terminal) : terminal_(terminal) {
  if (!terminal_) return;
  ticker_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
      wake_.wait_for(lock, std::chrono::milliseconds(200));
      if (running_) Redraw();
    }
  });
}

BuildProgress::~BuildProgress() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (ticker_.joinable()) ticker_.join();
}

void BuildProgress::Redraw() {
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  std::fprintf(stderr, "\r\033[K%s building  %.1fs", StepName(current_).c_str(), seconds);
  std::fflush(stderr);
}

void BuildProgress::Report(const builder::StepReport& report) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!report.finished) {
    current_ = report;
    started_ = std::chrono::steady_clock::now();
    running_ = terminal_;
    if (running_) Redraw();
    return;
  }
  running_ = false;
  std::fprintf(stderr, "%s%s %s  %.2fs\n", terminal_ ? "\r\033[K" : "", StepName(report).c_str(),
               Outcome(report).c_str(), report.seconds);
  std::fflush(stderr);
}

}  // namespace toolchain
