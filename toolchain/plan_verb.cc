#include <cstdio>

#include "core/atomic_file.h"
#include "toolchain/app_plan.h"
#include "toolchain/exit_code.h"
#include "toolchain/reporter.h"
#include "toolchain/verbs.h"

namespace toolchain {

void AddPlanVerb(CLI::App& gantry, int* exit_code) {
  auto* verb = gantry.add_subcommand(
      "plan", "Show what apply would change on the agents, with placement and cost");
  struct Options {
    PlanCommand command;
    std::string out;
    bool json = false;
    bool destroy = false;
  };
  auto options = std::make_shared<Options>();
  AddPlanOptions(verb, &options->command);
  verb->add_option("--out", options->out, "Save the plan for gantry apply PLAN");
  verb->add_flag("--json", options->json, "Print the plan as JSON (schemas/plan.schema.json)");
  verb->add_flag("--destroy", options->destroy, "Plan the removal of the app everywhere");
  verb->callback([options, exit_code] {
    if (!options->out.empty() && !options->command.forget_agents.empty()) {
      ReportErrors({core::Error{core::ErrorCode::kInvalidArgument,
                                "--forget-agent applies to gantry apply FILE only: a saved plan "
                                "does not carry it",
                                {}}});
      *exit_code = kExitUsage;
      return;
    }
    auto prepared = PrepareAppPlan(options->command, options->destroy, nullptr);
    if (!prepared) {
      ReportErrors(prepared.error());
      *exit_code = kExitUserError;
      return;
    }
    for (const std::string& warning : prepared->warnings)
      std::fprintf(stderr, "warning: %s\n", warning.c_str());
    const planner::Plan& plan = prepared->plan;
    if (!options->out.empty()) {
      auto written = core::WriteFileAtomically(options->out, plan.ToJson().dump(2) + "\n", 0600);
      if (!written.ok()) {
        ReportErrors({written.error()});
        *exit_code = kExitUserError;
        return;
      }
    }
    if (options->json) {
      std::printf("%s\n", plan.ToJson().dump(2).c_str());
    } else {
      std::fputs(planner::RenderPlan(plan, ColorOutput()).c_str(), stdout);
      if (!options->out.empty())
        std::printf("\nSaved the plan to %s: apply exactly it with gantry apply %s\n",
                    options->out.c_str(), options->out.c_str());
    }
    *exit_code = kExitOk;
  });
}

}  // namespace toolchain
