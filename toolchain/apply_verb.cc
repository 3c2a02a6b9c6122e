#include <cstdio>
#include <iostream>
#include <string>

#include "core/atomic_file.h"
#include "planner/apply.h"
#include "planner/deploy_state.h"
#include "spec/loader.h"
#include "toolchain/app_plan.h"
#include "toolchain/exit_code.h"
#include "toolchain/reporter.h"
#include "toolchain/verbs.h"

namespace toolchain {
namespace {

struct ApplyCommand {
  PlanCommand plan;
  bool yes = false;
  double converge_timeout_seconds = 120;
};

void AddApplyOptions(CLI::App* verb, ApplyCommand* command) {
  AddPlanOptions(verb, &command->plan);
  verb->add_flag("-y,--yes", command->yes, "Apply without asking");
  verb->add_option("--converge-timeout", command->converge_timeout_seconds,
                   "Seconds to wait for each agent to run what it was pushed (default 120)");
}

// Asks on stdin, as Terraform does; only "yes" goes on.
bool Confirmed(const std::string& question) {
  std::printf("\n%s\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ",
              question.c_str());
  std::fflush(stdout);
  std::string answer;
  std::getline(std::cin, answer);
  std::printf("\n");
  return answer == "yes";
}

// "created", "updated", ...: what apply did to a resource.
const char* Done(planner::Action action) {
  switch (action) {
    case planner::Action::kCreate:
      return "created";
    case planner::Action::kUpdate:
      return "updated in place";
    case planner::Action::kReplace:
      return "replaced";
    case planner::Action::kDelete:
      return "destroyed";
    case planner::Action::kNoOp:
      break;
  }
  return "unchanged";
}

// Applies `plan` under the lock already held, reports per agent and per
// resource, and returns the exit code.
int Apply(const planner::Plan& plan, const planner::Fleet& fleet,
          const std::optional<planner::DeployState>& state, const std::filesystem::path& state_path,
          const std::map<std::string, planner::SecretPairs>& secrets, const ApplyCommand& command) {
  planner::ApplyOptions options;
  options.state_path = state_path;
  options.secrets = secrets;
  options.converge_timeout =
      std::chrono::milliseconds(static_cast<long long>(command.converge_timeout_seconds * 1000));
  options.progress = [](const std::string& line) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  };
  auto result = planner::ApplyPlan(plan, fleet, state, options);
  if (!result) {
    ReportErrors({result.error()});
    return kExitUserError;
  }
  if (!result->resources.empty()) std::printf("\n");
  for (const planner::ResourceOutcome& outcome : result->resources) {
    if (outcome.ok) {
      std::printf("%s: %s\n", outcome.address.c_str(), Done(outcome.action));
    } else {
      std::printf("%s: %s failed: %s\n", outcome.address.c_str(),
                  planner::ActionName(outcome.action), outcome.message.c_str());
    }
  }
  planner::Plan::Summary summary = plan.Count();
  if (!result->ok()) {
    int failed = 0;
    for (const planner::AgentOutcome& outcome : result->agents) failed += outcome.ok ? 0 : 1;
    ReportErrors({core::Error{core::ErrorCode::kUnavailable,
                              "apply failed on " + std::to_string(failed) + " of " +
                                  std::to_string(result->agents.size()) +
                                  " agents; what succeeded is recorded: run it again to converge",
                              {}}});
    return kExitUserError;
  }
  std::printf("\n%s complete! Resources: %d added, %d changed, %d destroyed.\n",
              plan.destroy ? "Destroy" : "Apply", summary.add, summary.change, summary.destroy);
  return kExitOk;
}

// gantry apply FILE / gantry destroy FILE: plan under the lock, show, confirm, apply.
int PlanAndApply(const ApplyCommand& command, bool destroy) {
  auto prepared = PrepareAppPlan(command.plan, destroy, destroy ? "destroy" : "apply");
  if (!prepared) {
    ReportErrors(prepared.error());
    return kExitUserError;
  }
  for (const std::string& warning : prepared->warnings)
    std::fprintf(stderr, "warning: %s\n", warning.c_str());
  const planner::Plan& plan = prepared->plan;
  std::fputs(planner::RenderPlan(plan, ColorOutput()).c_str(), stdout);
  if (!plan.HasChanges() && plan.agents.empty()) return kExitOk;
  // Only recording in the state what the agents already run needs no question.
  if (plan.HasChanges() && !command.yes &&
      !Confirmed(destroy ? "Do you really want to destroy app " + plan.app + " on every agent?"
                         : "Do you want to perform these actions?")) {
    ReportErrors({core::Error{core::ErrorCode::kConflict,
                              std::string(destroy ? "destroy" : "apply") + " cancelled",
                              {}}});
    return kExitUserError;
  }
  return Apply(plan, prepared->fleet, prepared->state, prepared->state_path, prepared->secrets,
               command);
}

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
  return Apply(*plan, *fleet, *state, state_path, secrets, command);
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

}  // namespace toolchain
