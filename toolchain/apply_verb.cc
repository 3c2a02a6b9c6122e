#include <cstdio>
#include <iostream>
#include <string>

#include "core/atomic_file.h"
#include "planner/apply.h"
#include "planner/deploy_state.h"
#include "spec/loader.h"
#include "toolchain/app_apply.h"
#include "toolchain/app_plan.h"
#include "toolchain/exit_code.h"
#include "toolchain/reporter.h"
#include "toolchain/verbs.h"

namespace toolchain {
namespace {

// gantry apply PLAN: exactly the saved plan, or nothing if it is stale.
int ApplySavedPlan(const ApplyCommand& command) {
  if (!command.plan.forget_agents.empty()) {
    ReportErrors({core::Error{core::ErrorCode::kInvalidArgument,
                              "--forget-agent applies to gantry apply FILE only: a saved plan "
                              "does not carry it",
                              {}}});
    return kExitUsage;
  }
  auto text = core::ReadFile(command.plan.file);
  if (!text) {
    ReportErrors({text.error()});
    return kExitUserError;
  }
  auto document = nlohmann::json::parse(*text, nullptr, false);
  if (document.is_discarded()) {
    ReportErrors({core::Error{core::ErrorCode::kParse,
                              command.plan.file + " is neither a spec (.yaml, .yml, .lua) nor a "
                                                  "plan saved by gantry plan --out",
                              {}}});
    return kExitUserError;
  }
  auto plan = planner::Plan::FromJson(document);
  if (!plan) {
    ReportErrors({plan.error()});
    return kExitUserError;
  }
  if (!plan->HasChanges() && plan->agents.empty()) {
    std::printf("No changes in %s.\n", command.plan.file.c_str());
    return kExitOk;
  }
  std::filesystem::path state_path = StatePath(command.plan.state, plan->source, plan->app);
  auto lock = LockState(command.plan, state_path, plan->destroy ? "destroy" : "apply");
  if (!lock) {
    ReportErrors({lock.error()});
    return kExitUserError;
  }
  auto state = planner::ReadState(state_path);
  auto fleet = planner::Fleet::Load(planner::Fleet::DefaultFile());
  std::map<std::string, planner::SecretPairs> secrets;
  if (!plan->destroy) {
    // The secret values are read again from where the spec says, now.
    auto app = spec::Load(plan->source);
    if (!app) {
      ReportErrors(app.error());
      return kExitUserError;
    }
    auto read = planner::ReadSecrets(*app);
    if (!read) {
      ReportErrors({read.error()});
      return kExitUserError;
    }
    secrets = std::move(*read);
  }
  if (!state || !fleet) {
    ReportErrors({!state ? state.error() : fleet.error()});
    return kExitUserError;
  }
  return ApplyPlanned(*plan, *fleet, *state, state_path, secrets, command);
}

}  // namespace

void AddApplyVerb(CLI::App& gantry, int* exit_code) {
  auto* verb = gantry.add_subcommand(
      "apply", "Plan, confirm and apply an app to the agents, or apply a saved plan exactly");
  auto command = std::make_shared<ApplyCommand>();
  AddApplyOptions(verb, command.get());
  verb->callback([command, exit_code] {
    *exit_code =
        IsSpecFile(command->plan.file) ? PlanAndApply(*command, false) : ApplySavedPlan(*command);
  });
}

void AddDestroyVerb(CLI::App& gantry, int* exit_code) {
  auto* verb = gantry.add_subcommand(
      "destroy", "Remove an app, its containers, schedules, secrets and volumes from every agent");
  auto command = std::make_shared<ApplyCommand>();
  AddApplyOptions(verb, command.get());
  verb->callback([command, exit_code] { *exit_code = PlanAndApply(*command, true); });
}

void AddDeployVerb(CLI::App& gantry, int* exit_code) {
  auto* verb = gantry.add_subcommand(
      "deploy", "Plan and apply an app to the registered agents without asking (apply --yes)");
  auto command = std::make_shared<ApplyCommand>();
  AddApplyOptions(verb, command.get());  // --yes is accepted, and what deploy always does
  command->yes = true;
  verb->callback([command, exit_code] { *exit_code = PlanAndApply(*command, false); });
}

}  // namespace toolchain
