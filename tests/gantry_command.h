#pragma once

// Runs the real `gantry` binary for end-to-end tests.

#include <string>
#include <vector>

namespace tests {

struct CommandOutput {
  int exit_code = -1;
  std::string out;
  std::string err;
};

/// Runs build/gantry with `args` (from the source tree's root, so example
/// paths are relative to it) and captures its exit code and both streams.
CommandOutput RunGantry(const std::vector<std::string>& args);

}  // namespace tests
