#include "agents/metrics.h"

#include <catch2/catch.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

namespace agents {
namespace {

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST_CASE("counters and gauges render in the Prometheus text format, labels escaped", "[metrics]") {
  MetricRegistry registry;
  MetricFamily& calls = registry.AddCounter("demo_calls_total", "Calls.\nBy outcome \\ app.");
  MetricFamily& depth = registry.AddGauge("demo_queue_depth", "Waiting work.");
  calls.Add({{"app", "a\"b"}, {"outcome", "ok"}});
  calls.Add({{"app", "a\"b"}, {"outcome", "ok"}}, 2);
  calls.Add({{"app", "back\\slash\nline"}, {"outcome", "failed"}});
  depth.Replace({{{{"function", "f"}}, 4}, {{{"function", "g"}}, 0.5}});

  CHECK(registry.Render() ==
        "# HELP demo_calls_total Calls.\\nBy outcome \\\\ app.\n"
        "# TYPE demo_calls_total counter\n"
        "demo_calls_total{app=\"a\\\"b\",outcome=\"ok\"} 3\n"
        "demo_calls_total{app=\"back\\\\slash\\nline\",outcome=\"failed\"} 1\n"
        "# HELP demo_queue_depth Waiting work.\n"
        "# TYPE demo_queue_depth gauge\n"
        "demo_queue_depth{function=\"f\"} 4\n"
        "demo_queue_depth{function=\"g\"} 0.5\n");

  // A gauge is set whole: a series not given again is gone.
  depth.Replace({{{{"function", "g"}}, 2}});
  CHECK(depth.Value({{"function", "f"}}) == 0);
  CHECK(depth.Value({{"function", "g"}}) == 2);
  CHECK(registry.Render().find("function=\"f\"") == std::string::npos);
}

TEST_CASE("histogram buckets are cumulative and end at +Inf with the count", "[metrics]") {
  MetricRegistry registry;
  MetricFamily& latency = registry.AddHistogram("demo_duration_seconds", "Latency.", {0.1, 1, 10});
  for (double value : {0.05, 0.1, 0.5, 3.0, 3.0, 100.0}) latency.Observe({{"fn", "x"}}, value);
  auto lines = Lines(registry.Render());
  REQUIRE(lines.size() == 8);
  CHECK(lines[2] == "demo_duration_seconds_bucket{fn=\"x\",le=\"0.1\"} 2");  // le is inclusive
  CHECK(lines[3] == "demo_duration_seconds_bucket{fn=\"x\",le=\"1\"} 3");
  CHECK(lines[4] == "demo_duration_seconds_bucket{fn=\"x\",le=\"10\"} 5");
  CHECK(lines[5] == "demo_duration_seconds_bucket{fn=\"x\",le=\"+Inf\"} 6");
  CHECK(lines[6] == "demo_duration_seconds_sum{fn=\"x\"} 106.65");
  CHECK(lines[7] == "demo_duration_seconds_count{fn=\"x\"} 6");
}

TEST_CASE("sample values are written as Prometheus reads them", "[metrics]") {
  CHECK(FormatSampleValue(3) == "3");
  CHECK(FormatSampleValue(0.25) == "0.25");
  CHECK(FormatSampleValue(1e-7) == "1e-07");
  CHECK(FormatSampleValue(std::numeric_limits<double>::infinity()) == "+Inf");
  CHECK(FormatSampleValue(-std::numeric_limits<double>::infinity()) == "-Inf");
  CHECK(FormatSampleValue(std::nan("")) == "NaN");
}

TEST_CASE("counters added to from many threads lose nothing", "[metrics]") {
  MetricRegistry registry;
  MetricFamily& counter = registry.AddCounter("demo_total", "Things.");
  MetricFamily& histogram = registry.AddHistogram("demo_seconds", "Time.", {1});
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        counter.Add({{"k", "v"}});
        histogram.Observe({{"k", "v"}}, 0.5);
        (void)registry.Render();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(counter.Value({{"k", "v"}}) == 8000);
  CHECK(registry.Render().find("demo_seconds_count{k=\"v\"} 8000\n") != std::string::npos);
}

TEST_CASE("the agent's metric families are named by Prometheus conventions", "[metrics]") {
  AgentMetrics metrics;
  static const std::regex kHelp("# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+");
  static const std::regex kType("# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)");
  std::set<std::string> names;
  std::string help_of;
  for (const std::string& line : Lines(metrics.registry.Render())) {
    std::smatch match;
    if (std::regex_match(line, match, kHelp)) {
      help_of = match[1];
      continue;
    }
    INFO(line);
    REQUIRE(std::regex_match(line, match, kType));
    const std::string name = match[1], type = match[2];
    CHECK(help_of == name);  // each family has its help, just before its type
    CHECK(names.insert(name).second);
    CHECK(name.starts_with("gantry_"));
    CHECK((type == "counter") == name.ends_with("_total"));
    if (type == "histogram") CHECK(name.ends_with("_seconds"));
  }
  CHECK(names.size() == 13);
}

}  // namespace
}  // namespace agents
