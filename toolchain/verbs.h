#pragma once

#include <CLI/CLI.hpp>

namespace toolchain {

/// Each user verb of the `gantry` command registers its subcommand here; its
/// callback runs the verb and stores the process's exit code in *exit_code.
void AddValidateVerb(CLI::App& gantry, int* exit_code);
void AddShowVerb(CLI::App& gantry, int* exit_code);
void AddBuildVerb(CLI::App& gantry, int* exit_code);
void AddCacheVerb(CLI::App& gantry, int* exit_code);
void AddAgentVerb(CLI::App& gantry, int* exit_code);
void AddPushVerb(CLI::App& gantry, int* exit_code);
void AddPullVerb(CLI::App& gantry, int* exit_code);
void AddImageVerb(CLI::App& gantry, int* exit_code);
void AddScheduleVerb(CLI::App& gantry, int* exit_code);
void AddPlanVerb(CLI::App& gantry, int* exit_code);
void AddApplyVerb(CLI::App& gantry, int* exit_code);
void AddDestroyVerb(CLI::App& gantry, int* exit_code);
void AddStatusVerb(CLI::App& gantry, int* exit_code);
void AddAgentsVerb(CLI::App& gantry, int* exit_code);
void AddExportVerb(CLI::App& gantry, int* exit_code);
void AddDeployVerb(CLI::App& gantry, int* exit_code);
void AddUpVerb(CLI::App& gantry, int* exit_code);
void AddRunVerb(CLI::App& gantry, int* exit_code);
void AddMapVerb(CLI::App& gantry, int* exit_code);
void AddUsageVerb(CLI::App& gantry, int* exit_code);
void AddPsVerb(CLI::App& gantry, int* exit_code);
void AddLogsVerb(CLI::App& gantry, int* exit_code);

}  // namespace toolchain
