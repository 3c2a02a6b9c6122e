#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <utility>

namespace toolchain {

/// What `gantry up --watch` watches: every file under a folder (the spec's,
/// which is also its build context), by path, size and modification time,
/// leaving out gantry's own `.gantry` folders and `.git`. Polled, not inotify: a poll a
/// second costs little for a build context and sees edits made through any
/// editor's rename-and-replace.
class SourceWatch {
 public:
  explicit SourceWatch(std::filesystem::path folder);

  /// Whether a file was added, removed or changed since the last call (or
  /// since construction).
  bool Changed();

 private:
  using Snapshot = std::map<std::string, std::pair<std::uintmax_t, std::int64_t>>;
  Snapshot Take() const;

  std::filesystem::path folder_;
  Snapshot last_;
};

}  // namespace toolchain
