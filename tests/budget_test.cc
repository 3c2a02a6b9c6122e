// End to end: a budget of a few cents stops an app mid-burst, on the real
// `gantry agent` with real runc containers, a steep rate card in
// DATA_DIR/rates.yaml, and its usage ledger; new calls, web requests and
// scheduled runs of the app are refused with the clear error, another app
// on the same agent goes on, and a raised budget lifts the stop.

#include <httplib.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "tests/agent_fixture.h"
#include "tests/agent_process.h"
#include "tests/busybox_image.h"
#include "tests/gantry_command.h"
#include "tests/temp_dir.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using tests::Body;
using namespace std::chrono_literals;

/// The rate card: 0.04 USD a core-second, nothing for memory; a function's
/// default 0.125 cores cost 0.005 USD a second.
constexpr double kRate = 0.125 * 0.04;
constexpr double kDailyCap = 0.10;
constexpr int kBurst = 4;  // calls of `burn` at once (its max_containers)

json Desired(const std::string& digest, int generation, double daily_usd) {
  json image = {{"digest", digest}};
  // httpd, with a CGI script that answers after 30 s: a request in flight.
  json site = {{"image", image},
               {"command",
                {"/bin/sh", "-c",
                 "mkdir /tmp/cgi-bin; printf '#!/bin/sh\\nsleep 30\\necho\\necho late\\n' > "
                 "/tmp/cgi-bin/slow; chmod +x /tmp/cgi-bin/slow; echo hi > /tmp/index.html; "
                 "exec httpd -f -p $PORT -h /tmp"}},
               {"web", json::object()}};
  // SIGTERM ends it at once, as a job that saves its work would.
  json burn = {{"image", image},
               {"command", {"/bin/sh", "-c", "trap 'exit 143' TERM; sleep 60 & wait"}},
               {"max_containers", kBurst}};
  json quick = {{"image", image}, {"command", {"/bin/echo", "ok"}}};
  json tick = {{"image", image},
               {"command", {"/bin/true"}},
               {"schedule", {{"every_ms", 1000}}},
               {"max_containers", 1}};
  return {{"generation", generation},
          {"apps",
           {{"capped",
             {{"functions", {{"burn", burn}, {"quick", quick}, {"tick", tick}, {"site", site}}},
              {"budget", {{"daily_usd", daily_usd}, {"on_exceed", "stop"}}}}},
            {"free", {{"functions", {{"quick", quick}, {"site", site}}}}}}}};
}

/// Polls `done` every 100 ms for at most `limit`; whether it came true.
template <typename Done>
bool WaitFor(std::chrono::seconds limit, Done done) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(100ms);
  }
  return done();
}

/// The refusal every call and request of a stopped app gets.
void CheckBudgetExceeded(const httplib::Result& result) {
  REQUIRE(result);
  INFO(result->body);
  CHECK(result->status == 402);
  json body = json::parse(result->body);
  CHECK(body["error"]["code"] == "budget-exceeded");
  std::string message = body["error"]["message"];
  CHECK(message.find("app capped has spent") != std::string::npos);
  CHECK(message.find("daily budget of $0.1000") != std::string::npos);
  CHECK(message.find("raise budget.daily_usd") != std::string::npos);
}

