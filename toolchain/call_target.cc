#include "toolchain/call_target.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <optional>

#include "core/gantry_home.h"
#include "spec/loader.h"
#include "toolchain/app_plan.h"
#include "toolchain/exit_code.h"

namespace toolchain {
namespace {

// The local agent a running `gantry up` holds, when it runs `app` with the
// function called: run and map then call it there rather than refuse.
std::optional<planner::AgentEntry> SharedAgent(const CallCommand& command, const spec::App& app) {
  auto running = LocalAgent::Running(command.local.Options(0));
  if (!running) return std::nullopt;
  auto client = planner::AgentClient::Open(*running);
  auto status = client ? client->Status() : core::Result<nlohmann::json>(client.error());
  if (!status) return std::nullopt;
  const nlohmann::json functions = status->value("apps", nlohmann::json::object())
                                       .value(app.name, nlohmann::json::object())
                                       .value("functions", nlohmann::json::object());
  if (!functions.contains(command.function)) return std::nullopt;
  std::fprintf(stderr,
               "gantry: calling %s on the local agent of the gantry up serving %s (%s), as it "
               "was last applied there\n",
               command.function.c_str(), app.name.c_str(), running->url.c_str());
  return running;
}

}  // namespace

void AddCallOptions(CLI::App* verb, CallCommand* command) {
  verb->add_option("FILE", command->file, "Spec file (.yaml, .yml or .lua)")->required();
  verb->add_option("FUNCTION", command->function, "The job function to call")->required();
  CLI::Option* agent = verb->add_option(
      "--agent", command->agent,
      "Call it on this registered agent, which runs the app already (gantry deploy); default: "
      "the embedded local agent");
  for (CLI::Option* local_only : AddLocalAgentFlags(verb, &command->local))
    agent->excludes(local_only);
}

core::Result<CallTarget, std::vector<core::Error>> PrepareCallTarget(const CallCommand& command) {
  using Errors = std::vector<core::Error>;
  auto app = spec::Load(command.file);
  if (!app) return app.error();
  auto function = app->functions.find(command.function);
  if (function == app->functions.end()) {
    std::string names;
    for (const auto& [name, unused] : app->functions) names += (names.empty() ? "" : ", ") + name;
    return Errors{{core::ErrorCode::kNotFound,
                   "app " + app->name + " has no function " + command.function +
                       " (its functions: " + names + ")",
                   {}}};
  }
  if (function->second.web) {
    return Errors{{core::ErrorCode::kInvalidArgument,
                   "function " + command.function + " of app " + app->name +
                       " is a web endpoint: call it over HTTP (gantry up prints its URL)",
                   {}}};
  }
  CallTarget target{std::move(*app), nullptr, {}};
  if (!command.agent.empty()) {
    auto selected = RegisteredAgents({command.agent});
    if (!selected) return Errors{selected.error()};
    target.agent = selected->agents().front();
    return target;
  }

  // The embedded agent's own news (generations applied, containers
  // started) would bury the call's output; --verbose shows it.
  if (spdlog::get_level() == spdlog::level::info) spdlog::set_level(spdlog::level::warn);
  auto local = LocalAgent::Start(command.local.Options(0));
  if (!local && local.error().code == core::ErrorCode::kConflict) {
    // A `gantry up` holds it: call the app it serves there, as it runs it.
    if (auto shared = SharedAgent(command, target.app)) {
      target.agent = std::move(*shared);
      return target;
    }
  }
  if (!local) return Errors{local.error()};
  target.local = std::move(*local);
  target.agent = target.local->fleet().agents().front();
  if (ApplyLocally(*target.local, command.file, target.app, command.local, stderr) != kExitOk)
    return Errors{};  // reported
  return target;
}

}  // namespace toolchain
