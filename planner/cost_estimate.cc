#include "planner/cost_estimate.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <string>
#include <utility>

#include "spec/canonical.h"

namespace planner {
namespace {

using json = nlohmann::json;

constexpr double kSecondsPerMonth = 30.0 * 24 * 60 * 60;

/// The GPU type and count a function's containers are priced with: the ones
/// placement chose, or without a placement the first of its fallback list,
/// "any" priced as the dearest type (an estimate should not undershoot).
std::pair<std::string, int> PricedGpu(const spec::Function& function, const Placement& placement,
                                      const RateCard& rates) {
  auto placed = placement.functions.find(function.name);
  if (placed != placement.functions.end() && !placed->second.empty()) {
    return {placed->second.front().gpu_type, placed->second.front().gpu_count};
  }
  if (function.gpu.empty()) return {"", 0};
  const spec::GpuRequest& first = function.gpu.front();
  if (first.type != "any") return {first.type, first.count};
  auto dearest = std::max_element(rates.gpu_per_second.begin(), rates.gpu_per_second.end(),
                                  [](const auto& a, const auto& b) { return a.second < b.second; });
  return {dearest == rates.gpu_per_second.end() ? "" : dearest->first, first.count};
}

}  // namespace

nlohmann::json CostEstimate::ToJson() const {
  json list = json::array();
  for (const FunctionCost& cost : functions) {
    list.push_back({{"function", cost.function},
                    {"container_per_hour", cost.container_per_hour},
                    {"always_on_monthly", cost.always_on_monthly},
                    {"max_monthly", cost.max_monthly},
                    {"warm_gpus", cost.warm_gpus}});
  }
  json budget_split = json::array();
  for (const AgentBudget& part : budget) {
    json entry = spec::BudgetToJson(part.budget);
    entry["agent"] = part.agent;
    entry["share"] = part.share;
    budget_split.push_back(std::move(entry));
  }
  return {{"functions", list},
          {"always_on_monthly", always_on_monthly},
          {"max_monthly", max_monthly},
          {"warnings", warnings},
          {"budget", budget_split}};
}

std::vector<AgentBudget> SplitBudget(const spec::App& app, const Placement& placement,
                                     const RateCard& rates) {
  // Agent -> what the app's replicas on it cost a second at max_containers,
  // and how many they are: the weight when nothing has a price.
  std::map<std::string, std::pair<double, int>> weights;
  double total_price = 0;
  int total_replicas = 0;
  for (const auto& [name, placed] : placement.functions) {
    auto function = app.functions.find(name);
    for (const Replica& replica : placed) {
      double price = function == app.functions.end()
                         ? 0
                         : rates.PerSecond(replica.gpu_type, replica.gpu_count,
                                           function->second.cpu, function->second.memory) *
                               replica.max_containers;
      weights[replica.agent].first += price;
      weights[replica.agent].second += 1;
      total_price += price;
      total_replicas += 1;
    }
  }
  std::vector<AgentBudget> split;
  for (const auto& [agent, weight] : weights) {
    double share = total_price > 0 ? weight.first / total_price
                                   : static_cast<double>(weight.second) / total_replicas;
    AgentBudget part{agent, share, *app.budget};
    // A whole share is the cap itself; a part is rounded down, never up.
    auto scale = [&](std::optional<double>& cap) {
      if (cap && share < 1) cap = std::floor(*cap * share * 1e6) / 1e6;
    };
    scale(part.budget.daily_usd);
    scale(part.budget.monthly_usd);
    split.push_back(std::move(part));
  }
  return split;
}

CostEstimate EstimateCost(const spec::App& app, const Placement& placement, const RateCard& rates) {
  CostEstimate estimate;
  for (const auto& [name, function] : app.functions) {
    auto [gpu_type, gpu_count] = PricedGpu(function, placement, rates);
    if (gpu_count > 0 && !rates.HasGpuPrice(gpu_type)) {
      estimate.warnings.push_back("function " + name + " runs on " + gpu_type +
                                  " GPUs, which the rate card has no price for: counted as $0");
    }
    double per_second = rates.PerSecond(gpu_type, gpu_count, function.cpu, function.memory);
    FunctionCost cost;
    cost.function = name;
    cost.container_per_hour = per_second * 3600;
    cost.always_on_monthly = per_second * function.min_containers * kSecondsPerMonth;
    cost.max_monthly = per_second * function.max_containers * kSecondsPerMonth;
    cost.warm_gpus = gpu_count * function.min_containers;
    if (cost.warm_gpus > 0) {
      estimate.warnings.push_back(
          "function " + name + " keeps " + std::to_string(cost.warm_gpus) + " " + gpu_type +
          (cost.warm_gpus == 1 ? " GPU" : " GPUs") + " warm (min_containers " +
          std::to_string(function.min_containers) +
          "): " + core::FormatUsd(cost.always_on_monthly) + " a month even with no traffic");
    }
    estimate.always_on_monthly += cost.always_on_monthly;
    estimate.max_monthly += cost.max_monthly;
    estimate.functions.push_back(std::move(cost));
  }
  if (app.budget) estimate.budget = SplitBudget(app, placement, rates);
  if (app.budget && app.budget->monthly_usd && estimate.max_monthly > *app.budget->monthly_usd) {
    estimate.warnings.push_back("app " + app.name + " may cost up to " +
                                core::FormatUsd(estimate.max_monthly) +
                                " a month with every function at max_containers, over its "
                                "monthly budget of " +
                                core::FormatUsd(*app.budget->monthly_usd));
  }
  return estimate;
}

}  // namespace planner
