#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace toolchain {

/// What `gantry up --watch` watches: every file under a folder (the spec's,
/// which is also its build context), by path, size and modification time,
/// leaving out `.git`, gantry's own `.gantry` folders and the folders it is
/// told gantry writes to (a content store or an agent's data kept inside
/// the spec's folder would otherwise make every build or request look like
/// an edit). Polled, not inotify: a poll a second costs little for a build
/// context and sees edits made through any editor's rename-and-replace.
class SourceWatch {
 public:
  SourceWatch(std::filesystem::path folder, const std::vector<std::filesystem::path>& ignored);

  /// Whether a file was added, removed or changed since the last call (or
  /// since construction).
  bool Changed();

 private:
  using Snapshot = std::map<std::string, std::pair<std::uintmax_t, std::int64_t>>;
  Snapshot Take() const;

  std::filesystem::path folder_;
  std::vector<std::filesystem::path> ignored_;  // absolute, normal
  Snapshot last_;
};

}  // namespace toolchain
