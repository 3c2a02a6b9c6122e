#include "toolchain/source_watch.h"

#include <algorithm>

namespace toolchain {

namespace fs = std::filesystem;

namespace {

// `path` absolute and without `.`, `..` or a trailing separator.
fs::path Normal(const fs::path& path) {
  std::error_code error;
  fs::path absolute = fs::absolute(path, error).lexically_normal();
  return absolute.has_filename() ? absolute : absolute.parent_path();
}

}  // namespace

SourceWatch::SourceWatch(fs::path folder, const std::vector<fs::path>& ignored)
    : folder_(std::move(folder)) {
  if (folder_.empty()) folder_ = ".";
  for (const fs::path& path : ignored) ignored_.push_back(Normal(path));
  last_ = Take();
}

bool SourceWatch::Changed() {
  Snapshot now = Take();
  bool changed = now != last_;
  last_ = std::move(now);
  return changed;
}

SourceWatch::Snapshot SourceWatch::Take() const {
  Snapshot snapshot;
  std::error_code error;
  for (auto it = fs::recursive_directory_iterator(folder_, error);
       !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
    std::error_code stat_error;
    if (it->path().filename() == ".gantry" || it->path().filename() == ".git" ||
        (it->is_directory(stat_error) &&
         std::find(ignored_.begin(), ignored_.end(), Normal(it->path())) != ignored_.end())) {
      it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file(stat_error)) continue;
    auto size = it->file_size(stat_error);
    auto modified = it->last_write_time(stat_error).time_since_epoch().count();
    if (!stat_error) snapshot[it->path().string()] = {size, modified};
  }
  return snapshot;
}

}  // namespace toolchain
