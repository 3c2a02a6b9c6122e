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

/// Checks the JSON document in the file `document` against
/// schemas/SCHEMA_FILE (its `#/$defs/DEFINITION` when one is named) with
/// Debian's python3-jsonschema, as tests/schema_test.py does: exit code 0
/// when it is valid, else the validator's message in `err`.
CommandOutput CheckJsonSchema(const std::string& schema_file, const std::filesystem::path& document,
                              const std::string& definition = "");

}  // namespace tests
