#pragma once

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "planner/deploy_state.h"
#include "planner/fleet.h"
#include "planner/plan.h"
#include "planner/secret_values.h"
#include "toolchain/app_plan.h"

namespace toolchain {

/// The options `gantry apply`, `destroy` and `deploy` share.
struct ApplyCommand {
  PlanCommand plan;
  bool yes = false;
  double converge_timeout_seconds = 120;
  std::FILE* out = stdout;  // the plan and the report (gantry run keeps stdout for the call's)
};

/// Registers the plan options, --yes and --converge-timeout on `verb`.
void AddApplyOptions(CLI::App* verb, ApplyCommand* command);

/// Applies `plan` under the state lock already held, reports per agent and
/// per resource on `command.out`, and returns the exit code.
int ApplyPlanned(const planner::Plan& plan, const planner::Fleet& fleet,
                 const std::optional<planner::DeployState>& state,
                 const std::filesystem::path& state_path,
                 const std::map<std::string, planner::SecretPairs>& secrets,
                 const ApplyCommand& command);

/// `gantry apply FILE`, `destroy FILE`, `deploy FILE` and `up`: plans under
/// the state lock, shows the plan, asks unless `command.yes`, applies.
int PlanAndApply(const ApplyCommand& command, bool destroy);

}  // namespace toolchain
