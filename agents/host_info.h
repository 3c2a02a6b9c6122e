#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "core/result.h"

namespace agents {

/// Facts about this host that the planner places functions by.
struct HostInfo {
  std::string host_id;  // stable across restarts: kept in DATA_DIR/host-id
  std::string hostname;
  int cpus = 0;  // CPUs this process may run on
  std::uint64_t memory_bytes = 0;
  std::string kernel;  // uname -r
};

/// Reads the host's facts; the first call on a data dir makes its host id.
core::Result<HostInfo> DetectHost(const std::filesystem::path& data_dir);

}  // namespace agents
