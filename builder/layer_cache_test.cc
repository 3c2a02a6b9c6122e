#include "builder/layer_cache.h"

#include <stdlib.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "builder/cache_inventory.h"
#include "core/sha256.h"

namespace builder {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

/// A store in a folder of the test's own under /tmp, removed with all it holds.
class TempStore {
 public:
  TempStore() {
    std::string pattern = (fs::temp_directory_path() / "gantry-layer-cache-test-XXXXXX").string();
    path_ = mkdtemp(pattern.data());
    auto opened = ContentStore::Open(path_ / "store");
    REQUIRE(opened.ok());
    store_.emplace(std::move(opened).value());
  }
  ~TempStore() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }

  ContentStore& store() { return *store_; }

  /// A "layer" whose blob holds `content` (the cache never looks inside).
  Layer PutLayer(const std::string& content) {
    auto blob = store_->PutBlob(content, kOciLayerGzipMediaType);
    REQUIRE(blob.ok());
    return Layer{core::Sha256Digest("tar of " + content), *blob};
  }

  Descriptor PutJson(const json& document, const std::string& media_type) {
    auto blob = store_->PutBlob(document.dump(), media_type);
    REQUIRE(blob.ok());
    return *blob;
  }

  /// An image manifest with its config, listing `layers`.
  Descriptor PutImage(const std::string& config_text, const std::vector<Layer>& layers) {
    Descriptor config =
        PutJson({{"architecture", "amd64"}, {"note", config_text}}, kOciConfigMediaType);
    json layer_list = json::array();
    for (const Layer& layer : layers) layer_list.push_back(layer.blob.ToJson());
    return PutJson({{"schemaVersion", 2},
                    {"mediaType", kOciManifestMediaType},
                    {"config", config.ToJson()},
                    {"layers", layer_list}},
                   kOciManifestMediaType);
  }

  std::string ConfigOf(const Descriptor& manifest) {
    auto text = store_->ReadBlob(manifest.digest);
    REQUIRE(text.ok());
    return json::parse(*text)["config"]["digest"].get<std::string>();
  }

  fs::path EntryPath(const std::string& key) const {
    return store_->PrivateDir() / "cache" / "layers" / (key.substr(7) + ".json");
  }

  /// Makes a file look `hours` old.
  static void Age(const fs::path& path, int hours) {
    fs::last_write_time(path, fs::file_time_type::clock::now() - std::chrono::hours(hours));
  }

  /// Ages every blob, so that pruning does not keep them for being new.
  void AgeBlobs(int hours) {
    for (const auto& blob : fs::directory_iterator(store_->root() / "blobs" / "sha256"))
      Age(blob.path(), hours);
  }

 private:
  fs::path path_;
  std::optional<ContentStore> store_;
};

std::string Key(const std::string& name) {
  return core::Sha256Digest("step " + name);
}

PruneOptions Options(bool all, bool keep_tagged) {
  PruneOptions options;
  options.all = all;
  options.keep_tagged = keep_tagged;
  options.grace_seconds = 0;
  return options;
}

TEST_CASE("a recorded layer is found by its key", "[layer_cache]") {
  TempStore temp;
  LayerCache cache(temp.store());
  Layer layer = temp.PutLayer("first");
  CHECK_FALSE(cache.Lookup(Key("a")).has_value());
  REQUIRE(cache.Record(Key("a"), layer).ok());
  auto found = cache.Lookup(Key("a"));
  REQUIRE(found.has_value());
  CHECK(found->diff_id == layer.diff_id);
  CHECK(found->blob.digest == layer.blob.digest);
  CHECK(found->blob.size == layer.blob.size);
  CHECK(found->blob.media_type == kOciLayerGzipMediaType);
  CHECK_FALSE(cache.Lookup(Key("b")).has_value());

  // Recording a key again replaces what it pointed at.
  Layer other = temp.PutLayer("second");
  REQUIRE(cache.Record(Key("a"), other).ok());
  CHECK(cache.Lookup(Key("a"))->blob.digest == other.blob.digest);
}

