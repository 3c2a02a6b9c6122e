#include "agents/desired_state.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace agents {
namespace {

using nlohmann::json;

const std::string kDigest = "sha256:" + std::string(64, 'a');

/// The *.json files of tests/agent_documents/FOLDER, in name order.
/// tests/schema_test.py holds schemas/desired_state.schema.json to the same
/// files, so the reader and the schema agree on each of them.
std::vector<std::filesystem::path> AgentDocuments(const std::string& folder) {
  std::filesystem::path dir =
      std::filesystem::path(GANTRY_SOURCE_DIR) / "tests" / "agent_documents" / folder;
  std::vector<std::filesystem::path> paths;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".json") paths.push_back(entry.path());
  }
  std::sort(paths.begin(), paths.end());
  return paths;
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

json GoodDocument() {
  return {{"generation", 3},
          {"apps",
           {{"hello",
             {{"functions",
               {{"echo",
                 {{"image", {{"digest", kDigest}}},
                  {"command", {"/bin/sh", "-c", "echo hi"}},
                  {"env", {{"MODE", "fast"}}},
                  {"memory_bytes", 1 << 20},
                  {"gpu", {{"type", "H100"}, {"count", 2}}},
                  {"timeout_ms", 5000},
                  {"retries", 2},
                  {"max_containers", 3},
                  {"secrets", {"db"}},
                  {"volumes", {{"/data", "cache"}}}}}}},
              {"secrets", {{"db", {{"PASSWORD", "hunter2"}}}}},
              {"volumes", {"cache"}}}}}}};
}

std::string ErrorOf(const json& document) {
  auto parsed = ParseDesiredState(document);
  REQUIRE_FALSE(parsed.ok());
  return parsed.error().message;
}

TEST_CASE("a desired-state document is read with defaults filled", "[desired_state]") {
  auto parsed = ParseDesiredState(GoodDocument());
  REQUIRE(parsed.ok());
  CHECK(parsed->generation == 3);
  const FunctionState* echo = parsed->FindFunction("hello", "echo");
  REQUIRE(echo != nullptr);
  CHECK(echo->image.digest == kDigest);
  CHECK(echo->command == std::vector<std::string>{"/bin/sh", "-c", "echo hi"});
  CHECK(echo->memory_bytes == (1u << 20));
  CHECK(echo->cpu == 0.125);
  REQUIRE(echo->gpu);
  CHECK(echo->gpu->count == 2);
  CHECK(echo->timeout == std::chrono::milliseconds(5000));
  CHECK(echo->retry_backoff == std::chrono::milliseconds(1000));
  CHECK(echo->max_containers == 3);
  CHECK(echo->volumes.at("/data") == "cache");
  CHECK(parsed->apps.at("hello").secrets.at("db").at("PASSWORD") == "hunter2");
  CHECK(parsed->FindFunction("hello", "nope") == nullptr);
  CHECK(parsed->FindFunction("nope", "echo") == nullptr);
}

TEST_CASE("a desired state survives its own document form", "[desired_state]") {
  auto parsed = ParseDesiredState(GoodDocument());
  REQUIRE(parsed.ok());
  json written = ToJson(*parsed, /*redact_secrets=*/false);
  auto reread = ParseDesiredState(std::string_view(written.dump()));
  REQUIRE(reread.ok());
  CHECK(ToJson(*reread, false) == written);
}

TEST_CASE("redacted documents never hold a secret value", "[desired_state]") {
  auto parsed = ParseDesiredState(GoodDocument());
  REQUIRE(parsed.ok());
  std::string redacted = ToJson(*parsed, /*redact_secrets=*/true).dump();
  CHECK(redacted.find("hunter2") == std::string::npos);
  CHECK(redacted.find("(sensitive)") != std::string::npos);
}

