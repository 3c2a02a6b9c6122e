// The planner's side of the agent API against a real `gantry agent`: the
// client (planner/agent_client.h) and `gantry agents add|ls|rm`.

#include <catch2/catch.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "planner/agent_client.h"
#include "planner/fleet.h"
#include "tests/agent_fixture.h"
#include "tests/agent_process.h"
#include "tests/busybox_image.h"
#include "tests/gantry_command.h"
#include "tests/temp_dir.h"
#include "tests/tls_certificate.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

/// No free port is this one: connecting to it is refused at once.
constexpr const char* kUnreachableUrl = "http://127.0.0.1:1";

/// An app whose image the agent's store lacks: the agent accepts it and
/// reports the function unschedulable, which is all these tests need.
json AppDocument(const std::string& command) {
  return {{"functions",
           {{"hello",
             {{"image", {{"digest", "sha256:" + std::string(64, 'a')}}},
              {"command", {"/bin/echo", command}},
              {"min_containers", 1},
              {"cpu", 0.5},
              {"memory_bytes", 1 << 30}}}}}};
}

TEST_CASE("the planner's agent client speaks to a real agent", "[planner][agent]") {
  if (!tests::ContainersOrSkip()) return;
  tests::TempDir dir("gantry-planner-agent-test");
  auto started = tests::RequireAgent(dir.path() / "agent", dir.path() / "store",
                                     dir.path() / "agent.log", {"--gpus", "fake:H100x2"});
  tests::AgentProcess& agent = *started;
  const fs::path token_file = dir.Write("token", agent.token() + "\n");
  const planner::AgentEntry entry{"gpu1", agent.address(), token_file, {}};

  SECTION("node, desired state and status round-trip") {
    auto client = planner::AgentClient::Open(entry);
    REQUIRE(client.ok());
    auto node = client->Node();
    INFO((node.ok() ? "" : node.error().message));
    REQUIRE(node.ok());
    REQUIRE((*node)["gpus"].size() == 2);
    CHECK((*node)["gpus"][0]["type"] == "H100");

    auto put = client->PutApp("web", 1, AppDocument("one"));
    INFO((put.ok() ? "" : put.error().message));
    REQUIRE(put.ok());
    CHECK(*put == json{{"generation", 1}, {"changed", true}});
    CHECK(client->PutApp("web", 1, AppDocument("one")).value()["changed"] == false);
    REQUIRE(client->PutApp("batch", 2, AppDocument("two")).ok());
    auto desired = client->Desired();
    REQUIRE(desired.ok());
    CHECK((*desired)["generation"] == 2);
    CHECK((*desired)["apps"]["web"]["functions"]["hello"]["command"][1] == "one");
    CHECK((*desired)["apps"]["batch"]["functions"]["hello"]["command"][1] == "two");
    auto status = client->Status();
    REQUIRE(status.ok());
    CHECK((*status)["apps"]["web"]["functions"]["hello"]["schedulable"] == false);

    auto stale = client->PutApp("web", 1, AppDocument("three"));
    REQUIRE_FALSE(stale.ok());
    CHECK(stale.error().code == core::ErrorCode::kConflict);
    CHECK(stale.error().message ==
          "agent gpu1: generation 1 is stale: it is older than the applied generation 2");
    auto malformed = client->PutApp("web", 3, json{{"functions", 1}});
    REQUIRE_FALSE(malformed.ok());
    CHECK(malformed.error().code == core::ErrorCode::kInvalidArgument);
    CHECK(malformed.error().message == "agent gpu1: app.functions: expected an object");

    auto unknown = client->DeleteApp("nope", 3);
    REQUIRE_FALSE(unknown.ok());
    CHECK(unknown.error().code == core::ErrorCode::kNotFound);
    REQUIRE(client->DeleteApp("web", 3).ok());
    CHECK(client->Desired().value()["apps"].size() == 1);
  }

  SECTION("a wrong token is refused, and the token is not in the error") {
    const planner::AgentEntry wrong{
        "gpu1", agent.address(), dir.Write("wrong-token", "not-the-token-8d1f\n"), {}};
    auto client = planner::AgentClient::Open(wrong);
    REQUIRE(client.ok());
    auto refused = client->Node();
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().code == core::ErrorCode::kInvalidArgument);
    CHECK(refused.error().message.starts_with("agent gpu1 refused the token"));
    CHECK(refused.error().message.find("not-the-token-8d1f") == std::string::npos);
  }

  SECTION("an unreachable agent is an I/O error naming it") {
    auto client = planner::AgentClient::Open({"down", kUnreachableUrl, token_file, {}});
    REQUIRE(client.ok());
    auto node = client->Node();
    REQUIRE_FALSE(node.ok());
    CHECK(node.error().code == core::ErrorCode::kIo);
    CHECK(node.error().message.starts_with(std::string("agent down (") + kUnreachableUrl + "): "));
    CHECK(node.error().message.find(agent.token()) == std::string::npos);
  }

  SECTION("gantry agents add, ls and rm, never printing the token") {
    const std::vector<std::string> home = {"GANTRY_HOME=" + (dir.path() / "home").string()};
    std::string printed;
    auto gantry = [&](const std::vector<std::string>& args) {
      tests::CommandOutput output = tests::RunGantry(args, home);
      printed += output.out + output.err;
      return output;
    };
    auto added =
        gantry({"agents", "add", "gpu1", agent.address(), "--token-file", token_file.string()});
    INFO(added.err);
    REQUIRE(added.exit_code == 0);
    REQUIRE(gantry({"agents", "add", "down", kUnreachableUrl, "--token-file", token_file.string()})
                .exit_code == 0);
    auto duplicate =
        gantry({"agents", "add", "gpu1", kUnreachableUrl, "--token-file", token_file.string()});
    CHECK(duplicate.exit_code == 1);
    CHECK(duplicate.err.find("agent gpu1 already exists") != std::string::npos);
    auto bad_url =
        gantry({"agents", "add", "other", "ftp://x:1", "--token-file", token_file.string()});
    CHECK(bad_url.exit_code == 1);
    CHECK(bad_url.err.find("must be http://HOST:PORT") != std::string::npos);

    // Another app keeps one warm container: what it holds is not free.
    auto client = planner::AgentClient::Open(entry);
    REQUIRE(client.ok());
    REQUIRE(client->PutApp("web", 1, AppDocument("one")).ok());
    const json node = client->Node().value();

    auto table = gantry({"agents", "ls"});
    INFO(table.out + table.err);
    REQUIRE(table.exit_code == 0);
    CHECK(table.out.find("NAME") != std::string::npos);
    CHECK(table.out.find("2×H100") != std::string::npos);
    CHECK(table.out.find("agent down (http://127.0.0.1:1): ") != std::string::npos);

    auto listed = gantry({"agents", "ls", "--json"});
    REQUIRE(listed.exit_code == 0);
    json rows = json::parse(listed.out);
    REQUIRE(rows.size() == 2);
    CHECK(rows[0]["name"] == "down");
    CHECK(rows[0]["reachable"] == false);
    CHECK(rows[0]["error"].get<std::string>().starts_with("agent down ("));
    CHECK(rows[1]["name"] == "gpu1");
    CHECK(rows[1]["url"] == agent.address());
    CHECK(rows[1]["reachable"] == true);
    CHECK(rows[1]["gpus"] == json{{"H100", 2}});
    CHECK(rows[1]["free_cpus"].get<double>() == Approx(node["cpus"].get<double>() - 0.5));
    CHECK(rows[1]["free_memory_bytes"].get<std::uint64_t>() ==
          node["memory_bytes"].get<std::uint64_t>() - (1u << 30));

    REQUIRE(gantry({"agents", "rm", "down"}).exit_code == 0);
    CHECK(gantry({"agents", "rm", "down"}).exit_code == 1);
    json left = json::parse(gantry({"agents", "ls", "--json"}).out);
    REQUIRE(left.size() == 1);
    CHECK(left[0]["name"] == "gpu1");
    CHECK(printed.find(agent.token()) == std::string::npos);
  }
}

