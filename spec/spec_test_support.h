#pragma once

// Shared by the spec layer's unit tests: load a spec from text and read its errors.

#include <filesystem>
#include <string>

#include "spec/loader.h"

namespace spec::testing {

/// A scratch folder that is removed with the object.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  /// Writes `content` to `relative` (creating folders) and returns its full path.
  std::filesystem::path Write(const std::string& relative, const std::string& content) const;

 private:
  std::filesystem::path path_;
};

/// Loads YAML text as if it were the file `app.yaml` in `dir`.
core::Result<App, Diagnostics> LoadYaml(const std::string& text, const TempDir& dir);
core::Result<App, Diagnostics> LoadLua(const std::string& text, const TempDir& dir,
                                       const LuaLimits& limits = {});

/// Every error as its printed line, joined by newlines; "" when it loaded.
std::string ErrorText(const core::Result<App, Diagnostics>& result);

}  // namespace spec::testing
