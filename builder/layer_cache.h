#pragma once

#include <optional>
#include <string>

#include "builder/content_store.h"
#include "builder/layer_writer.h"

namespace builder {

/// Remembers which layer each build step produced, by the step's cache key:
/// sha256(parent key, the step's canonical JSON, digests of its inputs). A
/// hit hands back the stored blob as it is: no re-tar, no recompression.
///
/// On disk (README.md, "Layer cache"): one JSON file per key in
/// `STORE/.gantry/cache/layers/HEX.json` holding {"diff_id", "blob"}, written
/// atomically. An entry whose blob is gone is a miss.
class LayerCache {
 public:
  explicit LayerCache(const ContentStore& store) : store_(store) {}

  std::optional<Layer> Lookup(const std::string& key) const;
  core::Status Record(const std::string& key, const Layer& layer) const;

  /// Where the entries live, and the file of one key: for `gantry cache`.
  std::filesystem::path Folder() const;
  std::filesystem::path EntryPath(const std::string& key) const;

 private:
  const ContentStore& store_;
};

}  // namespace builder
