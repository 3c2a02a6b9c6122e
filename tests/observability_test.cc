// End-to-end tests of observability: the real `gantry agent` (fake H100,
// real runc containers) scraped at GET /metrics after real calls and web
// requests, its output read by a strict parser of the Prometheus text format
// (and by `promtool check metrics` where Debian's prometheus is installed);
// `gantry ps` and `gantry logs` against two registered agents; the agent's
// JSON log.

#include <httplib.h>
#include <signal.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/subprocess.h"
#include "tests/agent_fixture.h"
#include "tests/agent_process.h"
#include "tests/busybox_image.h"
#include "tests/gantry_command.h"
#include "tests/raw_connection.h"
#include "tests/temp_dir.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using tests::Body;
using namespace std::chrono_literals;

/// A secret of the app: it must never reach the agent's log.
constexpr const char* kSecretValue = "obs-secret-value-31";

// ---------------------------------------------------------------------------
// A strict reader of the Prometheus text format, version 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/).

using Labels = std::map<std::string, std::string>;

struct Sample {
  std::string name;
  Labels labels;
  double value = 0;
};

struct Exposition {
  std::map<std::string, std::string> types;  // family -> counter, gauge, histogram, ...
  std::vector<Sample> samples;

  /// The value of the series `name`{labels}, if there is one.
  std::optional<double> Value(const std::string& name, const Labels& labels) const {
    for (const Sample& sample : samples) {
      if (sample.name == name && sample.labels == labels) return sample.value;
    }
    return std::nullopt;
  }
};

bool IsMetricName(const std::string& name) {
  static const std::regex kName("[a-zA-Z_:][a-zA-Z0-9_:]*");
  return std::regex_match(name, kName);
}

bool IsLabelName(const std::string& name) {
  static const std::regex kName("[a-zA-Z_][a-zA-Z0-9_]*");
  return std::regex_match(name, kName) && !name.starts_with("__");
}

/// A sample value: a Go float ("1", "-0.5", "1e-07"), +Inf, -Inf or NaN.
std::optional<double> ParseValue(const std::string& text) {
  if (text == "+Inf" || text == "Inf") return INFINITY;
  if (text == "-Inf") return -INFINITY;
  if (text == "NaN") return NAN;
  static const std::regex kNumber(R"([-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?)");
  if (!std::regex_match(text, kNumber)) return std::nullopt;
  return std::strtod(text.c_str(), nullptr);
}

/// Reads one sample line; "" or what is wrong with it.
std::string ParseSample(const std::string& line, Sample* sample) {
  std::size_t at = 0;
  while (at < line.size() && line[at] != '{' && line[at] != ' ') ++at;
  sample->name = line.substr(0, at);
  if (!IsMetricName(sample->name)) return "bad metric name";
  if (at < line.size() && line[at] == '{') {
    ++at;
    while (true) {
      if (at < line.size() && line[at] == '}') {
        ++at;
        break;
      }
      std::size_t equals = line.find('=', at);
      if (equals == std::string::npos) return "a label without =";
      std::string name = line.substr(at, equals - at);
      if (!IsLabelName(name)) return "bad label name \"" + name + "\"";
      at = equals + 1;
      if (at >= line.size() || line[at] != '"') return "a label value without quotes";
      std::string value;
      for (++at; at < line.size() && line[at] != '"'; ++at) {
        if (line[at] != '\\') {
          value += line[at];
          continue;
        }
        if (++at >= line.size()) return "a label value cut short";
        if (line[at] == '\\' || line[at] == '"') {
          value += line[at];
        } else if (line[at] == 'n') {
          value += '\n';
        } else {
          return "an unknown escape in a label value";
        }
      }
      if (at >= line.size()) return "an unterminated label value";
      ++at;
      if (!sample->labels.emplace(name, value).second) return "label " + name + " twice";
      if (at < line.size() && line[at] == ',') ++at;
    }
  }
  if (at >= line.size() || line[at] != ' ') return "no space before the value";
  std::istringstream rest(line.substr(at + 1));
  std::string value, timestamp, extra;
  rest >> value >> timestamp >> extra;
  auto parsed = ParseValue(value);
  if (!parsed) return "bad value \"" + value + "\"";
  if (!timestamp.empty() && !std::regex_match(timestamp, std::regex("-?[0-9]+")))
    return "bad timestamp";
  if (!extra.empty()) return "text after the timestamp";
  sample->value = *parsed;
  return "";
}