TEST_CASE("a cache entry whose blob is gone, or that is torn, is a miss", "[layer_cache]") {
  TempStore temp;
  LayerCache cache(temp.store());
  Layer layer = temp.PutLayer("gone soon");
  REQUIRE(cache.Record(Key("a"), layer).ok());
  fs::remove(temp.store().BlobPath(layer.blob.digest));
  CHECK_FALSE(cache.Lookup(Key("a")).has_value());

  REQUIRE(cache.Record(Key("b"), temp.PutLayer("kept")).ok());
  std::ofstream(temp.EntryPath(Key("b")), std::ios::trunc) << R"({"diff_id": "sha256:)";
  CHECK_FALSE(cache.Lookup(Key("b")).has_value());
}

TEST_CASE("cache ls lists every entry, newest first, with totals", "[layer_cache]") {
  TempStore temp;
  LayerCache cache(temp.store());
  Layer shared = temp.PutLayer("shared by two steps");
  Layer alone = temp.PutLayer("one step's");
  Layer lost = temp.PutLayer("lost");
  REQUIRE(cache.Record(Key("1"), shared).ok());
  REQUIRE(cache.Record(Key("2"), shared).ok());
  REQUIRE(cache.Record(Key("3"), alone).ok());
  REQUIRE(cache.Record(Key("4"), lost).ok());
  fs::remove(temp.store().BlobPath(lost.blob.digest));
  std::ofstream(temp.EntryPath(Key("5"))) << "not json";
  // A write in progress is no entry.
  std::ofstream(temp.EntryPath(Key("6")).parent_path() / ".abc.json.tmp-1") << "{}";
  for (const char* name : {"1", "2", "4", "5"}) TempStore::Age(temp.EntryPath(Key(name)), 2);

  auto listing = CacheInventory(temp.store()).List();
  REQUIRE(listing.ok());
  REQUIRE(listing->entries.size() == 5);
  CHECK(listing->entries.front().key == Key("3"));  // the only one not aged
  CHECK(listing->missing == 2);
  CHECK(listing->blob_count == 2);
  CHECK(listing->blob_bytes == shared.blob.size + alone.blob.size);
  std::size_t gone = 0;
  std::size_t torn = 0;
  for (const CacheEntry& entry : listing->entries) {
    if (entry.key == Key("4")) gone += entry.layer && !entry.blob_present ? 1 : 0;
    if (entry.key == Key("5")) torn += entry.layer ? 0 : 1;
  }
  CHECK(gone == 1);
  CHECK(torn == 1);
}

TEST_CASE("an empty store lists nothing", "[layer_cache]") {
  TempStore temp;
  auto listing = CacheInventory(temp.store()).List();
  REQUIRE(listing.ok());
  CHECK(listing->entries.empty());
  CHECK(listing->blob_bytes == 0);
}

