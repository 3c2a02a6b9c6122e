#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>

#include "builder/content_store.h"
#include "builder/image_builder.h"
#include "builder/registry_client.h"
#include "core/gantry_home.h"
#include "core/image_reference.h"
#include "core/quantity.h"
#include "spec/loader.h"
#include "toolchain/build_progress.h"
#include "toolchain/exit_code.h"
#include "toolchain/reporter.h"
#include "toolchain/transfer_progress.h"
#include "toolchain/verbs.h"

namespace toolchain {
namespace {

struct PushOptions {
  std::string file;
  std::string to;
  std::string tag = "latest";
  std::vector<std::string> images;
  std::string store;
  bool insecure = false;
  bool no_build = false;
  bool quiet = false;
};

// The image `name` in the store: built now (a cache hit when nothing
// changed) or, with --no-build, as the store has it tagged.
core::Result<std::string> ManifestOf(const spec::App& app, const spec::Image& image,
                                     builder::ContentStore& store, const PushOptions& options) {
  if (options.no_build) {
    auto found = store.Find(image.name);
    if (!found) return found.error();
    if (!*found) {
      return core::Error{core::ErrorCode::kNotFound,
                         "image " + image.name + " is not in " + store.root().string() +
                             ": run gantry build first, or push without --no-build",
                         {}};
    }
    return (*found)->digest;
  }
  builder::BuildOptions build_options;
  build_options.layer.source_date_epoch = builder::SourceDateEpoch();
  auto progress = std::make_shared<BuildProgress>(isatty(STDERR_FILENO) == 1);
  if (!options.quiet)
    build_options.on_step = [progress](const builder::StepReport& report) {
      progress->Report(report);
    };
  builder::ImageBuilder image_builder(store, build_options);
  auto built = image_builder.Build(app, image);
  if (!built) return built.error();
  return built->manifest.digest;
}

void Push(const PushOptions& options, int* exit_code) {
  *exit_code = kExitUserError;
  auto app = spec::Load(options.file);
  if (!app) {
    ReportErrors(app.error());
    return;
  }
  for (const std::string& name : options.images) {
    if (app->images.count(name) == 0) {
      ReportErrors({core::Error{
          core::ErrorCode::kNotFound, "no image named " + name + " in " + options.file, {}}});
      return;
    }
  }
  std::string to = options.to;
  while (!to.empty() && to.back() == '/') to.pop_back();
  // Where the first image goes tells the registry; every image goes to the same one.
  std::string first = app->images.empty() ? "image" : app->images.begin()->first;
  auto target = core::ParseImageReference(to + "/" + first + ":" + options.tag);
  if (!target) {
    ReportErrors({core::Error{core::ErrorCode::kInvalidArgument,
                              "--to " + options.to + ": " + target.error().message,
                              {}}});
    return;
  }
  std::filesystem::path store_path = core::StoreOrDefault(options.store);
  auto store = builder::ContentStore::Open(store_path);
  if (!store) {
    ReportErrors({store.error()});
    return;
  }
  builder::RegistryOptions registry_options;
  registry_options.insecure = options.insecure || builder::IsInsecureRegistry(target->domain);
  bool terminal = isatty(STDERR_FILENO) == 1 && !options.quiet;
  builder::RegistryClient client(target->domain, registry_options);
  for (const auto& [name, image] : app->images) {
    if (!options.images.empty() &&
        std::find(options.images.begin(), options.images.end(), name) == options.images.end()) {
      continue;
    }
    auto manifest = ManifestOf(*app, image, *store, options);
    if (!manifest) {
      ReportErrors({manifest.error()});
      return;
    }
    auto reference = core::ParseImageReference(to + "/" + name + ":" + options.tag);
    if (!reference) {
      ReportErrors({reference.error()});
      return;
    }
    if (reference->domain != target->domain) {
      ReportErrors({core::Error{core::ErrorCode::kInvalidArgument,
                                "--to " + options.to + " names no registry for image " + name,
                                {}}});
      return;
    }
    auto progress = std::make_shared<TransferProgress>(terminal, name);
    builder::RegistryClient::ProgressCallback report =
        [progress](const builder::TransferProgress& done) { progress->Report(done); };
    auto pushed = client.Push(*store, *manifest, reference->repository, options.tag, report);
    progress.reset();
    if (!pushed) {
      ReportErrors({pushed.error()});
      return;
    }
    if (!options.quiet) {
      std::fprintf(stderr, "%s: pushed %s: %zu %s uploaded (%s), %zu mounted, %zu already there\n",
                   name.c_str(), reference->ToString().c_str(), pushed->blobs_uploaded,
                   pushed->blobs_uploaded == 1 ? "blob" : "blobs",
                   core::FormatSizeForPeople(pushed->bytes_uploaded).c_str(), pushed->blobs_mounted,
                   pushed->blobs_present);
    }
    std::printf("%s\n", pushed->reference.c_str());
    std::fflush(stdout);
  }
  *exit_code = kExitOk;
}

}  // namespace

void AddPushVerb(CLI::App& gantry, int* exit_code) {
  auto* verb = gantry.add_subcommand(
      "push", "Build the app's images and push them to a registry as REGISTRY/NAMESPACE/IMAGE:TAG");
  auto options = std::make_shared<PushOptions>();
  verb->add_option("FILE", options->file, "Spec file (.yaml, .yml or .lua)")->required();
  verb->add_option("--to", options->to, "REGISTRY/NAMESPACE, such as ghcr.io/team")->required();
  verb->add_option("--tag", options->tag, "The tag of every pushed image")->capture_default_str();
  verb->add_option("--image", options->images, "Push only this image (repeatable)");
  verb->add_option("--store", options->store,
                   "The store to build in and push from (default: $GANTRY_HOME/store)");
  verb->add_flag("--insecure", options->insecure,
                 "Speak plain HTTP to the registry (always so for loopback registries and those "
                 "in GANTRY_INSECURE_REGISTRIES)");
  verb->add_flag("--no-build", options->no_build,
                 "Push the images as the store has them tagged, without building");
  verb->add_flag("-q,--quiet", options->quiet, "Print only the pushed references");
  verb->callback([options, exit_code] { Push(*options, exit_code); });
}

}  // namespace toolchain