/// The family a sample belongs to: a histogram's _bucket, _sum and _count
/// series belong to the histogram.
std::string FamilyOf(const std::string& name, const std::map<std::string, std::string>& types) {
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    if (!name.ends_with(suffix)) continue;
    std::string base = name.substr(0, name.size() - std::strlen(suffix));
    auto type = types.find(base);
    if (type != types.end() && type->second == "histogram") return base;
  }
  return name;
}

/// Parses a whole scrape strictly: every line a comment, blank or a valid
/// sample; each family's TYPE before its samples, which come together; no
/// series twice; counters not negative; a histogram's buckets cumulative,
/// ending at le="+Inf" with its _count, and a _sum. "" or the first problem.
std::string ParseExposition(const std::string& text, Exposition* exposition) {
  if (text.empty() || text.back() != '\n') return "the text does not end with a newline";
  std::set<std::string> helped, finished, series;
  std::string current;  // the family whose samples are being read
  std::istringstream in(text);
  int number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    const std::string where = "line " + std::to_string(number) + " (" + line + "): ";
    if (line.empty()) continue;
    if (line[0] == '#') {
      static const std::regex kHelp(R"(# HELP (\S+) (.*))");
      static const std::regex kType(R"(# TYPE (\S+) (counter|gauge|histogram|summary|untyped))");
      std::smatch match;
      if (std::regex_match(line, match, kHelp)) {
        if (!IsMetricName(match[1])) return where + "bad metric name";
        if (!helped.insert(match[1]).second) return where + "a second HELP";
      } else if (std::regex_match(line, match, kType)) {
        const std::string family = match[1];
        if (!IsMetricName(family)) return where + "bad metric name";
        if (exposition->types.count(family)) return where + "a second TYPE";
        if (finished.count(family) || current == family) return where + "TYPE after samples";
        exposition->types[family] = match[2];
      } else if (line.starts_with("# HELP") || line.starts_with("# TYPE")) {
        return where + "a malformed HELP or TYPE line";
      }
      continue;
    }
    Sample sample;
    if (std::string error = ParseSample(line, &sample); !error.empty()) return where + error;
    const std::string family = FamilyOf(sample.name, exposition->types);
    if (!exposition->types.count(family)) return where + "a sample before its family's TYPE";
    if (family != current) {
      if (finished.count(family)) return where + "the family's samples are not together";
      if (!current.empty()) finished.insert(current);
      current = family;
    }
    std::string key = sample.name;
    for (const auto& [name, value] : sample.labels) key += "\x1f" + name + "=" + value;
    if (!series.insert(key).second) return where + "the same series twice";
    const std::string& type = exposition->types[family];
    if (type == "counter" && !(sample.value >= 0)) return where + "a counter below 0";
    if (type == "histogram" && sample.name == family + "_bucket" && !sample.labels.count("le"))
      return where + "a bucket without le";
    exposition->samples.push_back(std::move(sample));
  }
  // Histograms: per series (its labels less le), buckets by le ascending.
  for (const auto& [family, type] : exposition->types) {
    if (type != "histogram") continue;
    std::map<Labels, std::vector<std::pair<double, double>>> buckets;
    for (const Sample& sample : exposition->samples) {
      if (sample.name != family + "_bucket") continue;
      Labels labels = sample.labels;
      auto le = ParseValue(labels["le"]);
      if (!le) return family + ": bad le \"" + labels["le"] + "\"";
      labels.erase("le");
      buckets[labels].emplace_back(*le, sample.value);
    }
    for (const auto& [labels, series_buckets] : buckets) {
      for (std::size_t i = 1; i < series_buckets.size(); ++i) {
        if (!(series_buckets[i].first > series_buckets[i - 1].first))
          return family + ": buckets not in ascending le";
        if (series_buckets[i].second < series_buckets[i - 1].second)
          return family + ": buckets not cumulative";
      }
      if (!std::isinf(series_buckets.back().first)) return family + ": no le=\"+Inf\" bucket";
      auto count = exposition->Value(family + "_count", labels);
      if (!count || *count != series_buckets.back().second)
        return family + ": the +Inf bucket is not the _count";
      if (!exposition->Value(family + "_sum", labels)) return family + ": no _sum";
    }
  }
  return "";
}

