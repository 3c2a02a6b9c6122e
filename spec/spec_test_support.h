#pragma once

// Shared by the spec layer's unit tests: load a spec from text and read its errors.

#include <filesystem>
#include <string>

#include "spec/loader.h"
#include "tests/temp_dir.h"

namespace spec::testing {

using TempDir = tests::TempDir;

/// Loads YAML text as if it were the file `app.yaml` in `dir`.
core::Result<App, Diagnostics> LoadYaml(const std::string& text, const TempDir& dir);
core::Result<App, Diagnostics> LoadLua(const std::string& text, const TempDir& dir,
                                       const LuaLimits& limits = {});

/// Every error as its printed line, joined by newlines; "" when it loaded.
std::string ErrorText(const core::Result<App, Diagnostics>& result);

}  // namespace spec::testing
