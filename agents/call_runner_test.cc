#include "agents/call_runner.h"

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

/// The *.json files of tests/agent_documents/call/KIND, in name order.
/// tests/schema_test.py holds schemas/call.schema.json to the same files, so
/// the reader and the schema agree on each of them.
std::vector<std::filesystem::path> CallDocuments(const std::string& kind) {
  std::filesystem::path dir =
      std::filesystem::path(GANTRY_SOURCE_DIR) / "tests" / "agent_documents" / "call" / kind;
  std::vector<std::filesystem::path> paths;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".json") paths.push_back(entry.path());
  }
  std::sort(paths.begin(), paths.end());
  return paths;
}

json ReadJson(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
}

TEST_CASE("a call body is read with its args, stdin and env", "[call_runner]") {
  auto request = ParseCallRequest(
      json{{"args", {"--name", "world"}}, {"stdin", "hi\n"}, {"env", {{"MODE", "fast"}}}});
  REQUIRE(request.ok());
  CHECK(request->args == std::vector<std::string>{"--name", "world"});
  CHECK(request->stdin_data == "hi\n");
  CHECK(request->env.at("MODE") == "fast");
  auto reread = ParseCallRequest(ToJson(*request));
  REQUIRE(reread.ok());
  CHECK(ToJson(*reread) == ToJson(*request));
}

TEST_CASE("the call reader agrees with the schema on the example documents", "[call_runner]") {
  SECTION("good call bodies are read") {
    auto paths = CallDocuments("good");
    REQUIRE(paths.size() >= 2);
    for (const auto& path : paths) {
      INFO(path.filename().string());
      json body = ReadJson(path);
      REQUIRE_FALSE(body.is_discarded());
      auto request = ParseCallRequest(body);
      if (!request) FAIL_CHECK(request.error().message);
    }
  }
  SECTION("bad call bodies are refused") {
    auto paths = CallDocuments("bad");
    REQUIRE(paths.size() >= 2);
    for (const auto& path : paths) {
      INFO(path.filename().string());
      json body = ReadJson(path);
      REQUIRE_FALSE(body.is_discarded());  // refused as a call, not as JSON
      auto request = ParseCallRequest(body);
      CHECK_FALSE(request.ok());
      if (!request) CHECK(request.error().code == core::ErrorCode::kInvalidArgument);
    }
  }
}

}  // namespace
}  // namespace agents
