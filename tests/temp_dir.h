#pragma once

// A scratch folder for a test: shared by the unit tests of every layer and
// the end-to-end tests, so that each does not write its own.

#include <filesystem>
#include <string>

namespace tests {

/// A fresh folder under the system's temporary folder (mkdtemp), removed
/// with everything in it when the object goes.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "gantry-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  /// Writes `content` to `relative` (creating folders) and returns its full path.
  std::filesystem::path Write(const std::string& relative, const std::string& content) const;

 private:
  std::filesystem::path path_;
};

}  // namespace tests