TEST_CASE("the strict text-format reader refuses what Prometheus would", "[metrics]") {
  auto error = [](const std::string& text) {
    Exposition exposition;
    return ParseExposition(text, &exposition);
  };
  CHECK(error("# TYPE a_total counter\na_total{x=\"1\"} 3\n").empty());
  CHECK_FALSE(error("# TYPE a_total counter\na_total 3").empty());    // no final newline
  CHECK_FALSE(error("a_total 3\n").empty());                          // no TYPE
  CHECK_FALSE(error("# TYPE a counter\na{x=\"1\\q\"} 3\n").empty());  // bad escape
  CHECK_FALSE(error("# TYPE a counter\na{1x=\"1\"} 3\n").empty());    // bad label name
  CHECK_FALSE(error("# TYPE a counter\na -1\n").empty());             // negative counter
  CHECK_FALSE(error("# TYPE a gauge\na 1\na 2\n").empty());           // a series twice
  CHECK_FALSE(error("# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na{x=\"y\"} 1\n").empty());
  CHECK_FALSE(error("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
                    "h_sum 1\nh_count 1\n")
                  .empty());  // not cumulative
  CHECK_FALSE(error("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n").empty());
  CHECK(error("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
              "h_sum 3\nh_count 2\n")
            .empty());
}

// ---------------------------------------------------------------------------

/// The app every agent of these tests runs: job functions that print what
/// they are given, fail, or sleep on the GPU, and a web server.
json Desired(const std::string& digest) {
  json image = {{"digest", digest}};
  return {{"generation", 1},
          {"apps",
           {{"obs",
             {{"secrets", {{"tok", {{"OBS_SECRET", kSecretValue}}}}},
              {"functions",
               {{"hello",
                 {{"image", image},
                  {"command", {"/bin/sh", "-c", "echo said $0"}},
                  {"secrets", {"tok"}}}},
                {"fail", {{"image", image}, {"command", {"/bin/sh", "-c", "echo no >&2; exit 3"}}}},
                {"long",
                 {{"image", image},
                  {"command", {"/bin/sleep", "60"}},
                  {"gpu", {{"type", "H100"}, {"count", 1}}}}},
                {"site",
                 {{"image", image},
                  {"command",
                   {"/bin/sh", "-c", "echo hi > /tmp/index.html; exec httpd -f -p $PORT -h /tmp"}},
                  {"web", json::object()}}}}}}}}}};
}

std::unique_ptr<tests::AgentProcess> StartAgent(const fs::path& dir, const std::string& name,
                                                const fs::path& store,
                                                std::vector<std::string> extra_args = {}) {
  return tests::RequireAgent(dir / name, store, dir / (name + ".log"), std::move(extra_args));
}

void Apply(tests::AgentProcess& agent, const std::string& digest) {
  auto client = agent.Client();
  auto applied = client.Put("/v1/desired", Desired(digest).dump(), "application/json");
  REQUIRE(applied);
  INFO(applied->body);
  REQUIRE(applied->status == 200);
}

json Call(tests::AgentProcess& agent, const std::string& function, const std::string& arg) {
  auto client = agent.Client();
  json body = {{"args", json::array({arg})}};
  return Body(client.Post("/v1/apps/obs/functions/" + function + "/calls?wait=true", body.dump(),
                          "application/json"));
}

std::string Lines(const std::string& text) {
  return text.empty() || text.back() != '\n' ? text : text.substr(0, text.size() - 1);
}

