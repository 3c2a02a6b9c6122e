#include "toolchain/app_apply.h"

#include <cstdio>
#include <iostream>
#include <string>

#include "planner/apply.h"
#include "toolchain/exit_code.h"
#include "toolchain/reporter.h"

namespace toolchain {
namespace {

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

}  // namespace

void AddApplyOptions(CLI::App* verb, ApplyCommand* command) {
  AddPlanOptions(verb, &command->plan);
  verb->add_flag("-y,--yes", command->yes, "Apply without asking");
  verb->add_option("--converge-timeout", command->converge_timeout_seconds,
                   "Seconds to wait for each agent to run what it was pushed (default 120)");
}

int ApplyPlanned(const planner::Plan& plan, const planner::Fleet& fleet,
                 const std::optional<planner::DeployState>& state,
                 const std::filesystem::path& state_path,
                 const std::map<std::string, planner::SecretPairs>& secrets,
                 const ApplyCommand& command) {
  planner::ApplyOptions options;
  options.state_path = state_path;
  options.secrets = secrets;
  options.converge_timeout =
      std::chrono::milliseconds(static_cast<long long>(command.converge_timeout_seconds * 1000));
  options.progress = [out = command.out](const std::string& line) {
    std::fprintf(out, "%s\n", line.c_str());
    std::fflush(out);
  };
  auto result = planner::ApplyPlan(plan, fleet, state, options);
  if (!result) {
    ReportErrors({result.error()});
    return kExitUserError;
  }
  if (!result->resources.empty()) std::fprintf(command.out, "\n");
  for (const planner::ResourceOutcome& outcome : result->resources) {
    if (outcome.ok) {
      std::fprintf(command.out, "%s: %s\n", outcome.address.c_str(), Done(outcome.action));
    } else {
      std::fprintf(command.out, "%s: %s failed: %s\n", outcome.address.c_str(),
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
  std::fprintf(command.out, "\n%s complete! Resources: %d added, %d changed, %d destroyed.\n",
               plan.destroy ? "Destroy" : "Apply", summary.add, summary.change, summary.destroy);
  return kExitOk;
}

int PlanAndApply(const ApplyCommand& command, bool destroy) {
  auto prepared = PrepareAppPlan(command.plan, destroy, destroy ? "destroy" : "apply");
  if (!prepared) {
    ReportErrors(prepared.error());
    return kExitUserError;
  }
  for (const std::string& warning : prepared->warnings)
    std::fprintf(stderr, "warning: %s\n", warning.c_str());
  const planner::Plan& plan = prepared->plan;
  std::fputs(planner::RenderPlan(plan, command.out == stdout && ColorOutput()).c_str(),
             command.out);
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
  return ApplyPlanned(plan, prepared->fleet, prepared->state, prepared->state_path,
                      prepared->secrets, command);
}

}  // namespace toolchain
