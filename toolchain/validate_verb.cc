#include <spdlog/spdlog.h>

#include <cstdio>

#include "spec/loader.h"
#include "toolchain/exit_code.h"
#include "toolchain/reporter.h"
#include "toolchain/verbs.h"

namespace toolchain {
namespace {

std::string Count(std::size_t count, const std::string& noun) {
  return std::to_string(count) + " " + noun + (count == 1 ? "" : "s");
}

}  // namespace

void AddValidateVerb(CLI::App& gantry, int* exit_code) {
  auto* verb = gantry.add_subcommand(
      "validate", "Check app specs (YAML or Lua) and report every error with its location");
  auto files = std::make_shared<std::vector<std::string>>();
  verb->add_option("FILE", *files, "Spec files (.yaml, .yml or .lua)")->required();
  verb->callback([files, exit_code] {
    *exit_code = kExitOk;
    for (const std::string& file : *files) {
      auto app = spec::Load(file);
      if (!app) {
        ReportErrors(app.error());
        spdlog::error("{}: {} found", file, Count(app.error().size(), "error"));
        *exit_code = kExitUserError;
        continue;
      }
      std::printf("%s: ok (app %s: %s, %s, %s, %s)\n", file.c_str(), app->name.c_str(),
                  Count(app->images.size(), "image").c_str(),
                  Count(app->functions.size(), "function").c_str(),
                  Count(app->secrets.size(), "secret").c_str(),
                  Count(app->volumes.size(), "volume").c_str());
    }
  });
}

}  // namespace toolchain
