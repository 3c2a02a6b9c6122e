#include "toolchain/app_images.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>

#include "builder/content_store.h"
#include "builder/image_builder.h"
#include "builder/registry_client.h"
#include "core/image_reference.h"
#include "core/quantity.h"
#include "toolchain/build_progress.h"
#include "toolchain/transfer_progress.h"

namespace toolchain {

core::Result<std::map<std::string, std::string>> BuildAppImages(const spec::App& app,
                                                                const ImageBuildOptions& options) {
  for (const std::string& name : options.images) {
    if (app.images.count(name) == 0) {
      return core::Error{
          core::ErrorCode::kNotFound, "no image named " + name + " in " + app.source.string(), {}};
    }
  }
  auto store = builder::ContentStore::Open(options.store);
  if (!store) return store.error();
  builder::BuildOptions build_options;
  build_options.no_cache = options.no_cache;
  build_options.layer.source_date_epoch = builder::SourceDateEpoch();
  auto progress = std::make_shared<BuildProgress>(isatty(STDERR_FILENO) == 1);
  if (!options.quiet)
    build_options.on_step = [progress](const builder::StepReport& report) {
      progress->Report(report);
    };
  builder::ImageBuilder image_builder(*store, build_options);
  std::map<std::string, std::string> digests;
  for (const auto& [name, image] : app.images) {
    if (!options.images.empty() &&
        std::find(options.images.begin(), options.images.end(), name) == options.images.end()) {
      continue;
    }
    auto built = image_builder.Build(app, image);
    if (!built) return built.error();
    digests[name] = built->manifest.digest;
  }
  return digests;
}

core::Result<std::map<std::string, std::string>> PushAppImages(
    const std::map<std::string, std::string>& digests, const ImagePushOptions& options) {
  std::string to = options.to;
  while (!to.empty() && to.back() == '/') to.pop_back();
  // Where the first image goes tells the registry; every image goes to the same one.
  std::string first = digests.empty() ? "image" : digests.begin()->first;
  auto target = core::ParseImageReference(to + "/" + first + ":" + options.tag);
  if (!target) {
    return core::Error{
        core::ErrorCode::kInvalidArgument, options.to + ": " + target.error().message, {}};
  }
  auto store = builder::ContentStore::Open(options.store);
  if (!store) return store.error();
  builder::RegistryOptions registry_options;
  registry_options.insecure = options.insecure || builder::IsInsecureRegistry(target->domain);
  bool terminal = isatty(STDERR_FILENO) == 1 && !options.quiet;
  builder::RegistryClient client(target->domain, registry_options);
  std::map<std::string, std::string> references;
  for (const auto& [name, digest] : digests) {
    auto reference = core::ParseImageReference(to + "/" + name + ":" + options.tag);
    if (!reference) return reference.error();
    if (reference->domain != target->domain) {
      return core::Error{core::ErrorCode::kInvalidArgument,
                         options.to + " names no registry for image " + name,
                         {}};
    }
    auto progress = std::make_shared<TransferProgress>(terminal, name);
    builder::RegistryClient::ProgressCallback report =
        [progress](const builder::TransferProgress& done) { progress->Report(done); };
    auto pushed = client.Push(*store, digest, reference->repository, options.tag, report);
    progress.reset();
    if (!pushed) return pushed.error();
    if (!options.quiet) {
      std::fprintf(stderr, "%s: pushed %s: %zu %s uploaded (%s), %zu mounted, %zu already there\n",
                   name.c_str(), reference->ToString().c_str(), pushed->blobs_uploaded,
                   pushed->blobs_uploaded == 1 ? "blob" : "blobs",
                   core::FormatSizeForPeople(pushed->bytes_uploaded).c_str(), pushed->blobs_mounted,
                   pushed->blobs_present);
    }
    references[name] = pushed->reference;
  }
  return references;
}

}  // namespace toolchain
