#pragma once

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "builder/image_builder.h"

namespace toolchain {

/// Shows a build's progress on stderr. On a terminal the running step's line
/// is redrawn with its elapsed time five times a second until the step ends
/// (a debootstrap or apt_install step runs for minutes); elsewhere (logs, CI)
/// each step prints one plain line when it ends.
class BuildProgress {
 public:
  explicit BuildProgress(bool terminal);
  ~BuildProgress();
  BuildProgress(const BuildProgress&) = delete;
  BuildProgress& operator=(const BuildProgress&) = delete;

  void Report(const builder::StepReport& report);

 private:
  void Redraw();

  bool terminal_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool running_ = false;
  builder::StepReport current_;
  std::chrono::steady_clock::time_point started_;
  std::thread ticker_;
};

}  // namespace toolchain
