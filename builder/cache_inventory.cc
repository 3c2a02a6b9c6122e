#include "builder/cache_inventory.h"

#include <sys/stat.h>

#include <algorithm>
#include <ctime>
#include <map>
#include <set>

#include "builder/layer_cache.h"
#include "builder/store_lock.h"
#include "core/atomic_file.h"

namespace builder {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Docker's names for what OCI calls a manifest and an index; registries
// still serve them, and a layout that skopeo copied into may hold them.
constexpr char kDockerManifestMediaType[] = "application/vnd.docker.distribution.manifest.v2+json";
constexpr char kDockerManifestListMediaType[] =
    "application/vnd.docker.distribution.manifest.list.v2+json";

bool IsHexDigest(const std::string& text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// mtime in seconds since 1970, or nullopt when the file is gone.
std::optional<std::int64_t> ModifiedAt(const fs::path& path) {
  struct stat info {};
  if (lstat(path.c_str(), &info) != 0) return std::nullopt;
  return static_cast<std::int64_t>(info.st_mtim.tv_sec);
}

core::Error InventoryError(const std::string& message, const fs::path& path) {
  return core::Error{core::ErrorCode::kIo, message, core::Location{path.string(), 0, 0}};
}

// Every entry file of the layer cache, read as LayerCache::Lookup reads it.
core::Result<std::vector<CacheEntry>> ReadEntries(const ContentStore& store) {
  std::vector<CacheEntry> entries;
  const fs::path folder = LayerCache(store).Folder();
  std::error_code error;
  if (!fs::is_directory(folder, error)) return entries;  // nothing cached yet
  for (const fs::directory_entry& file : fs::directory_iterator(folder, error)) {
    const std::string hex = file.path().stem().string();
    // Skips the temporary files of a write in progress (".HEX.json.tmp-N").
    if (file.path().extension() != ".json" || !IsHexDigest(hex)) continue;
    CacheEntry entry;
    entry.key = "sha256:" + hex;
    auto recorded = ModifiedAt(file.path());
    if (!recorded) continue;  // removed since it was listed
    entry.recorded = *recorded;
    if (auto text = core::ReadFile(file.path())) {
      json document = json::parse(*text, nullptr, /*allow_exceptions=*/false);
      if (document.is_object() && document.contains("diff_id") && document["diff_id"].is_string()) {
        auto blob = Descriptor::FromJson(document.value("blob", json()));
        if (blob) {
          entry.layer = Layer{document["diff_id"].get<std::string>(), *blob};
          entry.blob_present = store.HasBlob(blob->digest);
        }
      }
    }
    entries.push_back(std::move(entry));
  }
  if (error) return InventoryError("cannot list the layer cache: " + error.message(), folder);
  std::sort(entries.begin(), entries.end(), [](const CacheEntry& a, const CacheEntry& b) {
    return a.recorded != b.recorded ? a.recorded > b.recorded : a.key < b.key;
  });
  return entries;
}

bool IsManifest(const std::string& media_type) {
  return media_type == kOciManifestMediaType || media_type == kDockerManifestMediaType;
}

bool IsIndex(const std::string& media_type) {
  return media_type == kOciIndexMediaType || media_type == kDockerManifestListMediaType;
}

// The digests of every blob index.json reaches: its manifests, their configs
// and layers, and through image indexes the manifests they list. A manifest
// that is reached but cannot be read fails the whole walk: without it, what
// it needs is unknown, and pruning could break a tagged image.
core::Result<std::set<std::string>> ReachableBlobs(const ContentStore& store) {
  auto tagged = store.List();
  if (!tagged) return tagged.error();
  std::set<std::string> reached;
  std::vector<Descriptor> pending = *tagged;
  while (!pending.empty()) {
    Descriptor descriptor = std::move(pending.back());
    pending.pop_back();
    if (!reached.insert(descriptor.digest).second) continue;
    if (!IsManifest(descriptor.media_type) && !IsIndex(descriptor.media_type)) continue;
    if (!store.HasBlob(descriptor.digest)) continue;  // gone already: it needs nothing more
    auto text = store.ReadBlob(descriptor.digest);
    if (!text) return text.error();
    json document = json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (!document.is_object()) {
      return InventoryError("the manifest " + descriptor.digest + " is not JSON",
                            store.BlobPath(descriptor.digest));
    }
    std::vector<json> children;
    if (document.contains("config")) children.push_back(document["config"]);
    for (const char* list : {"layers", "manifests"}) {
      if (document.contains(list) && document[list].is_array()) {
        for (const json& child : document[list]) children.push_back(child);
      }
    }
    for (const json& child : children) {
      auto child_descriptor = Descriptor::FromJson(child);
      if (!child_descriptor) {
        return InventoryError(
            "the manifest " + descriptor.digest +
                " lists a malformed descriptor: " + child_descriptor.error().message,
            store.BlobPath(descriptor.digest));
      }
      pending.push_back(std::move(child_descriptor).value());
    }
  }
  return reached;
}

}  // namespace

core::Result<CacheListing> CacheInventory::List() const {
  auto entries = ReadEntries(store_);
  if (!entries) return entries.error();
  CacheListing listing;
  listing.entries = std::move(entries).value();
  std::set<std::string> counted;
  for (const CacheEntry& entry : listing.entries) {
    if (!entry.layer || !entry.blob_present) {
      ++listing.missing;
      continue;
    }
    if (!counted.insert(entry.layer->blob.digest).second) continue;
    std::error_code error;
    std::uintmax_t size = fs::file_size(store_.BlobPath(entry.layer->blob.digest), error);
    ++listing.blob_count;
    listing.blob_bytes += error ? 0 : size;
  }
  return listing;
}

core::Result<PruneReport> CacheInventory::Prune(const PruneOptions& options) const {
  std::error_code error;
  fs::create_directories(store_.PrivateDir(), error);  // a layout gantry did not make has none
  auto builds = StoreLock::ForPrune(store_, options.lock_timeout);
  if (!builds) return builds.error();
  auto lock = core::FileLock::Acquire(store_.PrivateDir() / "lock");
  if (!lock) return lock.error();
  // Decided entirely before anything is removed: an error leaves the store as it was.
  auto reachable = ReachableBlobs(store_);
  if (!reachable) return reachable.error();
  auto entries = ReadEntries(store_);
  if (!entries) return entries.error();

  PruneReport report;
  std::set<std::string> needed = *reachable;
  std::vector<fs::path> doomed_entries;
  for (const CacheEntry& entry : *entries) {
    bool remove = !entry.layer || !entry.blob_present;
    if (!remove && options.all)
      remove = !(options.keep_tagged && reachable->contains(entry.layer->blob.digest));
    if (remove) {
      doomed_entries.push_back(LayerCache(store_).EntryPath(entry.key));
    } else {
      needed.insert(entry.layer->blob.digest);
    }
  }

  const std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
  std::map<fs::path, std::uint64_t> doomed_blobs;  // path -> size
  const fs::path blobs = store_.root() / "blobs" / "sha256";
  for (const fs::directory_entry& file : fs::directory_iterator(blobs, error)) {
    const std::string hex = file.path().filename().string();
    // Not a blob: the temporary file of a write in progress, or a stranger.
    if (!IsHexDigest(hex) || needed.contains("sha256:" + hex)) continue;
    auto modified = ModifiedAt(file.path());
    if (!modified) continue;
    if (now - *modified < options.grace_seconds) {
      ++report.blobs_too_new;
      continue;
    }
    std::error_code size_error;
    std::uintmax_t size = fs::file_size(file.path(), size_error);
    doomed_blobs.emplace(file.path(), size_error ? 0 : size);
  }
  if (error) return InventoryError("cannot list the blobs: " + error.message(), blobs);

  // Entries first, then blobs: a prune cut short leaves at worst entries
  // whose blob is gone, which miss (and the next prune removes).
  for (const fs::path& path : doomed_entries) {
    if (!fs::remove(path, error) && error)
      return InventoryError("cannot remove the cache entry: " + error.message(), path);
    ++report.entries_removed;
  }
  for (const auto& [path, size] : doomed_blobs) {
    if (!fs::remove(path, error) && error)
      return InventoryError("cannot remove the blob: " + error.message(), path);
    ++report.blobs_removed;
    report.bytes_freed += size;
  }
  // No build runs: what builds left in the temporary folder is an interrupted one's.
  const fs::path temp = store_.PrivateDir() / "tmp";
  for (const fs::directory_entry& item : fs::directory_iterator(temp, error)) {
    const std::string name = item.path().filename().string();
    if (!name.starts_with("root-") && !name.starts_with("debootstrap-") &&
        !name.starts_with("layer-")) {
      continue;  // a pull's download, or a stranger
    }
    if (fs::remove_all(item.path(), error) == static_cast<std::uintmax_t>(-1) || error)
      return InventoryError("cannot remove a leftover scratch folder: " + error.message(),
                            item.path());
    ++report.scratch_removed;
  }
  return report;
}

}  // namespace builder
