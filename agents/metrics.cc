#include "agents/metrics.h"

#include <charconv>
#include <cmath>

namespace agents {
namespace {

/// Bucket bounds of a job call, from a fast container to an hour-long run.
const std::vector<double> kCallBuckets = {0.05, 0.1, 0.25, 0.5, 1,   2.5,  5,   10,
                                          30,   60,  120,  300, 900, 1800, 3600};
/// Bucket bounds of a web request: the client libraries' defaults, then
/// what a cold start or a long answer takes.
const std::vector<double> kRequestBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                             1,     2.5,  5,     10,   30,  60};

std::string LabelText(const MetricLabels& labels, const std::string& le = "") {
  if (labels.empty() && le.empty()) return "";
  std::string text = "{";
  for (const auto& [name, value] : labels) {
    if (text.size() > 1) text += ",";
    text += name + "=\"" + EscapeLabelValue(value) + "\"";
  }
  if (!le.empty()) text += std::string(text.size() > 1 ? "," : "") + "le=\"" + le + "\"";
  return text + "}";
}

const char* TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

}  // namespace

std::string EscapeLabelValue(const std::string& value) {
  std::string escaped;
  for (char c : value) {
    if (c == '\\') {
      escaped += "\\\\";
    } else if (c == '"') {
      escaped += "\\\"";
    } else if (c == '\n') {
      escaped += "\\n";
    } else {
      escaped += c;
    }
  }
  return escaped;
}

std::string EscapeHelp(const std::string& help) {
  std::string escaped;
  for (char c : help) {
    if (c == '\\') {
      escaped += "\\\\";
    } else if (c == '\n') {
      escaped += "\\n";
    } else {
      escaped += c;
    }
  }
  return escaped;
}

std::string FormatSampleValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buffer[64];
  auto [end, error] = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, error == std::errc() ? end : buffer);
}

MetricFamily::MetricFamily(std::string name, std::string help, MetricType type,
                           std::vector<double> bucket_bounds)
    : name_(std::move(name)),
      help_(std::move(help)),
      type_(type),
      bounds_(std::move(bucket_bounds)) {}

void MetricFamily::Add(const MetricLabels& labels, double amount) {
  std::lock_guard lock(mutex_);
  series_[labels].value += amount;
}

void MetricFamily::Replace(std::map<MetricLabels, double> values) {
  std::map<MetricLabels, Series> series;
  for (auto& [labels, value] : values) series[labels].value = value;
  std::lock_guard lock(mutex_);
  series_.swap(series);
}

void MetricFamily::Observe(const MetricLabels& labels, double value) {
  std::lock_guard lock(mutex_);
  Series& series = series_[labels];
  if (series.counts.empty()) series.counts.resize(bounds_.size() + 1);
  std::size_t bucket = 0;
  while (bucket < bounds_.size() && value > bounds_[bucket]) ++bucket;
  ++series.counts[bucket];
  series.sum += value;
  ++series.count;
}

double MetricFamily::Value(const MetricLabels& labels) const {
  std::lock_guard lock(mutex_);
  auto found = series_.find(labels);
  return found == series_.end() ? 0 : found->second.value;
}

void MetricFamily::Render(std::string* out) const {
  *out += "# HELP " + name_ + " " + EscapeHelp(help_) + "\n";
  *out += "# TYPE " + name_ + " " + TypeName(type_) + "\n";
  std::lock_guard lock(mutex_);
  for (const auto& [labels, series] : series_) {
    if (type_ != MetricType::kHistogram) {
      *out += name_ + LabelText(labels) + " " + FormatSampleValue(series.value) + "\n";
      continue;
    }
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i <= bounds_.size(); ++i) {
      cumulative += series.counts[i];
      std::string le = i < bounds_.size() ? FormatSampleValue(bounds_[i]) : "+Inf";
      *out += name_ + "_bucket" + LabelText(labels, le) + " " + std::to_string(cumulative) + "\n";
    }
    *out += name_ + "_sum" + LabelText(labels) + " " + FormatSampleValue(series.sum) + "\n";
    *out += name_ + "_count" + LabelText(labels) + " " + std::to_string(series.count) + "\n";
  }
}

MetricFamily& MetricRegistry::Add(std::unique_ptr<MetricFamily> family) {
  families_.push_back(std::move(family));
  return *families_.back();
}

MetricFamily& MetricRegistry::AddCounter(const std::string& name, const std::string& help) {
  return Add(std::make_unique<MetricFamily>(name, help, MetricType::kCounter));
}

MetricFamily& MetricRegistry::AddGauge(const std::string& name, const std::string& help) {
  return Add(std::make_unique<MetricFamily>(name, help, MetricType::kGauge));
}

MetricFamily& MetricRegistry::AddHistogram(const std::string& name, const std::string& help,
                                           std::vector<double> bucket_bounds) {
  return Add(
      std::make_unique<MetricFamily>(name, help, MetricType::kHistogram, std::move(bucket_bounds)));
}

std::string MetricRegistry::Render() const {
  std::string out;
  for (const auto& family : families_) family->Render(&out);
  return out;
}

AgentMetrics::AgentMetrics()
    : calls(registry.AddCounter("gantry_calls_total",
                                "Job calls that ended, by function and outcome (succeeded, "
                                "failed, timed_out, interrupted).")),
      call_seconds(registry.AddHistogram(
          "gantry_call_duration_seconds",
          "Time from a job call's submission to its end, queueing and retries included.",
          kCallBuckets)),
      requests(registry.AddCounter(
          "gantry_requests_total",
          "Web requests answered for a function, by status class (2xx, 4xx, 5xx, ...).")),
      request_seconds(registry.AddHistogram(
          "gantry_request_duration_seconds",
          "Time from a web request's arrival to the end of its response, queueing included.",
          kRequestBuckets)),
      container_starts(registry.AddCounter(
          "gantry_container_starts_total",
          "Containers started, by function and kind (job: one per call attempt; web).")),
      cold_starts(registry.AddCounter(
          "gantry_cold_starts_total",
          "Web containers started while requests waited and none of their function was "
          "ready (from zero, or with all of them starting).")),
      cold_waits(registry.AddCounter(
          "gantry_cold_start_requests_total",
          "Web requests that found no ready container of their function and waited for one "
          "to start.")),
      containers(registry.AddGauge(
          "gantry_containers",
          "Containers now, by function and state (job: running; web: starting, ready, "
          "draining).")),
      queued(registry.AddGauge(
          "gantry_queue_depth",
          "Work waiting for a container, by function and queue (calls, requests).")),
      gpus(registry.AddGauge("gantry_gpus",
                             "GPUs of this host by type and state (allocated, free).")),
      metered_seconds(registry.AddCounter(
          "gantry_metered_seconds_total",
          "Billable container seconds in the usage ledger, by function (running containers "
          "to their last checkpoint).")),
      metered_cost(registry.AddCounter(
          "gantry_metered_cost_usd_total",
          "Cost in USD of the billable seconds in the usage ledger, by function.")),
      api_streams(registry.AddGauge(
          "gantry_api_streams",
          "Responses the API is streaming now, by route (logs: followed logs; calls: streamed "
          "job calls).")) {}

}  // namespace agents