TEST_CASE("GET /metrics counts what a real agent did, in the Prometheus text format",
          "[metrics][runc]") {
  if (!tests::ContainersOrSkip()) return;
  tests::TempDir dir("gantry-metrics-test");
  fs::path store = dir.path() / "store";
  const std::string digest = tests::RequireBusyboxImage(dir.path(), store);
  auto agent = StartAgent(dir.path(), "agent", store, {"--log-format", "json"});
  auto client = agent->Client();
  // And a web function this host cannot serve (no A100): still a web function to /metrics.
  json desired = Desired(digest);
  desired["apps"]["obs"]["functions"]["big"] = {{"image", {{"digest", digest}}},
                                                {"command", {"/bin/true"}},
                                                {"gpu", {{"type", "A100"}, {"count", 1}}},
                                                {"web", json::object()}};
  Body(client.Put("/v1/desired", desired.dump(), "application/json"));

  // The token guards /metrics as it does the API.
  auto anonymous = agent->Client(/*with_token=*/false).Get("/metrics");
  REQUIRE(anonymous);
  CHECK(anonymous->status == 401);

  for (const char* word : {"one", "two", "three"})
    CHECK(Call(*agent, "hello", word)["state"] == "succeeded");
  CHECK(Call(*agent, "fail", "x")["state"] == "failed");
  // A cold start (no container yet), then a warm request and a 404 of the server's.
  for (const char* path : {"/apps/obs/site/", "/apps/obs/site/", "/apps/obs/site/nothing"}) {
    auto answer = client.Get(path);
    REQUIRE(answer);
    CHECK(answer->status == (std::string(path).ends_with("nothing") ? 404 : 200));
  }

  // A client that leaves while its body is being read got no answer: it is
  // not counted. The router has done with it once it ends the connection.
  {
    const int port = agent->port();
    auto leaving = tests::ConnectLoopback(port);
    REQUIRE(leaving.valid());
    REQUIRE(tests::SendAll(leaving.get(),
                           "POST /apps/obs/site/ HTTP/1.1\r\nHost: a\r\n"
                           "Content-Length: 100\r\n\r\nonly ten b"));
    REQUIRE(shutdown(leaving.get(), SHUT_WR) == 0);
    CHECK(tests::ReadAtEnd(leaving.get(), 5s) == 0);
  }

  // A request the router refuses is counted too (503: it cannot run here).
  auto refused = client.Get("/apps/obs/big/");
  REQUIRE(refused);
  CHECK(refused->status == 503);

  // The ledger's figures, read first: the scrape's must be at least these.
  double hello_seconds = 0, hello_cost = 0;
  const json usage = Body(client.Get("/v1/usage?app=obs"));
  for (const json& record : usage["records"]) {
    if (record["function"] != "hello") continue;
    hello_seconds += record["billable_seconds"].get<double>();
    hello_cost += record["cost_usd"].get<double>();
  }

  auto scraped = client.Get("/metrics");
  REQUIRE(scraped);
  REQUIRE(scraped->status == 200);
  CHECK(scraped->get_header_value("Content-Type") == "text/plain; version=0.0.4; charset=utf-8");
  INFO(scraped->body);
  Exposition metrics;
  REQUIRE(ParseExposition(scraped->body, &metrics) == "");

  const Labels hello = {{"app", "obs"}, {"function", "hello"}};
  const Labels site = {{"app", "obs"}, {"function", "site"}};
  auto with = [](Labels labels, const std::string& name, const std::string& value) {
    labels[name] = value;
    return labels;
  };
  CHECK(metrics.Value("gantry_calls_total", with(hello, "outcome", "succeeded")) == 3);
  CHECK(metrics.Value("gantry_calls_total",
                      {{"app", "obs"}, {"function", "fail"}, {"outcome", "failed"}}) == 1);
  CHECK(metrics.Value("gantry_call_duration_seconds_count", hello) == 3);
  CHECK(metrics.Value("gantry_container_starts_total", with(hello, "kind", "job")) == 3);
  CHECK(metrics.Value("gantry_requests_total", with(site, "status_class", "2xx")) == 2);
  CHECK(metrics.Value("gantry_requests_total", with(site, "status_class", "4xx")) == 1);
  CHECK(metrics.Value("gantry_request_duration_seconds_count", site) == 3);
  // One request found nothing ready and waited; one container started for it.
  CHECK(metrics.Value("gantry_cold_start_requests_total", site) == 1);
  CHECK(metrics.Value("gantry_cold_starts_total", site) == 1);
  CHECK(metrics.Value("gantry_container_starts_total", with(site, "kind", "web")) == 1);
  CHECK(metrics.Value("gantry_containers", with(site, "state", "ready")) == 1);
  CHECK(metrics.Value("gantry_containers", with(hello, "state", "running")) == 0);
  CHECK(metrics.Value("gantry_queue_depth", with(hello, "queue", "calls")) == 0);
  CHECK(metrics.Value("gantry_queue_depth", with(site, "queue", "requests")) == 0);
  const Labels big = {{"app", "obs"}, {"function", "big"}};
  CHECK(metrics.Value("gantry_requests_total", with(big, "status_class", "5xx")) == 1);
  CHECK(metrics.Value("gantry_containers", with(big, "state", "ready")) == 0);
  CHECK_FALSE(metrics.Value("gantry_containers", with(big, "state", "running")));
  CHECK(metrics.Value("gantry_queue_depth", with(big, "queue", "requests")) == 0);
  CHECK_FALSE(metrics.Value("gantry_queue_depth", with(big, "queue", "calls")));
  CHECK(metrics.Value("gantry_gpus", {{"type", "H100"}, {"state", "free"}}) == 1);
  CHECK(metrics.Value("gantry_gpus", {{"type", "H100"}, {"state", "allocated"}}) == 0);
  REQUIRE(hello_seconds >= 3);  // three containers, a second at least each
  CHECK(metrics.Value("gantry_metered_seconds_total", hello) == Approx(hello_seconds));
  CHECK(metrics.Value("gantry_metered_cost_usd_total", hello) == Approx(hello_cost));

  // While a job holds the GPU, the gauges say so.
  auto queued = client.Post("/v1/apps/obs/functions/long/calls", "{}", "application/json");
  REQUIRE(queued);
  REQUIRE(queued->status == 202);
  Exposition busy;
  for (int i = 0; i < 300; ++i) {
    busy = Exposition();
    auto scrape = client.Get("/metrics");
    REQUIRE(scrape);
    REQUIRE(ParseExposition(scrape->body, &busy) == "");
    if (busy.Value("gantry_containers",
                   {{"app", "obs"}, {"function", "long"}, {"state", "running"}}) == 1)
      break;
    std::this_thread::sleep_for(50ms);
  }
  CHECK(busy.Value("gantry_containers",
                   {{"app", "obs"}, {"function", "long"}, {"state", "running"}}) == 1);
  CHECK(busy.Value("gantry_gpus", {{"type", "H100"}, {"state", "allocated"}}) == 1);

  // Prometheus's own checker, where Debian's prometheus package is installed.
  auto promtool = core::ResolveProgram("promtool", {"PATH=" + std::string(std::getenv("PATH"))});
  if (promtool) {
    fs::path scrape = dir.path() / "scrape.txt";
    std::ofstream(scrape) << scraped->body;
    auto checked =
        tests::RunProcess({"sh", "-c", *promtool + " check metrics < " + scrape.string()});
    INFO(checked.out << checked.err);
    CHECK(checked.exit_code == 0);
  } else {
    WARN("promtool not installed (Debian package prometheus): only the strict reader checked it");
  }

  // The agent's log is one JSON object per line, and no secret is in it.
  std::istringstream log(agent->Log());
  int lines = 0;
  bool listening = false;
  for (std::string line; std::getline(log, line);) {
    INFO(line);
    json parsed = json::parse(line, nullptr, false);
    REQUIRE(parsed.is_object());
    CHECK(parsed.contains("time"));
    CHECK(parsed.contains("level"));
    CHECK(parsed.contains("message"));
    listening = listening || parsed.value("message", "").find("listening on") != std::string::npos;
    ++lines;
  }
  CHECK(lines > 0);
  CHECK(listening);
  CHECK(agent->Log().find(kSecretValue) == std::string::npos);

  // --metrics-auth none opens /metrics, and nothing else, to any scraper.
  auto open = StartAgent(dir.path(), "open", store, {"--metrics-auth", "none"});
  auto open_metrics = open->Client(/*with_token=*/false).Get("/metrics");
  REQUIRE(open_metrics);
  CHECK(open_metrics->status == 200);
  auto open_status = open->Client(/*with_token=*/false).Get("/v1/status");
  REQUIRE(open_status);
  CHECK(open_status->status == 401);
}