TEST_CASE("the agent client checks an agent's TLS certificate against its CA file",
          "[planner][agent][tls]") {
  if (!tests::ContainersOrSkip()) return;
  tests::TempDir dir("gantry-planner-agent-tls-test");
  const fs::path cert = dir.path() / "cert.pem";
  const fs::path key = dir.path() / "key.pem";
  auto made = tests::MakeLoopbackCertificate(cert, key);
  INFO((made.ok() ? "" : made.error().message));
  REQUIRE(made.ok());
  auto started =
      tests::RequireAgent(dir.path() / "agent", dir.path() / "store", dir.path() / "agent.log",
                          {"--tls-cert", cert.string(), "--tls-key", key.string()});
  tests::AgentProcess& agent = *started;
  REQUIRE(agent.address().starts_with("https://"));
  const fs::path token_file = dir.Write("token", agent.token());

  auto trusted = planner::AgentClient::Open({"tls1", agent.address(), token_file, cert});
  REQUIRE(trusted.ok());
  auto node = trusted->Node();
  INFO((node.ok() ? "" : node.error().message));
  CHECK(node.ok());

  // The system's CAs do not know a self-signed certificate.
  auto untrusted = planner::AgentClient::Open({"tls1", agent.address(), token_file, {}});
  REQUIRE(untrusted.ok());
  auto refused = untrusted->Node();
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code == core::ErrorCode::kIo);
  CHECK(refused.error().message.starts_with("agent tls1 (https://"));

  const std::vector<std::string> home = {"GANTRY_HOME=" + (dir.path() / "home").string()};
  REQUIRE(tests::RunGantry({"agents", "add", "tls1", agent.address(), "--token-file",
                            token_file.string(), "--ca", cert.string()},
                           home)
              .exit_code == 0);
  json rows = json::parse(tests::RunGantry({"agents", "ls", "--json"}, home).out);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0]["reachable"] == true);
}

}  // namespace
