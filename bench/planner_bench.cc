// planner_bench: plans an app of 10,000 functions over 100 made-up agents in
// process (planner::MakePlan does no I/O) — from scratch, with no change and
// with one change — against the goal of issue 8: each under 1 s, where
// Terraform is known to take minutes at that size. planner/README.md records
// the figures.
//
//   build/bench/planner_bench            (GANTRY_BENCH_FUNCTIONS, GANTRY_BENCH_AGENTS,
//   GANTRY_BENCH_RUNS)

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/latency_sample.h"
#include "bench/machine_load.h"
#include "planner/plan.h"

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

spec::App MakeApp(int functions) {
  spec::App app;
  app.name = "big";
  app.source = "/tmp/big/app.yaml";
  for (int i = 0; i < 10; ++i) {
    std::string name = "image" + std::to_string(i);
    app.images[name] = spec::Image{name, spec::ScratchBase{}, {}};
  }
  for (int i = 0; i < 5; ++i) {
    std::string name = "secret" + std::to_string(i);
    app.secrets[name] = spec::Secret{name, {"SECRET_" + std::to_string(i)}, ""};
  }
  app.volumes["data"] = spec::Volume{"data"};
  for (int i = 0; i < functions; ++i) {
    spec::Function function;
    function.name = "fn" + std::to_string(i);
    function.image = "image" + std::to_string(i % 10);
    function.command = {"/bin/serve", std::to_string(i)};
    function.env = {{"INDEX", std::to_string(i)}};
    if (i % 5 == 0) function.gpu = {{"H100", 1}, {"A100-80GB", 1}};
    if (i % 3 == 0) function.web = spec::Web{};
    if (i % 50 == 0) function.min_containers = 1;
    if (i % 7 == 0) function.secrets = {"secret" + std::to_string(i % 5)};
    if (i % 11 == 0) function.volumes = {{"/data", "data"}};
    if (i % 97 == 0 && !function.web) {
      function.schedule = spec::Schedule{};
      function.schedule->cron = "0 3 * * *";
    }
    app.functions[function.name] = std::move(function);
  }
  return app;
}

std::vector<planner::AgentView> MakeAgents(int agents) {
  std::vector<planner::AgentView> views;
  for (int i = 0; i < agents; ++i) {
    planner::AgentView view;
    char name[16];
    std::snprintf(name, sizeof name, "agent%03d", i);
    view.name = name;
    view.url = "http://10.0.0." + std::to_string(i) + ":7070";
    view.token = "token-" + view.name;
    view.inventory.name = view.name;
    view.inventory.cpus = 64;
    view.inventory.memory_bytes = 512ull << 30;
    view.inventory.gpus[i % 2 == 0 ? "H100" : "A100-80GB"] = 8;
    views.push_back(std::move(view));
  }
  return views;
}

// What the agents report and the state records once `plan` was applied:
// the agents show secret values as "(sensitive)".
void Applied(const planner::Plan& plan, planner::PlanInputs& inputs) {
  planner::DeployState state;
  state.lineage = "bench";
  state.serial = 1;
  state.app = plan.app;
  state.images = plan.images;
  state.budget = plan.budget;
  state.placement = planner::PlacementToJson(plan.placement);
  for (planner::AgentView& view : inputs.agents) view.reported = json();
  for (const planner::AgentChange& change : plan.agents) {
    state.agents[change.agent] = planner::AgentRecord{change.url, 1, change.after};
    json reported = change.after;
    for (auto& [secret, pairs] : reported["secrets"].items())
      for (auto& [key, value] : pairs.items()) value = "(sensitive)";
    for (planner::AgentView& view : inputs.agents)
      if (view.name == change.agent) view.reported = reported;
  }
  inputs.state = std::move(state);
}

// The median of `runs` plans of `inputs`, in ms, and the last plan.
double TimePlans(const planner::PlanInputs& inputs, int runs, planner::Plan* last) {
  std::vector<double> ms;
  for (int run = 0; run < runs; ++run) {
    auto start = Clock::now();
    auto plan = planner::MakePlan(inputs);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    if (!plan) {
      std::fprintf(stderr, "planner_bench: %s\n", plan.error().message.c_str());
      std::exit(1);
    }
    *last = std::move(*plan);
  }
  return bench::Median(ms);
}

void Print(const char* what, double ms, const planner::Plan& plan) {
  auto summary = plan.Count();
  std::printf("%-28s %9.1f ms   goal < 1000 ms   %s   (%d to add, %d to change, %d to destroy)\n",
              what, ms, ms < 1000 ? "met" : "NOT met", summary.add, summary.change,
              summary.destroy);
}

}  // namespace

int main() {
  const int functions = static_cast<int>(bench::EnvNumber("GANTRY_BENCH_FUNCTIONS", 10'000));
  const int agents = static_cast<int>(bench::EnvNumber("GANTRY_BENCH_AGENTS", 100));
  const int runs = static_cast<int>(bench::EnvNumber("GANTRY_BENCH_RUNS", 5));
  std::printf("load average before: %s\n", bench::LoadAverage().c_str());
  std::printf("planner_bench: %d functions over %d agents, median of %d plans each\n\n", functions,
              agents, runs);

  spec::App app = MakeApp(functions);
  planner::PlanInputs inputs;
  inputs.app = &app;
  for (const auto& [name, image] : app.images)
    inputs.image_digests[name] = "sha256:" + std::string(64, name.back());
  for (const auto& [name, secret] : app.secrets)
    inputs.secrets[name] = {{secret.from_env[0], "value-of-" + name}};
  inputs.agents = MakeAgents(agents);
  inputs.rates = planner::RateCard::Defaults();

  planner::Plan plan;
  Print("plan from scratch", TimePlans(inputs, runs, &plan), plan);
  Applied(plan, inputs);
  Print("plan with no change", TimePlans(inputs, runs, &plan), plan);
  app.functions["fn4242"].env["INDEX"] = "changed";
  Print("plan with one change", TimePlans(inputs, runs, &plan), plan);
  auto start = Clock::now();
  std::string text = planner::RenderPlan(plan, false);
  std::string document = plan.ToJson().dump();
  std::printf("%-28s %9.1f ms   (%zu bytes of text, %zu of JSON)\n", "render + JSON of that plan",
              std::chrono::duration<double, std::milli>(Clock::now() - start).count(), text.size(),
              document.size());
  std::printf("load average after: %s\n", bench::LoadAverage().c_str());
  return 0;
}
