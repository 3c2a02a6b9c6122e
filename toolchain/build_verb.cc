#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "builder/content_store.h"
#include "builder/image_builder.h"
#include "core/gantry_home.h"
#include "core/quantity.h"
#include "spec/loader.h"
#include "toolchain/build_progress.h"
#include "toolchain/exit_code.h"
#include "toolchain/reporter.h"
#include "toolchain/verbs.h"

namespace toolchain {
namespace {}  // namespace

void AddBuildVerb(CLI::App& gantry, int* exit_code) {
  auto* verb = gantry.add_subcommand(
      "build", "Build the app's images into an OCI image layout, reproducibly");
  struct Options {
    std::string file;
    std::vector<std::string> images;
    std::string output;
    bool no_cache = false;
    bool quiet = false;
  };
  auto options = std::make_shared<Options>();
  verb->add_option("FILE", options->file, "Spec file (.yaml, .yml or .lua)")->required();
  verb->add_option("--image", options->images, "Build only this image (repeatable)");
  verb->add_option("--output", options->output,
                   "OCI image layout to build into (default: the local store, $GANTRY_HOME/store)");
  verb->add_flag("--no-cache", options->no_cache,
                 "Rebuild every layer instead of reusing cached ones");
  verb->add_flag("-q,--quiet", options->quiet, "Print only the manifest digests");
  verb->callback([options, exit_code] {
    auto app = spec::Load(options->file);
    if (!app) {
      ReportErrors(app.error());
      *exit_code = kExitUserError;
      return;
    }
    for (const std::string& name : options->images) {
      if (app->images.count(name) == 0) {
        ReportErrors({core::Error{
            core::ErrorCode::kNotFound, "no image named " + name + " in " + options->file, {}}});
        *exit_code = kExitUserError;
        return;
      }
    }
    std::filesystem::path output = options->output.empty() ? core::GantryHome() / "store"
                                                           : std::filesystem::path(options->output);
    auto store = builder::ContentStore::Open(output);
    if (!store) {
      ReportErrors({store.error()});
      *exit_code = kExitUserError;
      return;
    }
    builder::BuildOptions build_options;
    build_options.no_cache = options->no_cache;
    build_options.layer.source_date_epoch = builder::SourceDateEpoch();
    auto progress = std::make_shared<BuildProgress>(isatty(STDERR_FILENO) == 1);
    if (!options->quiet)
      build_options.on_step = [progress](const builder::StepReport& report) {
        progress->Report(report);
      };
    builder::ImageBuilder image_builder(*store, build_options);
    *exit_code = kExitOk;
    for (const auto& [name, image] : app->images) {
      if (!options->images.empty() && std::find(options->images.begin(), options->images.end(),
                                                name) == options->images.end()) {
        continue;
      }
      auto built = image_builder.Build(*app, image);
      if (!built) {
        ReportErrors({built.error()});
        *exit_code = kExitUserError;
        return;
      }
      std::printf("%s %s\n", name.c_str(), built->manifest.digest.c_str());
    }
  });
}

}  // namespace toolchain
