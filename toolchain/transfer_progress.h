#pragma once

#include <chrono>
#include <string>

#include "builder/registry_client.h"

namespace toolchain {

/// Shows a push's or pull's progress on stderr: on a terminal, one line
/// redrawn at most five times a second with the blob, its bytes done and
/// the rate (`box  sha256:3f2a9c0e1b2d  41.0 MiB / 120.0 MiB  88.1 MiB/s`);
/// elsewhere nothing (the verbs print one summary line per image).
class TransferProgress {
 public:
  TransferProgress(bool terminal, std::string image);
  ~TransferProgress();
  TransferProgress(const TransferProgress&) = delete;
  TransferProgress& operator=(const TransferProgress&) = delete;

  void Report(const builder::TransferProgress& progress);

 private:
  bool terminal_;
  std::string image_;
  bool drawn_ = false;
  std::string digest_;
  std::chrono::steady_clock::time_point blob_started_;
  std::chrono::steady_clock::time_point last_drawn_;
};

}  // namespace toolchain
