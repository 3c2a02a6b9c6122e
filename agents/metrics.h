#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace agents {

/// The labels of one series: name and value pairs, written in this order.
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

enum class MetricType { kCounter, kGauge, kHistogram };

/// One metric family: a name, its help text, its type and its series, one
/// per label set. Safe to use from any thread. Counters only go up
/// (Add), gauges are set whole when the agent is scraped (Replace),
/// histograms count observations into cumulative buckets (Observe).
class MetricFamily {
 public:
  MetricFamily(std::string name, std::string help, MetricType type,
               std::vector<double> bucket_bounds = {});

  /// A counter: adds `amount` (>= 0) to the series of `labels`.
  void Add(const MetricLabels& labels, double amount = 1);
  /// A gauge, or a counter kept elsewhere (the usage ledger's totals): its
  /// series are `values` from now on, and no others.
  void Replace(std::map<MetricLabels, double> values);
  /// A histogram: one observation of `value` in the series of `labels`.
  void Observe(const MetricLabels& labels, double value);

  /// The value of a counter or gauge series; 0 when it has none.
  double Value(const MetricLabels& labels) const;
  /// Appends the family in the Prometheus text format 0.0.4: its HELP and
  /// TYPE lines, then its samples (a histogram's `_bucket` series with `le`
  /// up to "+Inf", `_sum` and `_count`).
  void Render(std::string* out) const;

  const std::string& name() const { return name_; }

 private:
  struct Series {
    double value = 0;                   // a counter's or gauge's
    std::vector<std::uint64_t> counts;  // a histogram's, per bucket (not cumulative)
    double sum = 0;
    std::uint64_t count = 0;
  };

  std::string name_;
  std::string help_;
  MetricType type_;
  std::vector<double> bounds_;  // a histogram's bucket upper bounds, ascending, without +Inf
  mutable std::mutex mutex_;
  std::map<MetricLabels, Series> series_;
};

/// A set of metric families, rendered together as one scrape
/// (`GET /metrics`). Families are added once, at start; their references
/// stay valid for the registry's life.
class MetricRegistry {
 public:
  /// `name` is a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*) not used yet; a
  /// counter's ends in `_total` (metrics_test.cc checks the agent's).
  MetricFamily& AddCounter(const std::string& name, const std::string& help);
  MetricFamily& AddGauge(const std::string& name, const std::string& help);
  MetricFamily& AddHistogram(const std::string& name, const std::string& help,
                             std::vector<double> bucket_bounds);

  /// Every family, in the order added, in the Prometheus text format.
  std::string Render() const;

 private:
  MetricFamily& Add(std::unique_ptr<MetricFamily> family);

  std::vector<std::unique_ptr<MetricFamily>> families_;
};

/// The Content-Type of the text format.
inline constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

/// A label value or help text escaped as the text format wants it
/// (backslash, newline, and in label values the double quote).
std::string EscapeLabelValue(const std::string& value);
std::string EscapeHelp(const std::string& help);
/// A sample value as the text format writes it: shortest round-trip
/// decimal, or +Inf, -Inf, NaN.
std::string FormatSampleValue(double value);

/// The agent's metrics (agents/README.md, "Metrics"): the counters and
/// histograms its parts add to as things happen, and the gauges the agent
/// sets from its state when it is scraped.
struct AgentMetrics {
  AgentMetrics();

  MetricRegistry registry;
  // Counted as they happen.
  MetricFamily& calls;             // gantry_calls_total{app,function,outcome}
  MetricFamily& call_seconds;      // gantry_call_duration_seconds{app,function}
  MetricFamily& requests;          // gantry_requests_total{app,function,status_class}
  MetricFamily& request_seconds;   // gantry_request_duration_seconds{app,function}
  MetricFamily& container_starts;  // gantry_container_starts_total{app,function,kind}
  MetricFamily& cold_starts;       // gantry_cold_starts_total{app,function}
  MetricFamily& cold_waits;        // gantry_cold_start_requests_total{app,function}
  // Set when scraped.
  MetricFamily& containers;       // gantry_containers{app,function,state}
  MetricFamily& queued;           // gantry_queue_depth{app,function,queue}
  MetricFamily& gpus;             // gantry_gpus{type,state}
  MetricFamily& metered_seconds;  // gantry_metered_seconds_total{app,function}
  MetricFamily& metered_cost;     // gantry_metered_cost_usd_total{app,function}
  // Set by the API as they open and end.
  MetricFamily& api_streams;  // gantry_api_streams{route}
  /// One scrape at a time sets the gauges and renders: a slower scrape
  /// never puts back older figures after a newer one.
  std::mutex scrape_mutex;
};

}  // namespace agents
