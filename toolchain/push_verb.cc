#include <algorithm>
#include <cstdio>

#include "builder/content_store.h"
#include "core/gantry_home.h"
#include "spec/loader.h"
#include "toolchain/app_images.h"
#include "toolchain/exit_code.h"
#include "toolchain/reporter.h"
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

// The images to push (image name -> manifest digest): built now (cache
// hits when nothing changed) or, with --no-build, as the store has them tagged.
core::Result<std::map<std::string, std::string>> ImagesToPush(const spec::App& app,
                                                              const PushOptions& options) {
  ImageBuildOptions build;
  build.store = core::StoreOrDefault(options.store);
  build.images = options.images;
  build.quiet = options.quiet;
  if (!options.no_build) return BuildAppImages(app, build);
  auto store = builder::ContentStore::Open(build.store);
  if (!store) return store.error();
  std::map<std::string, std::string> digests;
  for (const auto& [name, image] : app.images) {
    if (!options.images.empty() &&
        std::find(options.images.begin(), options.images.end(), name) == options.images.end()) {
      continue;
    }
    auto found = store->Find(name);
    if (!found) return found.error();
    if (!*found) {
      return core::Error{core::ErrorCode::kNotFound,
                         "image " + name + " is not in " + store->root().string() +
                             ": run gantry build first, or push without --no-build",
                         {}};
    }
    digests[name] = (*found)->digest;
  }
  return digests;
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
  auto digests = ImagesToPush(*app, options);
  if (!digests) {
    ReportErrors({digests.error()});
    return;
  }
  ImagePushOptions push;
  push.store = core::StoreOrDefault(options.store);
  push.to = options.to;
  push.tag = options.tag;
  push.insecure = options.insecure;
  push.quiet = options.quiet;
  auto pushed = PushAppImages(*digests, push);
  if (!pushed) {
    ReportErrors({pushed.error()});
    return;
  }
  for (const auto& [name, reference] : *pushed) std::printf("%s\n", reference.c_str());
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
