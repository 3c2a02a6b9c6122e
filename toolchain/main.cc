// The `gantry` command: parses the command line and hands over to one verb.

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "toolchain/exit_code.h"
#include "toolchain/reporter.h"
#include "toolchain/verbs.h"

#ifndef GANTRY_VERSION
#define GANTRY_VERSION "unknown"
#endif

int main(int argc, char** argv) {
  CLI::App gantry("gantry: build, plan and run GPU apps declared in YAML or Lua specs", "gantry");
  gantry.set_version_flag("--version", "gantry " GANTRY_VERSION);
  gantry.require_subcommand(1);
  bool verbose = false;
  std::string log_format = "text";
  gantry.add_flag("-v,--verbose", verbose, "Log debug detail to stderr");
  gantry.add_option("--log-format", log_format, "Log and error format on stderr")
      ->check(CLI::IsMember({"text", "json"}));
  gantry.footer(
      "Exit codes: 0 ok, 1 user error (bad spec, missing file), 2 usage error, 3 internal error.\n"
      "Run 'gantry VERB --help' for a verb's options.");

  int exit_code = toolchain::kExitInternal;
  toolchain::AddValidateVerb(gantry, &exit_code);
  toolchain::AddShowVerb(gantry, &exit_code);
  toolchain::AddBuildVerb(gantry, &exit_code);
  toolchain::AddCacheVerb(gantry, &exit_code);
  toolchain::AddPushVerb(gantry, &exit_code);
  toolchain::AddPullVerb(gantry, &exit_code);
  toolchain::AddImageVerb(gantry, &exit_code);
  toolchain::AddAgentVerb(gantry, &exit_code);
  toolchain::AddScheduleVerb(gantry, &exit_code);
  toolchain::AddPlanVerb(gantry, &exit_code);
  toolchain::AddApplyVerb(gantry, &exit_code);
  toolchain::AddDestroyVerb(gantry, &exit_code);
  toolchain::AddStatusVerb(gantry, &exit_code);
  toolchain::AddAgentsVerb(gantry, &exit_code);
  toolchain::AddExportVerb(gantry, &exit_code);
  toolchain::AddUpVerb(gantry, &exit_code);
  toolchain::AddRunVerb(gantry, &exit_code);
  toolchain::AddMapVerb(gantry, &exit_code);
  toolchain::AddDeployVerb(gantry, &exit_code);
  toolchain::AddUsageVerb(gantry, &exit_code);
  toolchain::AddPsVerb(gantry, &exit_code);
  toolchain::AddLogsVerb(gantry, &exit_code);

  // Logging must be set before any verb runs: parse_complete_callback runs
  // after the whole command line is parsed and before the subcommand callbacks.
  gantry.parse_complete_callback([&] {
    toolchain::ConfigureLogging(
        verbose, log_format == "json" ? toolchain::LogFormat::kJson : toolchain::LogFormat::kText);
  });
  try {
    gantry.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    int code = gantry.exit(error);
    return code == 0 ? toolchain::kExitOk : toolchain::kExitUsage;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "gantry: internal error: %s\n", error.what());
    return toolchain::kExitInternal;
  }
  return exit_code;
}
