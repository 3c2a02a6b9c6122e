#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "builder/content_store.h"
#include "builder/layer_writer.h"
#include "core/result.h"

namespace builder {

/// One entry of the layer cache (`STORE/.gantry/cache/layers/HEX.json`, the
/// format of layer_cache.h), as `gantry cache ls` shows it.
struct CacheEntry {
  std::string key;             // "sha256:HEX", from the file name
  std::optional<Layer> layer;  // nullopt: the file is not a cache entry (torn, foreign)
  bool blob_present = false;   // false: a lookup of this key misses
  std::int64_t recorded = 0;   // the file's mtime (seconds since 1970): when it was recorded
};

/// The layer cache at a glance.
struct CacheListing {
  std::vector<CacheEntry> entries;  // newest first
  std::size_t missing = 0;          // entries that miss: blob gone, or not an entry
  std::size_t blob_count = 0;       // distinct blobs the other entries point to
  std::uint64_t blob_bytes = 0;     // their size on disk
};

/// What `gantry cache prune` removes. Blobs reachable from index.json (its
/// manifests, their configs and layers, through image indexes at any depth)
/// are never removed. Beyond those:
/// - by default: cache entries that miss, and blobs that neither a tagged
///   image nor a remaining cache entry needs;
/// - `all`: every cache entry and every blob not reachable from index.json;
///   with `keep_tagged`, cache entries whose layer is in a tagged image stay,
///   so that rebuilding the tagged images stays cached.
/// Blobs written less than `grace_seconds` ago are kept whatever refers to
/// them: a build that runs now writes its layers, config and manifest before
/// it tags the image (it holds the store lock only to tag).
///
/// Prune runs while no build does (StoreLock): it waits for running builds
/// to end, up to `lock_timeout` (nullopt: as long as they take). It then
/// also removes the scratch roots and half-written layers that interrupted
/// builds left in `.gantry/tmp` (`root-*`, `debootstrap-*`, `layer-*`).
struct PruneOptions {
  bool all = false;
  bool keep_tagged = false;
  std::int64_t grace_seconds = 15 * 60;
  std::optional<std::chrono::milliseconds> lock_timeout;
};

struct PruneReport {
  std::size_t entries_removed = 0;
  std::size_t blobs_removed = 0;
  std::uint64_t bytes_freed = 0;    // of the blobs removed
  std::size_t blobs_too_new = 0;    // unreferenced, kept for the grace period
  std::size_t scratch_removed = 0;  // what interrupted builds left in .gantry/tmp
};

/// What a store holds for reuse, and the means to trim it: the layer cache's
/// entries with the blobs they point to, and the blobs that no tagged image
/// needs. Uses: 1) `gantry cache ls`; 2) `gantry cache prune`, which a build
/// running at the same time survives: pruning holds the store lock (as
/// ContentStore::Tag does), so it sees index.json whole and no image is
/// tagged while it decides, and it keeps recently written blobs.
class CacheInventory {
 public:
  explicit CacheInventory(ContentStore& store) : store_(store) {}

  core::Result<CacheListing> List() const;
  core::Result<PruneReport> Prune(const PruneOptions& options) const;

 private:
  ContentStore& store_;
};

}  // namespace builder