TEST_CASE("bad desired-state documents name the field at fault", "[desired_state]") {
  json document = GoodDocument();
  auto& echo = document["apps"]["hello"]["functions"]["echo"];

  SECTION("not JSON") {
    auto parsed = ParseDesiredState(std::string_view("{\"generation\": "));
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().code == core::ErrorCode::kParse);
  }
  SECTION("unknown top-level field") {
    document["generations"] = 1;
    CHECK(ErrorOf(document) == "generations: unknown field");
  }
  SECTION("unknown function field") {
    echo["memroy_bytes"] = 1;
    CHECK(ErrorOf(document) == "apps.hello.functions.echo.memroy_bytes: unknown field");
  }
  SECTION("missing generation") {
    document.erase("generation");
    CHECK(ErrorOf(document) == "generation: missing");
  }
  SECTION("generation zero") {
    document["generation"] = 0;
    CHECK(ErrorOf(document) == "generation: expected an integer >= 1");
  }
  SECTION("negative memory") {
    echo["memory_bytes"] = -5;
    CHECK(ErrorOf(document) == "apps.hello.functions.echo.memory_bytes: expected an integer >= 0");
  }
  SECTION("bad digest") {
    echo["image"]["digest"] = "sha256:xyz";
    CHECK(ErrorOf(document).starts_with("apps.hello.functions.echo.image.digest:"));
  }
  SECTION("a name that could climb out of a folder") {
    document["apps"]["../etc"] = document["apps"]["hello"];
    CHECK(ErrorOf(document).find("invalid name \"../etc\"") != std::string::npos);
  }
  SECTION("a secret the app does not have") {
    echo["secrets"] = {"db", "api"};
    CHECK(ErrorOf(document) == "apps.hello.functions.echo.secrets: no secret \"api\" in this app");
  }
  SECTION("a volume the app does not have") {
    echo["volumes"]["/models"] = "weights";
    CHECK(ErrorOf(document) ==
          "apps.hello.functions.echo.volumes: no volume \"weights\" in this app");
  }
  SECTION("a relative volume mount") {
    echo["volumes"] = {{"data", "cache"}};
    CHECK(ErrorOf(document).find("must be absolute") != std::string::npos);
  }
  SECTION("a secret value of the wrong type is not echoed") {
    document["apps"]["hello"]["secrets"]["db"]["TOKEN"] = 12345;
    std::string message = ErrorOf(document);
    CHECK(message == "apps.hello.secrets.db.TOKEN: expected a string");
    CHECK(message.find("hunter2") == std::string::npos);
  }
  SECTION("min above max") {
    echo["min_containers"] = 5;
    CHECK(ErrorOf(document) ==
          "apps.hello.functions.echo.min_containers: more than max_containers");
  }
  SECTION("a budget without a cap") {
    document["apps"]["hello"]["budget"] = {{"on_exceed", "stop"}};
    CHECK(ErrorOf(document) == "apps.hello.budget: expected daily_usd, monthly_usd or both");
  }
  SECTION("a budget that does something else at its cap") {
    document["apps"]["hello"]["budget"] = {{"monthly_usd", 20}, {"on_exceed", "throttle"}};
    CHECK(ErrorOf(document) == "apps.hello.budget.on_exceed: expected stop or alert");
  }
  SECTION("a negative budget") {
    document["apps"]["hello"]["budget"] = {{"daily_usd", -1}};
    CHECK(ErrorOf(document).starts_with("apps.hello.budget.daily_usd: expected a number >= 0"));
  }
  SECTION("an unknown budget field") {
    document["apps"]["hello"]["budget"] = {{"weekly_usd", 5}};
    CHECK(ErrorOf(document) == "apps.hello.budget.weekly_usd: unknown field");
  }
}

TEST_CASE("a budget is read, written back and compared", "[desired_state]") {
  json document = GoodDocument();
  document["apps"]["hello"]["budget"] = {{"daily_usd", 0.05}};
  auto parsed = ParseDesiredState(document);
  REQUIRE(parsed.ok());
  const auto& budget = parsed->apps.at("hello").budget;
  REQUIRE(budget);
  CHECK(*budget->daily_usd == 0.05);
  CHECK_FALSE(budget->monthly_usd);
  CHECK(budget->on_exceed == BudgetAction::kStop);  // the default
  json written = ToJson(*parsed, false);
  CHECK(written["apps"]["hello"]["budget"] == json{{"daily_usd", 0.05}, {"on_exceed", "stop"}});
  auto reread = ParseDesiredState(written);
  REQUIRE(reread.ok());
  CHECK(reread->apps.at("hello").budget == budget);
}

TEST_CASE("the reader agrees with the schema on the example documents", "[desired_state]") {
  SECTION("good documents are read, and read back from their document form") {
    auto paths = AgentDocuments("desired/good");
    REQUIRE(paths.size() >= 3);
    for (const auto& path : paths) {
      INFO(path.filename().string());
      auto parsed = ParseDesiredState(std::string_view(ReadFile(path)));
      if (!parsed) FAIL_CHECK(parsed.error().message);
      if (!parsed) continue;
      json written = ToJson(*parsed, /*redact_secrets=*/false);
      auto reread = ParseDesiredState(written);
      REQUIRE(reread.ok());
      CHECK(ToJson(*reread, false) == written);
    }
  }
  // bad/: the schema refuses them too. bad-agent-only/: the schema cannot
  // (references between fields, min <= max, whole floats as integers).
  for (const char* folder : {"desired/bad", "desired/bad-agent-only"}) {
    SECTION(std::string(folder) + " documents are refused as invalid, not as unreadable JSON") {
      auto paths = AgentDocuments(folder);
      REQUIRE(paths.size() >= 3);
      for (const auto& path : paths) {
        INFO(path.filename().string());
        auto parsed = ParseDesiredState(std::string_view(ReadFile(path)));
        CHECK_FALSE(parsed.ok());
        if (!parsed) CHECK(parsed.error().code == core::ErrorCode::kInvalidArgument);
      }
    }
  }
}

}  // namespace
}  // namespace agents
