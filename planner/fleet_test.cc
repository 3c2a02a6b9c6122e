#include "planner/fleet.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "tests/temp_dir.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

TEST_CASE("a fleet adds, removes, saves and loads its agents", "[planner][fleet]") {
  tests::TempDir dir("gantry-fleet-test");
  const fs::path token = dir.Write("tokens/gpu1", "  secret-token-1\n");
  const fs::path file = dir.path() / "home/agents.json";
  auto loaded = planner::Fleet::Load(file);
  REQUIRE(loaded.ok());
  planner::Fleet fleet = std::move(loaded).value();
  CHECK(fleet.agents().empty());

  REQUIRE(fleet.Add({"gpu1", "https://10.0.0.1:7070/", token, {}}).ok());
  REQUIRE(fleet.Add({"cpu0", "http://localhost:7071", token, token}).ok());
  REQUIRE(fleet.agents().size() == 2);
  CHECK(fleet.agents()[0].name == "cpu0");  // sorted by name
  const planner::AgentEntry* gpu1 = fleet.Find("gpu1");
  REQUIRE(gpu1 != nullptr);
  CHECK(gpu1->url == "https://10.0.0.1:7070");
  CHECK(gpu1->token_file.is_absolute());
  CHECK(gpu1->ca_file.empty());
  CHECK(planner::ReadToken(*gpu1).value() == "secret-token-1");
  CHECK(fleet.Find("nope") == nullptr);

  SECTION("a duplicate name is a conflict and changes nothing") {
    auto again = fleet.Add({"gpu1", "http://10.0.0.2:7070", token, {}});
    REQUIRE_FALSE(again.ok());
    CHECK(again.error().code == core::ErrorCode::kConflict);
    CHECK(fleet.agents().size() == 2);
    CHECK(fleet.Find("gpu1")->url == "https://10.0.0.1:7070");
  }

  SECTION("bad names, URLs and token files are refused with nothing changed") {
    for (const char* url : {"ftp://host:21", "http://host", "http://host:7070/v1", "http://:7070",
                            "http://host:7070?x=1", "http://host:99999", "host:7070"}) {
      INFO(url);
      auto refused = fleet.Add({"new", url, token, {}});
      REQUIRE_FALSE(refused.ok());
      CHECK(refused.error().code == core::ErrorCode::kInvalidArgument);
      CHECK(refused.error().message.starts_with("agent URL \"" + std::string(url) + "\""));
    }
    CHECK_FALSE(fleet.Add({"Bad_Name", "http://host:1", token, {}}).ok());
    auto missing = fleet.Add({"new", "http://host:1", dir.path() / "no-such-token", {}});
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.error().message.find("cannot read the token file") != std::string::npos);
    auto empty = fleet.Add({"new", "http://host:1", dir.Write("empty", "\n"), {}});
    REQUIRE_FALSE(empty.ok());
    CHECK(empty.error().message.find("is empty") != std::string::npos);
    CHECK_FALSE(fleet.Add({"new", "http://host:1", token, dir.path() / "no-such-ca"}).ok());
    CHECK(fleet.agents().size() == 2);
  }

  SECTION("remove") {
    REQUIRE(fleet.Remove("cpu0").ok());
    CHECK(fleet.agents().size() == 1);
    auto unknown = fleet.Remove("cpu0");
    REQUIRE_FALSE(unknown.ok());
    CHECK(unknown.error().code == core::ErrorCode::kNotFound);
  }

  SECTION("save and load give the same fleet, without the token in the file") {
    REQUIRE(fleet.Save().ok());
    std::string text = core::ReadFile(file).value();
    CHECK(text.find("secret-token-1") == std::string::npos);
    CHECK(json::parse(text)["version"] == 1);
    auto reloaded = planner::Fleet::Load(file);
    INFO((reloaded.ok() ? "" : reloaded.error().message));
    REQUIRE(reloaded.ok());
    REQUIRE(reloaded->agents().size() == 2);
    for (std::size_t i = 0; i < 2; ++i) {
      const planner::AgentEntry& a = fleet.agents()[i];
      const planner::AgentEntry& b = reloaded->agents()[i];
      CHECK(a.name == b.name);
      CHECK(a.url == b.url);
      CHECK(a.token_file == b.token_file);
      CHECK(a.ca_file == b.ca_file);
    }
  }
}

TEST_CASE("a hand-broken fleet file is a clear error", "[planner][fleet]") {
  tests::TempDir dir("gantry-fleet-test");
  struct Broken {
    const char* text;
    const char* says;
  };
  for (const Broken& broken : {
           Broken{"{\"version\": 1, \"agents\": [", "not valid JSON"},
           Broken{"{\"version\": 2, \"agents\": []}", "expected {\"version\": 1"},
           Broken{"{\"version\": 1, \"agents\": {}}", "agents: expected a list"},
           Broken{R"({"version": 1, "agents": [{"name": "a", "url": "http://h:1"}]})",
                  "agents[0]: token_file: missing"},
           Broken{R"({"version": 1, "agents": [{"name": "a", "url": "h", "token_file": "/t"}]})",
                  "agents[0]: agent URL \"h\" must be"},
           Broken{R"({"version": 1, "agents": [{"name": "a", "url": "http://h:1",
                      "token_file": "/t", "token": "x"}]})",
                  "agents[0]: token: unknown field"},
           Broken{
               R"({"version": 1, "agents": [{"name": "a", "url": "http://h:1", "token_file": "/t"},
                      {"name": "a", "url": "http://h:2", "token_file": "/t"}]})",
               "agents[1]: agent a appears twice"},
       }) {
    const fs::path file = dir.Write("agents.json", broken.text);
    auto loaded = planner::Fleet::Load(file);
    INFO(broken.text);
    REQUIRE_FALSE(loaded.ok());
    CHECK(loaded.error().code == core::ErrorCode::kParse);
    CHECK(loaded.error().message.starts_with(file.string() + ": "));
    CHECK(loaded.error().message.find(broken.says) != std::string::npos);
  }
}

}  // namespace
