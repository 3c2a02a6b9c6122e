#pragma once

// What the end-to-end tests of the agent start from, with Catch's REQUIRE:
// the busybox image, a running `gantry agent`, the JSON of its answers. A
// step that fails stops the test with what went wrong (gantry's error, the
// agent's log, the answer's body). The test must define GANTRY_BINARY.

#include <httplib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "tests/agent_process.h"
#include "tests/busybox_image.h"
#include "tests/skip.h"

namespace tests {

/// Whether this machine can run the agent's containers (CanRunContainers);
/// where it cannot, the test says it is skipped and why.
inline bool ContainersOrSkip() {
  if (CanRunContainers()) return true;
  tests::Skip("needs root, /usr/sbin/runc and /bin/busybox");
  return false;
}

/// BuildBusyboxImage with the real `gantry build` into `store` (work files
/// under `work_dir`): the image's manifest digest.
inline std::string RequireBusyboxImage(const std::filesystem::path& work_dir,
                                       const std::filesystem::path& store) {
  auto digest = BuildBusyboxImage(GANTRY_BINARY, work_dir, store);
  INFO((digest.ok() ? "" : digest.error().message));
  REQUIRE(digest.ok());
  return *digest;
}

/// `gantry agent` on `data_dir` with images from `store`, its log in `log`
/// (AgentProcess::Start, `--gpus fake:H100x1` unless `extra_args` say;
/// `extra_env` besides PATH and HOME).
inline std::unique_ptr<AgentProcess> RequireAgent(const std::filesystem::path& data_dir,
                                                  const std::filesystem::path& store,
                                                  const std::filesystem::path& log,
                                                  std::vector<std::string> extra_args = {},
                                                  std::vector<std::string> extra_env = {}) {
  auto started = AgentProcess::Start(GANTRY_BINARY, data_dir, store, log, std::move(extra_args),
                                     std::move(extra_env));
  INFO((started.ok() ? "" : started.error().message));
  REQUIRE(started.ok());
  return std::move(started).value();
}

/// The JSON body of an answer of the agent, which must have `status`
/// (nullopt: any status).
inline nlohmann::json Body(const httplib::Result& result, std::optional<int> status = 200) {
  REQUIRE(result);
  INFO(result->body);
  if (status) REQUIRE(result->status == *status);
  return nlohmann::json::parse(result->body);
}

}  // namespace tests
