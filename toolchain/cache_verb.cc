#include <time.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "builder/cache_inventory.h"
#include "builder/content_store.h"
#include "core/gantry_home.h"
#include "core/quantity.h"
#include "toolchain/exit_code.h"
#include "toolchain/reporter.h"
#include "toolchain/verbs.h"

namespace toolchain {
namespace {

// "3f2a9c0e1b2d": enough of a digest to tell entries apart on screen.
std::string ShortDigest(const std::string& digest) {
  return digest.substr(digest.find(':') + 1, 12);
}

// "2025-05-20 14:03" in local time.
std::string LocalTime(std::int64_t seconds) {
  time_t time = static_cast<time_t>(seconds);
  struct tm local {};
  char text[32] = "?";
  if (localtime_r(&time, &local) != nullptr)
    std::strftime(text, sizeof text, "%Y-%m-%d %H:%M", &local);
  return text;
}

// "1 entry", "2 entries".
std::string Count(std::size_t count, const std::string& one, const std::string& many) {
  return std::to_string(count) + " " + (count == 1 ? one : many);
}

// The store named by --store (default: the local one), opened as it is:
// listing or pruning creates no store. nullopt (and a message) when absent.
std::optional<builder::ContentStore> OpenStore(const std::string& option, int* exit_code) {
  std::filesystem::path path = core::StoreOrDefault(option);
  std::error_code error;
  if (!std::filesystem::exists(path, error)) {
    std::printf("no store at %s: nothing cached\n", path.c_str());
    *exit_code = kExitOk;
    return std::nullopt;
  }
  auto store = builder::ContentStore::OpenExisting(path);
  if (!store) {
    ReportErrors({store.error()});
    *exit_code = kExitUserError;
    return std::nullopt;
  }
  return std::move(store).value();
}

void List(const std::string& store_option, int* exit_code) {
  auto store = OpenStore(store_option, exit_code);
  if (!store) return;
  auto listing = builder::CacheInventory(*store).List();
  if (!listing) {
    ReportErrors({listing.error()});
    *exit_code = kExitUserError;
    return;
  }
  if (!listing->entries.empty())
    std::printf("%-12s  %-12s  %10s  %s\n", "KEY", "BLOB", "SIZE", "RECORDED");
  for (const builder::CacheEntry& entry : listing->entries) {
    std::string blob = "(not an entry)";
    std::string size;
    if (entry.layer) {
      blob = entry.blob_present ? ShortDigest(entry.layer->blob.digest) : "(blob gone)";
      size = entry.blob_present ? core::FormatSizeForPeople(entry.layer->blob.size) : "";
    }
    std::printf("%-12s  %-12s  %10s  %s\n", ShortDigest(entry.key).c_str(), blob.c_str(),
                size.c_str(), LocalTime(entry.recorded).c_str());
  }
  std::string missing = listing->missing == 0 ? ""
                                              : " (" + std::to_string(listing->missing) +
                                                    " missing: gantry cache prune removes them)";
  std::printf("total: %s%s, %s, %s\n", Count(listing->entries.size(), "entry", "entries").c_str(),
              missing.c_str(), Count(listing->blob_count, "layer blob", "layer blobs").c_str(),
              core::FormatSizeForPeople(listing->blob_bytes).c_str());
  *exit_code = kExitOk;
}

void Prune(const std::string& store_option, const builder::PruneOptions& options, int* exit_code) {
  auto store = OpenStore(store_option, exit_code);
  if (!store) return;
  auto report = builder::CacheInventory(*store).Prune(options);
  if (!report) {
    ReportErrors({report.error()});
    *exit_code = kExitUserError;
    return;
  }
  std::printf("removed %s and %s, %s freed\n",
              Count(report->entries_removed, "cache entry", "cache entries").c_str(),
              Count(report->blobs_removed, "blob", "blobs").c_str(),
              core::FormatSizeForPeople(report->bytes_freed).c_str());
  if (report->scratch_removed > 0) {
    std::printf("removed %s that interrupted builds left\n",
                Count(report->scratch_removed, "scratch folder", "scratch folders").c_str());
  }
  if (report->blobs_too_new > 0) {
    std::printf("kept %s written in the last %lld minutes (a build may be about to use them)\n",
                Count(report->blobs_too_new, "unreferenced blob", "unreferenced blobs").c_str(),
                static_cast<long long>(options.grace_seconds / 60));
  }
  *exit_code = kExitOk;
}

}  // namespace

void AddCacheVerb(CLI::App& gantry, int* exit_code) {
  auto* verb = gantry.add_subcommand("cache", "List or prune the layer cache of a store");
  verb->require_subcommand(1);
  auto store = std::make_shared<std::string>();
  const std::string store_help = "The store (default: the local store, $GANTRY_HOME/store)";

  auto* ls = verb->add_subcommand("ls", "List the cached layers: key, blob, size, when recorded");
  ls->add_option("--store", *store, store_help);
  ls->callback([store, exit_code] { List(*store, exit_code); });

  auto options = std::make_shared<builder::PruneOptions>();
  auto* prune = verb->add_subcommand(
      "prune",
      "Remove cache entries whose layer is gone and blobs that no tagged image or cache entry "
      "needs");
  prune->add_option("--store", *store, store_help);
  prune->add_flag("--all", options->all,
                  "Remove every cache entry too, and every blob no tagged image needs");
  prune->add_flag("--keep-tagged", options->keep_tagged,
                  "With --all: keep the cache entries of layers in tagged images");
  auto lock_timeout = std::make_shared<double>(-1);
  prune->add_option("--lock-timeout", *lock_timeout,
                    "Seconds to wait for running builds to end (default: as long as they take)");
  prune->callback([store, options, lock_timeout, exit_code] {
    if (*lock_timeout >= 0) {
      options->lock_timeout =
          std::chrono::milliseconds(static_cast<long long>(*lock_timeout * 1000));
    }
    Prune(*store, *options, exit_code);
  });
}

}  // namespace toolchain