TEST_CASE("gantry ps and gantry logs show what two registered agents run", "[ps][logs][runc]") {
  if (!tests::ContainersOrSkip()) return;
  tests::TempDir dir("gantry-ps-logs-test");
  fs::path store = dir.path() / "store";
  const std::string digest = tests::RequireBusyboxImage(dir.path(), store);
  auto a = StartAgent(dir.path(), "a", store);
  auto b = StartAgent(dir.path(), "b", store, {"--log-format", "text"});
  Apply(*a, digest);
  Apply(*b, digest);
  const fs::path home = dir.path() / "home";
  const std::vector<std::string> env = {"GANTRY_HOME=" + home.string()};
  for (const auto& [name, agent] : {std::pair<std::string, tests::AgentProcess*>{"a", a.get()},
                                    std::pair<std::string, tests::AgentProcess*>{"b", b.get()}}) {
    auto added = tests::RunGantry(agent->AddArgs(name), env);
    INFO(added.err);
    REQUIRE(added.exit_code == 0);
  }

  // Calls on both agents, in turn: their logs merge in time order.
  CHECK(Call(*a, "hello", "first")["state"] == "succeeded");
  CHECK(Call(*b, "hello", "second")["state"] == "succeeded");
  CHECK(Call(*a, "hello", "third")["state"] == "succeeded");
  auto logs = tests::RunGantry({"logs", "obs", "hello"}, env);
  INFO(logs.err);
  REQUIRE(logs.exit_code == 0);
  INFO(logs.out);
  std::size_t first = logs.out.find("said first"), second = logs.out.find("said second"),
              third = logs.out.find("said third");
  REQUIRE(first != std::string::npos);
  REQUIRE(second != std::string::npos);
  REQUIRE(third != std::string::npos);
  CHECK(first < second);
  CHECK(second < third);
  CHECK(std::regex_search(logs.out, std::regex(R"(\n?\S+ a/call-[0-9a-f]+ stdout: said first\n)")));
  CHECK(std::regex_search(logs.out, std::regex(R"(\S+ b/call-[0-9a-f]+ stdout: said second\n)")));
  auto recent = tests::RunGantry({"logs", "obs", "--since", "1h", "--agent", "b"}, env);
  REQUIRE(recent.exit_code == 0);
  CHECK(recent.out.find("said second") != std::string::npos);
  CHECK(recent.out.find("said first") == std::string::npos);
  auto future = tests::RunGantry({"logs", "obs", "--since", "2999-01-01"}, env);
  REQUIRE(future.exit_code == 0);
  CHECK(future.out.empty());

  // Bad input: one clear line each.
  auto bad_since = tests::RunGantry({"logs", "obs", "--since", "yesterday"}, env);
  CHECK(bad_since.exit_code == 1);
  CHECK(Lines(bad_since.err).find('\n') == std::string::npos);
  CHECK(bad_since.err.find("--since: \"yesterday\" is neither a duration") != std::string::npos);
  auto no_app = tests::RunGantry({"logs", "nosuch"}, env);
  CHECK(no_app.exit_code == 1);
  CHECK(Lines(no_app.err) ==
        "no app nosuch on the registered agents (gantry status lists what they run)");
  auto no_agents =
      tests::RunGantry({"logs", "obs"}, {"GANTRY_HOME=" + (dir.path() / "empty").string()});
  CHECK(no_agents.exit_code == 1);
  CHECK(Lines(no_agents.err).starts_with("no agents registered"));
  auto no_function = tests::RunGantry({"logs", "obs", "nosuch"}, env);
  CHECK(no_function.exit_code == 1);
  CHECK(Lines(no_function.err).find("no function obs/nosuch") == 0);

  // The log cursor the agent hands out reads on from where it was; one it
  // did not hand out is refused.
  auto read = a->Client().Get("/v1/logs?app=obs&function=hello");
  REQUIRE(read);
  const std::string cursor = read->get_header_value("Gantry-Log-Cursor");
  CHECK(cursor.starts_with("hello:"));
  auto again = a->Client().Get("/v1/logs?app=obs&function=hello&cursor=" + cursor);
  REQUIRE(again);
  CHECK(again->status == 200);
  CHECK(again->body.empty());
  CHECK(Body(a->Client().Get("/v1/logs?app=obs&cursor=hello:x"), 400)["error"]["code"] ==
        "invalid-argument");

  // --follow prints each line once, new ones as they come, until Ctrl-C.
  core::SubprocessOptions follow;
  follow.argv = {GANTRY_BINARY, "logs", "obs", "hello", "--follow"};
  follow.env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", env[0]};
  follow.stdout_to = core::Output::File(dir.path() / "follow.out");
  follow.stderr_to = core::Output::File(dir.path() / "follow.err");
  auto follower = core::Subprocess::Start(follow);
  REQUIRE(follower.ok());
  std::this_thread::sleep_for(1500ms);
  CHECK(Call(*b, "hello", "fourth")["state"] == "succeeded");
  std::string followed;
  for (int i = 0; i < 200 && followed.find("said fourth") == std::string::npos; ++i) {
    std::this_thread::sleep_for(100ms);
    std::ifstream in(dir.path() / "follow.out");
    followed.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::this_thread::sleep_for(2500ms);  // more polls: nothing printed twice
  REQUIRE(follower->Signal(SIGINT).ok());
  auto ended = follower->Wait(10s);
  REQUIRE(ended.ok());
  REQUIRE(*ended);
  CHECK(follower->exit().code == 0);
  std::ifstream in(dir.path() / "follow.out");
  followed.assign(std::istreambuf_iterator<char>(in), {});
  INFO(followed);
  for (const char* word : {"said first", "said second", "said third", "said fourth"}) {
    std::size_t at = followed.find(word);
    CHECK(at != std::string::npos);
    CHECK(followed.find(word, at + 1) == std::string::npos);
  }

  // A job holding the GPU on a, a web container on b: gantry ps lists both.
  auto queued = a->Client().Post("/v1/apps/obs/functions/long/calls", "{}", "application/json");
  REQUIRE(queued);
  REQUIRE(queued->status == 202);
  const std::string call = json::parse(queued->body)["id"];
  auto page = b->Client().Get("/apps/obs/site/");
  REQUIRE(page);
  REQUIRE(page->status == 200);
  json listed;
  for (int i = 0; i < 100; ++i) {
    auto ps = tests::RunGantry({"ps", "--json"}, env);
    INFO(ps.err);
    REQUIRE(ps.exit_code == 0);
    listed = json::parse(ps.out);
    if (listed["containers"].size() >= 2) break;
    std::this_thread::sleep_for(100ms);
  }
  INFO(listed.dump(2));
  REQUIRE(listed["containers"].size() == 2);
  json job, web;
  for (const json& container : listed["containers"]) {
    (container["function"] == "long" ? job : web) = container;
  }
  CHECK(job["agent"] == "a");
  CHECK(job["app"] == "obs");
  CHECK(job["id"] == call + "-1");
  CHECK(job["call"] == call);
  CHECK(job["state"] == "running");
  CHECK(job["gpu_type"] == "H100");
  CHECK(job["gpu_count"] == 1);
  CHECK(job["age_seconds"].get<std::int64_t>() >= 0);
  CHECK(web["agent"] == "b");
  CHECK(web["function"] == "site");
  CHECK(web["id"].get<std::string>().starts_with("web-obs-site-"));
  CHECK(web["state"] == "ready");
  CHECK(web["gpu_count"] == 0);

  auto table = tests::RunGantry({"ps", "obs"}, env);
  REQUIRE(table.exit_code == 0);
  INFO(table.out);
  CHECK(table.out.starts_with("AGENT"));
  CHECK(std::regex_search(
      table.out, std::regex("\na +obs +long +" + call + "-1 +[0-9smh]+ +H100 +running\n")));
  CHECK(std::regex_search(table.out,
                          std::regex("\nb +obs +site +web-obs-site-\\S+ +[0-9smh]+ +- +ready\n")));
  auto only_b = tests::RunGantry({"ps", "--agent", "b", "--json"}, env);
  REQUIRE(only_b.exit_code == 0);
  CHECK(json::parse(only_b.out)["containers"].size() == 1);
  auto no_ps_app = tests::RunGantry({"ps", "nosuch"}, env);
  CHECK(no_ps_app.exit_code == 1);
  CHECK(Lines(no_ps_app.err) ==
        "no app nosuch on the registered agents (gantry status lists what they run)");

  // Agent b logs as text, as asked.
  CHECK(b->Log().find("agent listening on") != std::string::npos);
  CHECK(b->Log().find("{\"") == std::string::npos);
}

}  // namespace
