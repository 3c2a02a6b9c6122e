#include "toolchain/source_watch.h"

namespace toolchain {

namespace fs = std::filesystem;

SourceWatch::SourceWatch(fs::path folder) : folder_(std::move(folder)) {
  if (folder_.empty()) folder_ = ".";
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
    if (it->path().filename() == ".gantry" || it->path().filename() == ".git") {
      it.disable_recursion_pending();
      continue;
    }
    std::error_code stat_error;
    if (!it->is_regular_file(stat_error)) continue;
    auto size = it->file_size(stat_error);
    auto modified = it->last_write_time(stat_error).time_since_epoch().count();
    if (!stat_error) snapshot[it->path().string()] = {size, modified};
  }
  return snapshot;
}

}  // namespace toolchain
