#include "planner/cost_estimate.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <utility>

#include "core/atomic_file.h"
#include "core/gpu_type.h"

namespace planner {
namespace {

using json = nlohmann::json;

constexpr double kSecondsPerMonth = 30.0 * 24 * 60 * 60;
constexpr double kBytesPerGiB = 1024.0 * 1024 * 1024;

core::Error RatesError(const std::filesystem::path& file, const YAML::Mark& mark,
                       std::string message) {
  return core::Error{core::ErrorCode::kInvalidArgument, std::move(message),
                     core::Location{file.string(), mark.line + 1, mark.column + 1}};
}

/// A price from the rate card: a finite number of USD per second, not negative.
core::Result<double> ReadPrice(const std::filesystem::path& file, const std::string& key,
                               const YAML::Node& node) {
  double price = 0;
  if (!node.IsScalar() || !YAML::convert<double>::decode(node, price) || !std::isfinite(price)) {
    return RatesError(file, node.Mark(), key + ": expected a price in USD per second");
  }
  if (price < 0) return RatesError(file, node.Mark(), key + ": a price cannot be negative");
  return price;
}

std::string KnownGpuTypes() {
  std::string known;
  for (const std::string& type : core::kGpuTypes) known += (known.empty() ? "" : ", ") + type;
  return known;
}

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

RateCard RateCard::Defaults() {
  // Modal's published per-second list prices, 2025.
  RateCard rates;
  rates.gpu_per_second = {{"B200", 0.001736},      {"H200", 0.001261}, {"H100", 0.001097},
                          {"A100-80GB", 0.000694}, {"A100", 0.000583}, {"L40S", 0.000542},
                          {"A10G", 0.000306},      {"L4", 0.000222},   {"T4", 0.000164}};
  rates.cpu_core_per_second = 0.0000131;
  rates.memory_gib_per_second = 0.00000222;
  return rates;
}

core::Result<RateCard> RateCard::Load(const std::filesystem::path& file) {
  RateCard rates = Defaults();
  auto text = core::ReadFile(file);
  if (!text.ok()) {
    if (text.error().code == core::ErrorCode::kNotFound) return rates;
    return text.error();
  }
  YAML::Node document;
  try {
    document = YAML::Load(*text);
  } catch (const YAML::Exception& error) {
    return core::Error{core::ErrorCode::kParse, "invalid YAML: " + error.msg,
                       core::Location{file.string(), error.mark.line + 1, error.mark.column + 1}};
  }
  if (document.IsNull()) return rates;
  if (!document.IsMap()) {
    return RatesError(file, document.Mark(), "expected a map with gpu, cpu_core and memory_gib");
  }
  for (const auto& entry : document) {
    const std::string key = entry.first.Scalar();
    if (key == "cpu_core" || key == "memory_gib") {
      auto price = ReadPrice(file, key, entry.second);
      if (!price.ok()) return price.error();
      (key == "cpu_core" ? rates.cpu_core_per_second : rates.memory_gib_per_second) = *price;
    } else if (key == "gpu") {
      if (!entry.second.IsMap()) {
        return RatesError(file, entry.second.Mark(), "gpu: expected a map of GPU type to price");
      }
      for (const auto& gpu : entry.second) {
        const std::string type = gpu.first.Scalar();
        if (!rates.gpu_per_second.contains(type)) {
          return RatesError(file, gpu.first.Mark(),
                            "gpu." + type + ": unknown GPU type (known: " + KnownGpuTypes() + ")");
        }
        auto price = ReadPrice(file, "gpu." + type, gpu.second);
        if (!price.ok()) return price.error();
        rates.gpu_per_second[type] = *price;
      }
    } else {
      return RatesError(file, entry.first.Mark(),
                        "unknown key \"" + key + "\" (expected gpu, cpu_core or memory_gib)");
    }
  }
  return rates;
}

nlohmann::json CostEstimate::ToJson() const {
  json list = json::array();
  for (const FunctionCost& cost : functions) {
    list.push_back({{"function", cost.function},
                    {"container_per_hour", cost.container_per_hour},
                    {"always_on_monthly", cost.always_on_monthly},
                    {"max_monthly", cost.max_monthly},
                    {"warm_gpus", cost.warm_gpus}});
  }
  return {{"functions", list},
          {"always_on_monthly", always_on_monthly},
          {"max_monthly", max_monthly},
          {"warnings", warnings}};
}

CostEstimate EstimateCost(const spec::App& app, const Placement& placement, const RateCard& rates) {
  CostEstimate estimate;
  for (const auto& [name, function] : app.functions) {
    auto [gpu_type, gpu_count] = PricedGpu(function, placement, rates);
    double gpu_rate = 0;
    if (gpu_count > 0) {
      auto rate = rates.gpu_per_second.find(gpu_type);
      if (rate != rates.gpu_per_second.end()) {
        gpu_rate = rate->second;
      } else {
        estimate.warnings.push_back("function " + name + " runs on " + gpu_type +
                                    " GPUs, which the rate card has no price for: counted as $0");
      }
    }
    double per_second =
        gpu_rate * gpu_count + function.cpu * rates.cpu_core_per_second +
        static_cast<double>(function.memory) / kBytesPerGiB * rates.memory_gib_per_second;
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
          std::to_string(function.min_containers) + "): " + FormatUsd(cost.always_on_monthly) +
          " a month even with no traffic");
    }
    estimate.always_on_monthly += cost.always_on_monthly;
    estimate.max_monthly += cost.max_monthly;
    estimate.functions.push_back(std::move(cost));
  }
  if (app.budget && app.budget->monthly_usd && estimate.max_monthly > *app.budget->monthly_usd) {
    estimate.warnings.push_back("app " + app.name + " may cost up to " +
                                FormatUsd(estimate.max_monthly) +
                                " a month with every function at max_containers, over its "
                                "monthly budget of " +
                                FormatUsd(*app.budget->monthly_usd));
  }
  return estimate;
}

std::string FormatUsd(double usd) {
  long long cents = std::llround(usd * 100);
  std::string digits = std::to_string(std::llabs(cents) / 100);
  std::string grouped;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) grouped += ',';
    grouped += digits[i];
  }
  std::string fraction = std::to_string(std::llabs(cents) % 100);
  if (fraction.size() == 1) fraction.insert(0, "0");
  return (cents < 0 ? "-$" : "$") + grouped + "." + fraction;
}

}  // namespace planner
