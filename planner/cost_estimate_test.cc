#include "planner/cost_estimate.h"

#include <catch2/catch.hpp>

namespace planner {
namespace {

constexpr std::uint64_t kGiB = 1ull << 30;
constexpr double kMonth = 30 * 24 * 3600;  // seconds

spec::Function MakeFunction(std::string name, std::vector<spec::GpuRequest> gpu, double cpu,
                            std::uint64_t memory, int min_containers, int max_containers) {
  spec::Function function;
  function.name = std::move(name);
  function.gpu = std::move(gpu);
  function.cpu = cpu;
  function.memory = memory;
  function.min_containers = min_containers;
  function.max_containers = max_containers;
  return function;
}

spec::App MakeApp(std::vector<spec::Function> functions) {
  spec::App app;
  app.name = "demo";
  for (spec::Function& function : functions) {
    std::string name = function.name;
    app.functions[name] = std::move(function);
  }
  return app;
}

TEST_CASE("an H100 with 2 cores and 4 GiB, warm all month") {
  auto app = MakeApp({MakeFunction("chat", {{"H100", 1}}, 2, 4 * kGiB, 1, 3),
                      MakeFunction("worker", {}, 0.5, 1 * kGiB, 0, 4)});
  Placement placement;
  placement.functions["chat"] = {{"a", "H100", 1, 1, 3, false}};
  placement.functions["worker"] = {{"a", "", 0, 0, 4, false}};

  CostEstimate estimate = EstimateCost(app, placement, RateCard::Defaults());
  // By hand: 0.001097 + 2 x 0.0000131 + 4 x 0.00000222 = 0.00113208 USD a second.
  REQUIRE(estimate.functions.size() == 2);
  const FunctionCost& chat = estimate.functions[0];
  CHECK(chat.function == "chat");
  CHECK(chat.container_per_hour == Approx(0.00113208 * 3600));
  CHECK(chat.always_on_monthly == Approx(2934.35136));
  CHECK(chat.max_monthly == Approx(8803.05408));
  CHECK(chat.warm_gpus == 1);
  // 0.5 x 0.0000131 + 1 x 0.00000222 = 0.00000877 USD a second, 4 containers at most.
  const FunctionCost& worker = estimate.functions[1];
  CHECK(worker.always_on_monthly == 0);
  CHECK(worker.max_monthly == Approx(0.00000877 * 4 * kMonth));
  CHECK(worker.warm_gpus == 0);

  CHECK(estimate.always_on_monthly == Approx(2934.35136));
  CHECK(estimate.max_monthly == Approx(8803.05408 + 90.92736));
  CHECK(estimate.warnings ==
        std::vector<std::string>{"function chat keeps 1 H100 GPU warm (min_containers 1): "
                                 "$2,934.35 a month even with no traffic"});

  SECTION("a worst case over the monthly budget is a warning") {
    app.budget = spec::Budget{};
    app.budget->monthly_usd = 5000;
    CostEstimate over = EstimateCost(app, placement, RateCard::Defaults());
    REQUIRE(over.warnings.size() == 2);
    CHECK(over.warnings[1] ==
          "app demo may cost up to $8,893.98 a month with every function at max_containers, "
          "over its monthly budget of $5,000.00");
    app.budget->monthly_usd = 10000;
    CHECK(EstimateCost(app, placement, RateCard::Defaults()).warnings.size() == 1);
  }
  SECTION("the JSON form carries every figure") {
    auto document = estimate.ToJson();
    CHECK(document["functions"][0]["function"] == "chat");
    CHECK(document["functions"][0]["warm_gpus"] == 1);
    CHECK(document["always_on_monthly"].get<double>() == Approx(2934.35136));
    CHECK(document["warnings"].size() == 1);
  }
}

TEST_CASE("the GPU type placement chose is the one priced") {
  auto app =
      MakeApp({MakeFunction("train", {{"H100", 2}, {"A100", 2}}, 0.125, 128ull << 20, 2, 2)});
  Placement placement;
  placement.functions["train"] = {{"a", "A100", 2, 2, 2, false}};
  CostEstimate estimate = EstimateCost(app, placement, RateCard::Defaults());
  // 2 x 0.000583 + 0.125 x 0.0000131 + 0.125 x 0.00000222 = 0.001167915 USD a second.
  CHECK(estimate.functions[0].always_on_monthly == Approx(0.001167915 * 2 * kMonth));
  CHECK(estimate.warnings == std::vector<std::string>{"function train keeps 4 A100 GPUs warm "
                                                      "(min_containers 2): $6,054.47 a month "
                                                      "even with no traffic"});
}

TEST_CASE("without a placement the first request is priced, any as the dearest type") {
  auto app = MakeApp({MakeFunction("embed", {{"any", 1}}, 0, 0, 0, 1),
                      MakeFunction("infer", {{"L4", 1}, {"T4", 1}}, 0, 0, 0, 1)});
  CostEstimate estimate = EstimateCost(app, Placement{}, RateCard::Defaults());
  CHECK(estimate.functions[0].container_per_hour == Approx(0.001736 * 3600));  // B200
  CHECK(estimate.functions[1].container_per_hour == Approx(0.000222 * 3600));  // L4
}

TEST_CASE("a budget is split by what each agent's replicas may cost, never past the cap") {
  RateCard rates;
  rates.gpu_per_second["H100"] = 0.001;
  rates.cpu_core_per_second = 0.0001;
  rates.memory_gib_per_second = 0;
  auto app = MakeApp(
      {MakeFunction("train", {{"H100", 1}}, 1, 0, 0, 1), MakeFunction("web", {}, 1, 0, 0, 2)});
  app.budget = spec::Budget{};
  app.budget->daily_usd = 0.05;
  app.budget->on_exceed = spec::OnExceed::kAlert;
  Placement placement;
  placement.functions["train"] = {{"gpu", "H100", 1, 0, 1, false}};
  placement.functions["web"] = {{"a", "", 0, 0, 1, false}, {"b", "", 0, 0, 1, false}};

  // A second of train at max_containers costs $0.0011, one of each web
  // replica $0.0001: the GPU agent gets 11/13 of the cap, not a third.
  std::vector<AgentBudget> split = SplitBudget(app, placement, rates);
  REQUIRE(split.size() == 3);
  CHECK(split[0].agent == "a");
  CHECK(split[1].agent == "b");
  CHECK(split[2].agent == "gpu");
  CHECK(split[0].share == Approx(1.0 / 13));
  CHECK(split[2].share == Approx(11.0 / 13));
  CHECK_FALSE(split[2].budget.monthly_usd);
  CHECK(split[2].budget.on_exceed == spec::OnExceed::kAlert);
  // Rounded down to a micro-dollar: 0.042307 and 0.003846 twice.
  CHECK(*split[2].budget.daily_usd == Approx(0.042307));
  CHECK(*split[0].budget.daily_usd == Approx(0.003846));
  double total = 0;
  for (const AgentBudget& part : split) total += *part.budget.daily_usd;
  CHECK(total <= 0.05);

  // With nothing priced, by replica count.
  RateCard unpriced;
  split = SplitBudget(app, placement, unpriced);
  REQUIRE(split.size() == 3);
  CHECK(split[0].share == Approx(1.0 / 3));
  CHECK(*split[2].budget.daily_usd == Approx(0.016666));

  placement.functions.erase("train");
  placement.functions["web"] = {{"a", "", 0, 0, 2, false}};
  split = SplitBudget(app, placement, rates);
  REQUIRE(split.size() == 1);
  CHECK(*split[0].budget.daily_usd == 0.05);  // one agent: the cap itself
}

}  // namespace
}  // namespace planner
