// End-to-end tests of metering: the real `gantry agent` with a fake H100,
// real runc containers (a job and a web server) and its usage ledger, read
// through GET /v1/usage and `gantry usage`, before and after kill -9.

#include <httplib.h>
#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

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

/// The agent's checkpoint interval (agents/agent.cc): what kill -9 may lose.
constexpr std::int64_t kCheckpointMs = 5000;

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

json Desired(const std::string& digest) {
  json image = {{"digest", digest}};
  return {{"generation", 1},
          {"apps",
           {{"meter",
             {{"functions",
               {{"nap",
                 {{"image", image},
                  {"command", {"/bin/sleep", "3"}},
                  {"gpu", {{"type", "H100"}, {"count", 1}}}}},
                {"long", {{"image", image}, {"command", {"/bin/sleep", "120"}}}},
                {"site",
                 {{"image", image},
                  {"command",
                   {"/bin/sh", "-c", "echo hi > /tmp/index.html; exec httpd -f -p $PORT -h /tmp"}},
                  {"web", json::object()},
                  {"min_containers", 1}}}}}}}}}};
}

/// The records of `function` in the agent's ledger, from the epoch to now.
json RecordsOf(httplib::Client& client, const std::string& function) {
  json usage = Body(client.Get("/v1/usage?app=meter"));
  json found = json::array();
  const json records = usage["records"];
  for (const json& record : records) {
    if (record["function"] == function) found.push_back(record);
  }
  return found;
}

