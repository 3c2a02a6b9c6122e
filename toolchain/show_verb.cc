#include <cstdio>

#include "core/canonical_json.h"
#include "core/quantity.h"
#include "spec/canonical.h"
#include "spec/loader.h"
#include "toolchain/exit_code.h"
#include "toolchain/reporter.h"
#include "toolchain/verbs.h"

namespace toolchain {
namespace {

// sha256:0123456789ab: enough of a digest to tell resources apart on screen.
std::string Short(const std::string& digest) {
  return digest.substr(0, 19);
}

std::string Describe(const spec::Function& function) {
  std::string text = function.web ? "web" : function.schedule ? "scheduled job" : "job";
  if (function.schedule) {
    text += function.schedule->every
                ? ", every " + core::FormatDuration(*function.schedule->every)
                : ", cron \"" + function.schedule->cron + "\" " + function.schedule->timezone;
  }
  if (!function.gpu.empty()) {
    text += ", gpu ";
    for (std::size_t i = 0; i < function.gpu.size(); ++i) {
      text += (i ? " or " : "") + function.gpu[i].type +
              (function.gpu[i].count > 1 ? ":" + std::to_string(function.gpu[i].count) : "");
    }
  }
  char cpu[32];
  std::snprintf(cpu, sizeof cpu, "%g", function.cpu);
  text += ", cpu " + std::string(cpu) + ", memory " + core::FormatSize(function.memory);
  text += ", containers " + std::to_string(function.min_containers) + ".." +
          std::to_string(function.max_containers);
  return text;
}

void PrintSummary(const spec::App& app, const spec::Digests& digests) {
  std::printf("app %s  %s\n", app.name.c_str(), digests.app.c_str());
  auto row = [](const char* kind, const std::string& name, const std::string& digest,
                const std::string& detail) {
    std::printf("  %-9s %-24s %s  %s\n", kind, name.c_str(), Short(digest).c_str(), detail.c_str());
  };
  for (const auto& [name, image] : app.images) {
    row("image", name, digests.images.at(name),
        spec::ToCanonicalJson(app)["images"][name]["from"].dump() + ", " +
            std::to_string(image.steps.size()) + " steps");
  }
  for (const auto& [name, function] : app.functions) {
    row("function", name, digests.functions.at(name),
        "image " + function.image + ", " + Describe(function));
  }
  for (const auto& [name, secret] : app.secrets) {
    std::string source =
        secret.from_env.empty() ? "" : std::to_string(secret.from_env.size()) + " from env";
    if (!secret.from_file.empty())
      source += (source.empty() ? "" : ", ") + std::string("from ") + secret.from_file;
    row("secret", name, digests.secrets.at(name), source);
  }
  for (const auto& [name, volume] : app.volumes) row("volume", name, digests.volumes.at(name), "");
  if (app.budget) {
    std::string limits;
    char amount[64];
    if (app.budget->daily_usd) {
      std::snprintf(amount, sizeof amount, "$%.2f/day", *app.budget->daily_usd);
      limits += amount;
    }
    if (app.budget->monthly_usd) {
      std::snprintf(amount, sizeof amount, "$%.2f/month", *app.budget->monthly_usd);
      limits += (limits.empty() ? "" : ", ") + std::string(amount);
    }
    limits += app.budget->on_exceed == spec::OnExceed::kStop ? ", stop when exceeded"
                                                             : ", alert when exceeded";
    row("budget", "", digests.budget, limits);
  }
}

}  // namespace

void AddShowVerb(CLI::App& gantry, int* exit_code) {
  auto* verb = gantry.add_subcommand("show", "Print the resolved app with a digest per resource");
  auto file = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  verb->add_option("FILE", *file, "Spec file (.yaml, .yml or .lua)")->required();
  verb->add_flag("--json", *json,
                 "Print canonical JSON: {\"app\": resolved spec, \"digests\": per resource}");
  verb->callback([file, json, exit_code] {
    auto app = spec::Load(*file);
    if (!app) {
      ReportErrors(app.error());
      *exit_code = kExitUserError;
      return;
    }
    spec::Digests digests = spec::ComputeDigests(*app);
    if (*json) {
      nlohmann::json document = {{"app", spec::ToCanonicalJson(*app)},
                                 {"digests", digests.ToJson()}};
      std::printf("%s\n", core::CanonicalJson(document).c_str());
    } else {
      PrintSummary(*app, digests);
    }
    *exit_code = kExitOk;
  });
}

}  // namespace toolchain
