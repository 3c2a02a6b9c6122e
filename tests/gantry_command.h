#pragma once

// Runs real programs (the `gantry` binary, umoci, skopeo, ...) for end-to-end tests.

#include <filesystem>
#include <string>
#include <vector>

namespace tests {

struct CommandOutput {
  int exit_code = -1;
  std::string out;
  std::string err;
};

/// Runs `argv` (argv[0] looked up on PATH) in `directory` and captures its
/// exit code and both streams. `environment` entries "K=V" are added to the
/// inherited environment.
CommandOutput RunProcess(const std::vector<std::string>& argv,
                         const std::filesystem::path& directory = GANTRY_SOURCE_DIR,
                         const std::vector<std::string>& environment = {});

/// Runs build/gantry with `args` from the source tree's root, so example
/// paths are relative to it.
CommandOutput RunGantry(const std::vector<std::string>& args,
                        const std::vector<std::string>& environment = {});

}  // namespace tests