TEST_CASE("a budget of a few cents stops an app mid-burst and new calls get the clear error",
          "[budget][runc]") {
  if (!tests::ContainersOrSkip()) return;
  tests::TempDir dir("gantry-budget-test");
  fs::path store = dir.path() / "store";
  const std::string digest = tests::RequireBusyboxImage(dir.path(), store);
  fs::create_directories(dir.path() / "agent");
  std::ofstream(dir.path() / "agent" / "rates.yaml") << "cpu_core: 0.04\nmemory_gib: 0\n";
  auto started = tests::RequireAgent(dir.path() / "agent", store, dir.path() / "agent.log");
  tests::AgentProcess& agent = *started;
  auto client = agent.Client();
  // A bad budget is refused whole, naming the field.
  json bad = Desired(digest, 1, kDailyCap);
  bad["apps"]["capped"]["budget"]["on_exceed"] = "throttle";
  json refused = Body(client.Put("/v1/desired", bad.dump(), "application/json"), 400);
  CHECK(refused["error"]["message"] == "apps.capped.budget.on_exceed: expected stop or alert");
  bad["apps"]["capped"]["budget"] = {{"on_exceed", "stop"}};
  refused = Body(client.Put("/v1/desired", bad.dump(), "application/json"), 400);
  CHECK(refused["error"]["message"] ==
        "apps.capped.budget: expected daily_usd, monthly_usd or both");
  Body(client.Put("/v1/desired", Desired(digest, 1, kDailyCap).dump(), "application/json"));

  // A web request in flight when the stop comes: its container is stopped
  // under it, and it gets the budget's 402, not a broken connection.
  std::optional<httplib::Result> in_flight;
  std::thread slow([&] {
    auto slow_client = agent.Client();
    in_flight.emplace(slow_client.Get("/apps/capped/site/cgi-bin/slow"));
  });
  REQUIRE(WaitFor(30s, [&] {
    return Body(client.Get(
               "/v1/status"))["apps"]["capped"]["functions"]["site"]["running_containers"] == 1;
  }));
  std::this_thread::sleep_for(500ms);  // the request reaches the CGI script

  std::vector<std::string> calls;
  for (int i = 0; i < kBurst; ++i) {
    json call =
        Body(client.Post("/v1/apps/capped/functions/burn/calls", "{}", "application/json"), 202);
    calls.push_back(call["id"]);
  }
  auto budget = [&] { return Body(client.Get("/v1/status"))["apps"]["capped"]["budget"]; };
  REQUIRE(WaitFor(60s, [&] { return budget()["state"] == "stopped"; }));
  INFO(agent.Log());

  slow.join();
  REQUIRE(in_flight);
  CheckBudgetExceeded(*in_flight);

  // The burst was stopped: its calls end with the budget's error.
  for (const std::string& id : calls) {
    json call;
    REQUIRE(WaitFor(15s, [&] {
      call = Body(client.Get("/v1/calls/" + id));
      return call["state"] != "running" && call["state"] != "queued";
    }));
    INFO(call.dump());
    CHECK(call["state"] == "interrupted");
    CHECK(call["error"].get<std::string>().find("daily budget") != std::string::npos);
  }
  // Once nothing of the app runs, the ledger holds at most the cap plus one
  // evaluation interval (1 s) of the containers that ran, plus their stop,
  // which billing rounds up to a whole second: the burst and the schedule's.
  json usage;
  REQUIRE(WaitFor(15s, [&] {
    usage = Body(client.Get("/v1/usage?app=capped"));
    const json records = usage["records"];
    for (const json& record : records)
      if (record["running"] == true) return false;
    return true;
  }));
  double total = usage["totals"]["cost_usd"];
  INFO(usage.dump());
  CHECK(total >= kDailyCap - 1e-9);  // it ran up to its cap
  CHECK(total <= kDailyCap + (kBurst + 1) * kRate * 2 + 1e-9);
  // The guard reads the ledger again after each container stops.
  json status;
  CHECK(WaitFor(5s, [&] {
    status = budget();
    return std::abs(status["spent_today_usd"].get<double>() - total) < 1e-9;
  }));
  CHECK(status["daily_usd"].get<double>() == Approx(kDailyCap));
  CHECK(status["spent_month_usd"].get<double>() == Approx(total));
  CHECK(status["reason"].get<std::string>().find("stopped until") != std::string::npos);

  // New calls, web requests and scheduled runs of the app are refused.
  CheckBudgetExceeded(
      client.Post("/v1/apps/capped/functions/quick/calls?wait=true", "{}", "application/json"));
  CheckBudgetExceeded(
      client.Post("/v1/apps/capped/functions/burn/calls", "{}", "application/json"));
  CheckBudgetExceeded(client.Get("/apps/capped/site/"));
  // /metrics counts the refusals with the requests answered.
  auto scraped = client.Get("/metrics");
  REQUIRE(scraped);
  std::smatch refused_count;
  REQUIRE(std::regex_search(
      scraped->body, refused_count,
      std::regex(
          R"(gantry_requests_total\{app="capped",function="site",status_class="4xx"\} ([0-9]+))")));
  CHECK(std::stoi(refused_count[1]) >= 2);  // the one in flight and this one
  json tick;
  REQUIRE(WaitFor(10s, [&] {
    tick = Body(client.Get("/v1/status"))["apps"]["capped"]["functions"]["tick"]["schedule"];
    return tick.value("last_skip_reason", "").find("daily budget") != std::string::npos;
  }));
  CHECK(tick["skipped_runs"].get<int>() >= 1);

  // The other app on the same agent is not affected.
  json free_call =
      Body(client.Post("/v1/apps/free/functions/quick/calls?wait=true", "{}", "application/json"));
  CHECK(free_call["state"] == "succeeded");
  CHECK(free_call["stdout"] == "ok\n");
  auto page = client.Get("/apps/free/site/");
  REQUIRE(page);
  CHECK(page->status == 200);
  CHECK(page->body == "hi\n");
  CHECK_FALSE(Body(client.Get("/v1/status"))["apps"]["free"].contains("budget"));

  // gantry status shows it.
  std::vector<std::string> home = {"GANTRY_HOME=" + (dir.path() / "home").string()};
  auto added = tests::RunGantry(agent.AddArgs("local"), home);
  INFO(added.err);
  REQUIRE(added.exit_code == 0);
  auto shown = tests::RunGantry({"status", "capped", "--json"}, home);
  INFO(shown.err);
  REQUIRE(shown.exit_code == 0);
  json budgets = json::parse(shown.out)["budgets"];
  REQUIRE(budgets.size() == 1);
  CHECK(budgets[0]["app"] == "capped");
  CHECK(budgets[0]["agent"] == "local");
  CHECK(budgets[0]["state"] == "stopped");
  auto table = tests::RunGantry({"status", "capped"}, home);
  CHECK(table.out.find("budget of capped on local: stopped, $") != std::string::npos);

  // A raised budget lifts the stop at once.
  Body(client.Put("/v1/desired", Desired(digest, 2, 10).dump(), "application/json"));
  CHECK(budget()["state"] == "ok");
  json lifted = Body(
      client.Post("/v1/apps/capped/functions/quick/calls?wait=true", "{}", "application/json"));
  CHECK(lifted["state"] == "succeeded");
  auto served = client.Get("/apps/capped/site/");
  REQUIRE(served);
  CHECK(served->status == 200);
}

}  // namespace
