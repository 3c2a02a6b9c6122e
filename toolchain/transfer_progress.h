#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include "builder/registry_client.h"

namespace toolchain {

/// Shows a push's or pull's progress on stderr: on a terminal, one line
/// redrawn at most five times a second with the blobs done of those
/// started, their bytes done and the rate since the first
/// (`box  2/4 blobs  41.0 MiB / 120.0 MiB  88.1 MiB/s`), several blobs
/// moving at once; elsewhere nothing (the verbs print one summary line per image).
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
  struct Blob {
    std::uint64_t done = 0;
    std::uint64_t size = 0;
  };
  std::map<std::string, Blob> blobs_;  // by digest
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point last_drawn_;
};

}  // namespace toolchain
