#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "builder/content_store.h"
#include "builder/image_manifest.h"
#include "core/gantry_home.h"
#include "core/quantity.h"
#include "toolchain/exit_code.h"
#include "toolchain/reporter.h"
#include "toolchain/verbs.h"

namespace toolchain {
namespace {

void List(const std::string& store_option, int* exit_code) {
  std::filesystem::path path = core::StoreOrDefault(store_option);
  std::error_code error;
  if (!std::filesystem::exists(path, error)) {
    std::printf("no store at %s: no images\n", path.c_str());
    *exit_code = kExitOk;
    return;
  }
  auto store = builder::ContentStore::OpenExisting(path);
  if (!store) {
    ReportErrors({store.error()});
    *exit_code = kExitUserError;
    return;
  }
  auto manifests = store->List();
  if (!manifests) {
    ReportErrors({manifests.error()});
    *exit_code = kExitUserError;
    return;
  }
  if (!manifests->empty()) std::printf("%-40s  %-71s  %10s\n", "NAME", "DIGEST", "SIZE");
  for (const builder::Descriptor& manifest : *manifests) {
    auto name = manifest.annotations.find(builder::kRefNameAnnotation);
    // The size an image takes: its manifest, config and layers.
    std::string size = "(incomplete)";
    auto image = builder::ReadStoredImage(*store, manifest.digest);
    if (image) {
      std::uint64_t bytes = manifest.size + image->config.size;
      bool complete = true;
      for (const builder::Descriptor& layer : image->layers) {
        bytes += layer.size;
        complete = complete && store->HasBlob(layer.digest);
      }
      if (complete) size = core::FormatSizeForPeople(bytes);
    }
    std::printf("%-40s  %-71s  %10s\n",
                name == manifest.annotations.end() ? "(no name)" : name->second.c_str(),
                manifest.digest.c_str(), size.c_str());
  }
  *exit_code = kExitOk;
}

}  // namespace

void AddImageVerb(CLI::App& gantry, int* exit_code) {
  auto* verb = gantry.add_subcommand("image", "List the images of a store");
  verb->require_subcommand(1);
  auto store = std::make_shared<std::string>();
  auto* ls = verb->add_subcommand("ls", "List the store's images: name, manifest digest, size");
  ls->add_option("--store", *store, "The store (default: the local store, $GANTRY_HOME/store)");
  ls->callback([store, exit_code] { List(*store, exit_code); });
}

}  // namespace toolchain
