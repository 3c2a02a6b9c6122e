#include "core/rate_card.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <cstdio>
#include <utility>

#include "core/atomic_file.h"
#include "core/gpu_type.h"

namespace core {
namespace {

constexpr double kBytesPerGiB = 1024.0 * 1024 * 1024;

Error RatesError(const std::filesystem::path& file, const YAML::Mark& mark, std::string message) {
  return Error{ErrorCode::kInvalidArgument, std::move(message),
               Location{file.string(), mark.line + 1, mark.column + 1}};
}

/// A price from the rate card: a finite number of USD per second, not negative.
Result<double> ReadPrice(const std::filesystem::path& file, const std::string& key,
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
  for (const std::string& type : kGpuTypes) known += (known.empty() ? "" : ", ") + type;
  return known;
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

Result<RateCard> RateCard::Load(const std::filesystem::path& file) {
  RateCard rates = Defaults();
  auto text = ReadFile(file);
  if (!text.ok()) {
    if (text.error().code == ErrorCode::kNotFound) return rates;
    return text.error();
  }
  YAML::Node document;
  try {
    document = YAML::Load(*text);
  } catch (const YAML::Exception& error) {
    return Error{ErrorCode::kParse, "invalid YAML: " + error.msg,
                 Location{file.string(), error.mark.line + 1, error.mark.column + 1}};
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

double RateCard::PerSecond(const std::string& gpu_type, int gpu_count, double cpu,
                           std::uint64_t memory_bytes) const {
  double gpu_rate = 0;
  if (gpu_count > 0) {
    auto rate = gpu_per_second.find(gpu_type);
    if (rate != gpu_per_second.end()) gpu_rate = rate->second;
  }
  return gpu_rate * gpu_count + cpu * cpu_core_per_second +
         static_cast<double>(memory_bytes) / kBytesPerGiB * memory_gib_per_second;
}

bool RateCard::HasGpuPrice(const std::string& gpu_type) const {
  return gpu_per_second.contains(gpu_type);
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

std::string FormatUsdFine(double usd) {
  if (std::abs(usd) >= 1) return FormatUsd(usd);
  char text[32];
  std::snprintf(text, sizeof text, "$%.4f", usd);
  return text;
}

}  // namespace core
