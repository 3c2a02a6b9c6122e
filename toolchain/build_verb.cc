#include <cstdio>

#include "core/gantry_home.h"
#include "spec/loader.h"
#include "toolchain/app_images.h"
#include "toolchain/exit_code.h"
#include "toolchain/reporter.h"
#include "toolchain/verbs.h"

namespace toolchain {

void AddBuildVerb(CLI::App& gantry, int* exit_code) {
  auto* verb = gantry.add_subcommand(
      "build", "Build the app's images into an OCI image layout, reproducibly");
  struct Options {
    std::string file;
    std::vector<std::string> images;
    std::string output;
    bool no_cache = false;
    bool quiet = false;
    std::string push;  // REGISTRY/NAMESPACE; empty: no push
    std::string tag = "latest";
    bool insecure = false;
  };
  auto options = std::make_shared<Options>();
  verb->add_option("FILE", options->file, "Spec file (.yaml, .yml or .lua)")->required();
  verb->add_option("--image", options->images, "Build only this image (repeatable)");
  verb->add_option("--output", options->output,
                   "OCI image layout to build into (default: the local store, $GANTRY_HOME/store)");
  verb->add_flag("--no-cache", options->no_cache,
                 "Rebuild every layer instead of reusing cached ones");
  verb->add_flag("-q,--quiet", options->quiet, "Print only the manifest digests");
  auto* push_option = verb->add_option(
      "--push", options->push,
      "Then push every built image as REGISTRY/NAMESPACE/IMAGE:TAG, as gantry push "
      "does, and print the pushed references");
  verb->add_option("--tag", options->tag, "The tag of every pushed image (with --push)")
      ->capture_default_str()
      ->needs(push_option);
  verb->add_flag("--insecure", options->insecure,
                 "With --push: allow plain HTTP to the registry (always so for loopback "
                 "registries and those in GANTRY_INSECURE_REGISTRIES)")
      ->needs(push_option);
  verb->callback([options, exit_code] {
    auto app = spec::Load(options->file);
    if (!app) {
      ReportErrors(app.error());
      *exit_code = kExitUserError;
      return;
    }
    ImageBuildOptions build_options;
    build_options.store =
        options->output.empty() ? core::StoreOrDefault("") : std::filesystem::path(options->output);
    build_options.images = options->images;
    build_options.no_cache = options->no_cache;
    build_options.quiet = options->quiet;
    auto digests = BuildAppImages(*app, build_options);
    if (!digests) {
      ReportErrors({digests.error()});
      *exit_code = kExitUserError;
      return;
    }
    if (options->push.empty()) {
      for (const auto& [name, digest] : *digests)
        std::printf("%s %s\n", name.c_str(), digest.c_str());
      *exit_code = kExitOk;
      return;
    }
    ImagePushOptions push;
    push.store = build_options.store;
    push.to = options->push;
    push.tag = options->tag;
    push.insecure = options->insecure;
    push.quiet = options->quiet;
    auto pushed = PushAppImages(*digests, push);
    if (!pushed) {
      ReportErrors({pushed.error()});
      *exit_code = kExitUserError;
      return;
    }
    for (const auto& [name, reference] : *pushed) std::printf("%s\n", reference.c_str());
    *exit_code = kExitOk;
  });
}

}  // namespace toolchain