TEST_CASE("containers are metered per second into the agent's ledger", "[usage][runc]") {
  if (!tests::ContainersOrSkip()) return;
  tests::TempDir dir("gantry-usage-test");
  fs::path store = dir.path() / "store";
  const std::string digest = tests::RequireBusyboxImage(dir.path(), store);
  auto started = tests::RequireAgent(dir.path() / "agent", store, dir.path() / "agent.log");
  tests::AgentProcess& agent = *started;
  auto client = agent.Client();
  auto applied = client.Put("/v1/desired", Desired(digest).dump(), "application/json");
  REQUIRE(applied);
  INFO(applied->body);
  REQUIRE(applied->status == 200);

  SECTION("a job that sleeps 3 s is billed 3 s on its GPU type, with gantry usage agreeing") {
    auto called =
        client.Post("/v1/apps/meter/functions/nap/calls?wait=true", "{}", "application/json");
    json call = Body(called);
    REQUIRE(call["state"] == "succeeded");
    json records = RecordsOf(client, "nap");
    REQUIRE(records.size() == 1);
    json record = records[0];
    CHECK(record["call"] == call["id"]);
    CHECK(record["gpu_type"] == "H100");
    CHECK(record["gpu_count"] == 1);
    CHECK(record["running"] == false);
    CHECK(record["closed_by"] == "exit");
    CHECK(record["billable_seconds"].get<int>() >= 2);
    CHECK(record["billable_seconds"].get<int>() <= 4);
    // The default rate card: an H100, 0.125 cores and 128 MiB.
    CHECK(record["usd_per_second"].get<double>() ==
          Approx(0.001097 + 0.125 * 0.0000131 + 0.125 * 0.00000222));
    CHECK(record["cost_usd"].get<double>() ==
          Approx(record["billable_seconds"].get<int>() * record["usd_per_second"].get<double>()));

    // The answer is what schemas/usage.schema.json says it is.
    fs::path answer = dir.path() / "usage.json";
    std::ofstream(answer) << Body(client.Get("/v1/usage")).dump();
    auto validated = tests::RunProcess(
        {"python3", "-c",
         "import json, sys, jsonschema\n"
         "schema = json.load(open(sys.argv[1]))\n"
         "jsonschema.Draft202012Validator(schema).validate(json.load(open(sys.argv[2])))",
         (fs::path(GANTRY_SOURCE_DIR) / "schemas/usage.schema.json").string(), answer.string()});
    INFO(validated.err);
    CHECK(validated.exit_code == 0);

    auto anonymous = agent.Client(/*with_token=*/false).Get("/v1/usage");
    REQUIRE(anonymous);
    CHECK(anonymous->status == 401);
    auto bad = client.Get("/v1/usage?since=yesterday");
    REQUIRE(bad);
    CHECK(bad->status == 400);

    std::vector<std::string> home = {"GANTRY_HOME=" + (dir.path() / "home").string()};
    auto added = tests::RunGantry(agent.AddArgs("local"), home);
    INFO(added.err);
    REQUIRE(added.exit_code == 0);
    auto by_gpu = tests::RunGantry({"usage", "--app", "meter", "--by", "gpu", "--json"}, home);
    INFO(by_gpu.err);
    REQUIRE(by_gpu.exit_code == 0);
    json report = json::parse(by_gpu.out);
    json h100;
    const json rows = report["rows"];
    for (const json& row : rows) {
      if (row["gpu"] == "H100") h100 = row;
    }
    REQUIRE(h100.is_object());
    CHECK(h100["containers"] == 1);
    CHECK(h100["seconds"].get<double>() == record["billable_seconds"].get<double>());
    CHECK(h100["cost_usd"].get<double>() == Approx(record["cost_usd"].get<double>()));
    CHECK(report["totals"]["cost_usd"].get<double>() >= record["cost_usd"].get<double>());
    auto csv = tests::RunGantry({"usage", "--by", "function", "--csv", "--since", "1h"}, home);
    REQUIRE(csv.exit_code == 0);
    CHECK(csv.out.find("function,containers,seconds,gpu_seconds,cost_usd\n") == 0);
    CHECK(csv.out.find("\nmeter/nap,1,") != std::string::npos);
    CHECK(csv.out.find("\ntotal,") != std::string::npos);
  }

  SECTION("kill -9 loses no more than the checkpoint interval and counts nothing twice") {
    auto queued = client.Post("/v1/apps/meter/functions/long/calls", "{}", "application/json");
    REQUIRE(queued);
    REQUIRE(queued->status == 202);
    std::string id = json::parse(queued->body)["id"];
    // The job's container, and the web function's warm one (metered too,
    // with no call), once they run.
    json running, web;
    for (int i = 0; i < 1000 && (running.empty() || web.empty()); ++i) {
      running = RecordsOf(client, "long");
      web = RecordsOf(client, "site");
      std::this_thread::sleep_for(20ms);
    }
    INFO(Body(client.Get("/v1/status")).dump());
    REQUIRE(running.size() == 1);
    CHECK(running[0]["running"] == true);
    REQUIRE(web.size() == 1);
    CHECK(web[0]["running"] == true);
    CHECK_FALSE(web[0].contains("call"));

    std::this_thread::sleep_for(7s);  // past a checkpoint
    std::int64_t killed_ms = NowMs();
    REQUIRE(agent.Kill(SIGKILL).ok());
    REQUIRE(agent.Restart().ok());
    auto restarted = agent.Client();
    for (const char* function : {"long", "site"}) {
      INFO(function);
      json records = RecordsOf(restarted, function);
      // The restarted agent starts a new warm container: one record more, not the same twice.
      REQUIRE(records.size() >= 1);
      json recovered = records[0];
      CHECK(recovered["closed_by"] == "recovery");
      std::int64_t end_ms = recovered["end_ms"];
      CHECK(end_ms <= killed_ms);
      CHECK(end_ms >= killed_ms - kCheckpointMs - 1000);
      CHECK(recovered["billable_seconds"].get<std::int64_t>() ==
            (end_ms - recovered["start_ms"].get<std::int64_t>() + 999) / 1000);
    }
    json before = RecordsOf(restarted, "long");
    // An orderly restart changes none of it.
    REQUIRE(agent.Kill(SIGTERM).ok());
    REQUIRE(agent.Restart().ok());
    auto again = agent.Client();
    CHECK(RecordsOf(again, "long") == before);
  }
}

}  // namespace