TEST_CASE("prune keeps what tagged images and cache entries need, and removes the rest",
          "[layer_cache]") {
  TempStore temp;
  ContentStore& store = temp.store();
  LayerCache cache(store);

  // Tagged: an image, and an image index whose manifest only the index names.
  Layer tagged_layer = temp.PutLayer("tagged layer");
  Descriptor app = temp.PutImage("app", {tagged_layer});
  REQUIRE(store.Tag("app", app).ok());
  Layer indexed_layer = temp.PutLayer("indexed layer");
  Descriptor indexed = temp.PutImage("indexed", {indexed_layer});
  Descriptor index = temp.PutJson(
      {{"schemaVersion", 2}, {"mediaType", kOciIndexMediaType}, {"manifests", {indexed.ToJson()}}},
      kOciIndexMediaType);
  REQUIRE(store.Tag("multi", index).ok());

  // Cached but in no tagged image; cached with its blob gone.
  Layer cached_layer = temp.PutLayer("cached layer");
  Layer lost_layer = temp.PutLayer("lost layer");
  REQUIRE(cache.Record(Key("tagged"), tagged_layer).ok());
  REQUIRE(cache.Record(Key("cached"), cached_layer).ok());
  REQUIRE(cache.Record(Key("lost"), lost_layer).ok());
  fs::remove(store.BlobPath(lost_layer.blob.digest));

  // Needed by nothing: a stray blob and an image that was tagged once.
  Layer stray = temp.PutLayer("stray");
  Layer old_layer = temp.PutLayer("old layer");
  Descriptor old_image = temp.PutImage("old", {old_layer});
  const std::string old_config = temp.ConfigOf(old_image);
  // Not a blob: a write in progress.
  const fs::path in_progress = store.root() / "blobs" / "sha256" / ".abc.tmp-1";
  std::ofstream(in_progress) << "partial";
  temp.AgeBlobs(2);

  auto has = [&](const std::string& digest) { return store.HasBlob(digest); };
  auto tagged_blobs_kept = [&] {
    for (const std::string& digest :
         {app.digest, temp.ConfigOf(app), tagged_layer.blob.digest, index.digest, indexed.digest,
          temp.ConfigOf(indexed), indexed_layer.blob.digest}) {
      CHECK(has(digest));
    }
  };

  SECTION("by default") {
    const std::uintmax_t old_config_size = fs::file_size(store.BlobPath(old_config));
    auto report = CacheInventory(store).Prune(Options(false, false));
    REQUIRE(report.ok());
    CHECK(report->entries_removed == 1);  // "lost"
    CHECK(report->blobs_removed == 4);    // stray, old manifest, its config and layer
    CHECK(report->bytes_freed ==
          stray.blob.size + old_layer.blob.size + old_image.size + old_config_size);
    tagged_blobs_kept();
    CHECK(has(cached_layer.blob.digest));
    CHECK(cache.Lookup(Key("cached")).has_value());
    CHECK(cache.Lookup(Key("tagged")).has_value());
    CHECK_FALSE(fs::exists(temp.EntryPath(Key("lost"))));
    for (const std::string& digest :
         {stray.blob.digest, old_layer.blob.digest, old_image.digest, old_config}) {
      CHECK_FALSE(has(digest));
    }
    CHECK(fs::exists(in_progress));

    // Nothing more to do the second time.
    auto again = CacheInventory(store).Prune(Options(false, false));
    REQUIRE(again.ok());
    CHECK(again->entries_removed == 0);
    CHECK(again->blobs_removed == 0);
  }

  SECTION("--all --keep-tagged keeps the entries of tagged layers") {
    auto report = CacheInventory(store).Prune(Options(true, true));
    REQUIRE(report.ok());
    CHECK(report->entries_removed == 2);  // "cached", "lost"
    CHECK(report->blobs_removed == 5);    // the cached layer too
    tagged_blobs_kept();
    CHECK(cache.Lookup(Key("tagged")).has_value());
    CHECK_FALSE(fs::exists(temp.EntryPath(Key("cached"))));
    CHECK_FALSE(has(cached_layer.blob.digest));
  }

  SECTION("--all removes every entry and keeps only what tagged images need") {
    auto report = CacheInventory(store).Prune(Options(true, false));
    REQUIRE(report.ok());
    CHECK(report->entries_removed == 3);
    CHECK(report->blobs_removed == 5);
    tagged_blobs_kept();
    CHECK_FALSE(has(cached_layer.blob.digest));
    auto listing = CacheInventory(store).List();
    REQUIRE(listing.ok());
    CHECK(listing->entries.empty());
    CHECK(fs::exists(in_progress));
  }
}

TEST_CASE("prune keeps blobs written within the grace period", "[layer_cache]") {
  TempStore temp;
  Layer fresh = temp.PutLayer("a build in progress wrote this");
  PruneOptions options;
  options.grace_seconds = 3600;
  auto report = CacheInventory(temp.store()).Prune(options);
  REQUIRE(report.ok());
  CHECK(report->blobs_removed == 0);
  CHECK(report->blobs_too_new == 1);
  CHECK(temp.store().HasBlob(fresh.blob.digest));

  temp.AgeBlobs(2);
  report = CacheInventory(temp.store()).Prune(options);
  REQUIRE(report.ok());
  CHECK(report->blobs_removed == 1);
  CHECK_FALSE(temp.store().HasBlob(fresh.blob.digest));
}

TEST_CASE("prune removes nothing when a tagged manifest cannot be read", "[layer_cache]") {
  TempStore temp;
  ContentStore& store = temp.store();
  Descriptor app = temp.PutImage("app", {temp.PutLayer("layer")});
  REQUIRE(store.Tag("app", app).ok());
  Layer stray = temp.PutLayer("stray");
  std::ofstream(store.BlobPath(app.digest), std::ios::trunc) << "{ torn";
  temp.AgeBlobs(2);

  auto report = CacheInventory(store).Prune(Options(true, false));
  REQUIRE_FALSE(report.ok());
  CHECK_THAT(report.error().message, Catch::Contains(app.digest));
  CHECK(store.HasBlob(stray.blob.digest));
}

}  // namespace
}  // namespace builder
