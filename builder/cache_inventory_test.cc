#include "builder/cache_inventory.h"

#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <thread>

#include "builder/content_store.h"
#include "builder/layer_cache.h"
#include "builder/store_lock.h"
#include "tests/temp_dir.h"

namespace builder {
namespace {

namespace fs = std::filesystem;

using tests::TempDir;

// A store with one cache entry whose blob is gone: what a plain prune removes.
ContentStore StoreWithMissingEntry(const TempDir& dir) {
  auto store = ContentStore::Open(dir.path() / "store");
  REQUIRE(store);
  Layer layer{"sha256:" + std::string(64, 'a'),
              Descriptor{kOciLayerGzipMediaType, "sha256:" + std::string(64, 'b'), 10, {}}};
  REQUIRE(LayerCache(*store).Record("sha256:" + std::string(64, 'c'), layer));
  return std::move(store).value();
}

std::size_t CacheEntries(ContentStore& store) {
  auto listing = CacheInventory(store).List();
  REQUIRE(listing);
  return listing->entries.size();
}

TEST_CASE("a prune waits for a running build, and after its lock timeout names it", "[prune]") {
  TempDir dir;
  ContentStore store = StoreWithMissingEntry(dir);
  auto build = StoreLock::ForBuild(store);
  REQUIRE(build);
  PruneOptions options;
  options.lock_timeout = std::chrono::milliseconds(100);
  auto pruned = CacheInventory(store).Prune(options);
  REQUIRE_FALSE(pruned);
  CHECK(pruned.error().code == core::ErrorCode::kConflict);
  INFO(pruned.error().message);
  CHECK(pruned.error().message.find("the store " + store.root().string() +
                                    " is in use by build (pid " + std::to_string(getpid()) +
                                    " on host ") != std::string::npos);
  CHECK(pruned.error().message.find("--lock-timeout") != std::string::npos);
  CHECK(CacheEntries(store) == 1);  // nothing removed
}

TEST_CASE("a prune started during a build runs once the build ends", "[prune]") {
  TempDir dir;
  ContentStore store = StoreWithMissingEntry(dir);
  std::optional<StoreLock> build;
  {
    auto lock = StoreLock::ForBuild(store);
    REQUIRE(lock);
    build.emplace(std::move(lock).value());
  }
  // A second build shares the lock with the first.
  REQUIRE(StoreLock::ForBuild(store));
  std::atomic<bool> done = false;
  core::Result<PruneReport> pruned = core::Error{};
  std::thread prune([&] {
    pruned = CacheInventory(store).Prune(PruneOptions{});
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK_FALSE(done);  // still waiting: the build holds the store
  CHECK(CacheEntries(store) == 1);
  build.reset();
  prune.join();
  REQUIRE(pruned);
  CHECK(pruned->entries_removed == 1);
  CHECK(CacheEntries(store) == 0);
  CHECK(fs::is_empty(store.PrivateDir() / "builds"));  // the builds' records went with them
}

TEST_CASE("a prune removes what interrupted builds left in the temporary folder", "[prune]") {
  TempDir dir;
  ContentStore store = StoreWithMissingEntry(dir);
  const fs::path temp = store.PrivateDir() / "tmp";
  fs::create_directories(temp / "root-123" / "usr" / "bin");
  std::ofstream(temp / "root-123" / "usr" / "bin" / "tool") << "tool";
  fs::create_directories(temp / "debootstrap-9" / "etc");
  std::ofstream(temp / "layer-77") << "half a layer";
  std::ofstream(temp / "pull-5") << "a download";  // not a build's: kept
  // The record of a build that died: its flock went with it.
  fs::create_directories(store.PrivateDir() / "builds");
  std::ofstream(store.PrivateDir() / "builds" / "999999-dead") << "{}";

  SECTION("not while a build runs") {
    auto build = StoreLock::ForBuild(store);
    REQUIRE(build);
    PruneOptions options;
    options.lock_timeout = std::chrono::milliseconds(0);
    CHECK_FALSE(CacheInventory(store).Prune(options));
    CHECK(fs::exists(temp / "root-123" / "usr" / "bin" / "tool"));
    CHECK(fs::exists(temp / "layer-77"));
  }
  SECTION("once none does") {
    auto pruned = CacheInventory(store).Prune(PruneOptions{});
    REQUIRE(pruned);
    CHECK(pruned->scratch_removed == 3);
    CHECK_FALSE(fs::exists(temp / "root-123"));
    CHECK_FALSE(fs::exists(temp / "debootstrap-9"));
    CHECK_FALSE(fs::exists(temp / "layer-77"));
    CHECK(fs::exists(temp / "pull-5"));
    CHECK(fs::is_empty(store.PrivateDir() / "builds"));
  }
}

}  // namespace
}  // namespace builder
