#include "planner/deploy_state.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "core/atomic_file.h"
#include "tests/temp_dir.h"

namespace planner {
namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;

DeployState SampleState() {
  DeployState state;
  state.lineage = "5f0c4b2a9e8d7c6b5a4f3e2d1c0b9a88";
  state.serial = 3;
  state.app = "demo";
  state.images["base"] = "sha256:" + std::string(64, 'a');
  state.budget = {{"monthly_usd", 500.0}, {"on_exceed", "stop"}};
  state.placement = {{"chat", json::array({{{"agent", "gpu-1"},
                                            {"gpu_type", "H100"},
                                            {"gpu_count", 1},
                                            {"min_containers", 1},
                                            {"max_containers", 4},
                                            {"owns_schedule", false}}})}};
  state.agents["gpu-1"] = AgentRecord{
      "https://gpu-1:7070",
      12,
      {{"functions", json::object()}, {"secrets", {{"db", {{"PASSWORD", "hmac-sha256:00"}}}}}}};
  return state;
}

TEST_CASE("the state round trips through JSON") {
  DeployState state = SampleState();
  json document = state.ToJson();
  CHECK(document["version"] == 1);
  CHECK(document["agents"]["gpu-1"]["generation"] == 12);
  auto read = DeployState::FromJson(document);
  REQUIRE(read.ok());
  CHECK(read->ToJson() == document);
  CHECK(read->agents.at("gpu-1").url == "https://gpu-1:7070");

  SECTION("no budget and no placement yet") {
    DeployState fresh;
    fresh.lineage = "x";
    fresh.app = "demo";
    json written = fresh.ToJson();
    CHECK(written["budget"].is_null());
    CHECK(written["placement"] == json::object());
    REQUIRE(DeployState::FromJson(written).ok());
  }
}

TEST_CASE("the state reader is strict and names the member") {
  json good = SampleState().ToJson();
  auto error_of = [](const json& document) {
    auto read = DeployState::FromJson(document);
    REQUIRE_FALSE(read.ok());
    CHECK(read.error().code == core::ErrorCode::kInvalidArgument);
    return read.error().message;
  };
  CHECK(error_of(json::array()) == "state: (document): expected an object");
  json bad = good;
  bad["version"] = 2;
  CHECK(error_of(bad) == "state: version: 2 is not supported (this gantry reads version 1)");
  bad = good;
  bad.erase("lineage");
  CHECK(error_of(bad) == "state: lineage: missing");
  bad = good;
  bad["serial"] = "3";
  CHECK(error_of(bad) == "state: serial: expected an integer >= 0");
  bad = good;
  bad["outputs"] = json::object();
  CHECK(error_of(bad) == "state: outputs: unknown member");
  bad = good;
  bad["images"]["base"] = 1;
  CHECK(error_of(bad) == "state: images.base: expected a string");
  bad = good;
  bad["budget"] = 500;
  CHECK(error_of(bad) == "state: budget: expected an object or null");
  bad = good;
  bad["agents"]["gpu-1"]["url"] = 7070;
  CHECK(error_of(bad) == "state: agents.gpu-1.url: expected a string");
  bad = good;
  bad["agents"]["gpu-1"].erase("generation");
  CHECK(error_of(bad) == "state: agents.gpu-1.generation: missing");
}

TEST_CASE("state is written atomically with mode 0600 and read back") {
  tests::TempDir dir;
  auto path = DefaultStatePath(dir.path() / "app.yaml", "demo");
  CHECK(path == dir.path() / ".gantry" / "state" / "demo.json");

  auto missing = ReadState(path);
  REQUIRE(missing.ok());
  CHECK_FALSE(missing->has_value());

  REQUIRE(WriteState(path, SampleState()).ok());
  struct stat info {};
  REQUIRE(stat(path.c_str(), &info) == 0);
  CHECK((info.st_mode & 0777) == 0600);
  auto read = ReadState(path);
  REQUIRE(read.ok());
  REQUIRE(read->has_value());
  CHECK((*read)->ToJson() == SampleState().ToJson());

  DeployState next = SampleState();
  next.serial = 4;
  REQUIRE(WriteState(path, next).ok());
  CHECK((*ReadState(path))->serial == 4);
  // Nothing but the state is left in the folder: no temporary files.
  CHECK(std::distance(std::filesystem::directory_iterator(path.parent_path()),
                      std::filesystem::directory_iterator()) == 1);
}

TEST_CASE("a state file that is not JSON or not a state is an error naming it") {
  tests::TempDir dir;
  auto broken = ReadState(dir.Write("broken.json", "{\"version\": 1,"));
  REQUIRE_FALSE(broken.ok());
  CHECK(broken.error().code == core::ErrorCode::kParse);
  CHECK(broken.error().location.file == (dir.path() / "broken.json").string());

  auto wrong = ReadState(dir.Write("wrong.json", "{\"version\": 9}"));
  REQUIRE_FALSE(wrong.ok());
  CHECK(wrong.error().ToString() ==
        (dir.path() / "wrong.json").string() +
            ": state: version: 9 is not supported (this gantry reads version 1)");
}

TEST_CASE("a second lock waits, then fails naming the holder") {
  tests::TempDir dir;
  auto path = dir.path() / "state" / "demo.json";
  auto first = StateLock::Acquire(path, "apply", milliseconds(0));
  REQUIRE(first.ok());

  auto started = std::chrono::steady_clock::now();
  auto second = StateLock::Acquire(path, "destroy", milliseconds(150));
  auto waited = std::chrono::steady_clock::now() - started;
  REQUIRE_FALSE(second.ok());
  CHECK(waited >= milliseconds(150));
  CHECK(second.error().code == core::ErrorCode::kConflict);
  std::string expected_start = "state " + path.string() + " is locked by apply (pid " +
                               std::to_string(getpid()) + " on host ";
  CHECK(second.error().message.starts_with(expected_start));
  CHECK(second.error().message.find(", user ") != std::string::npos);
  CHECK(second.error().message.find(", since 20") != std::string::npos);
  CHECK(second.error().message.ends_with("Z)"));

  SECTION("the destructor releases it") {
    { StateLock released = std::move(first).value(); }
    CHECK(StateLock::Acquire(path, "destroy", milliseconds(0)).ok());
  }
  SECTION("the lock file says who holds it") {
    auto holder = json::parse(*core::ReadFile(path.string() + ".lock"));
    CHECK(holder["operation"] == "apply");
    CHECK(holder["pid"] == getpid());
  }
}

TEST_CASE("a lock held by a process that was killed is free") {
  tests::TempDir dir;
  auto path = dir.path() / "demo.json";
  int ready[2];
  REQUIRE(pipe(ready) == 0);
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    close(ready[0]);
    auto lock = StateLock::Acquire(path, "destroy", milliseconds(0));
    if (!lock.ok()) _exit(1);
    char byte = 'x';
    if (write(ready[1], &byte, 1) != 1) _exit(1);
    pause();
    _exit(0);
  }
  close(ready[1]);
  char byte = 0;
  REQUIRE(read(ready[0], &byte, 1) == 1);
  close(ready[0]);

  auto blocked = StateLock::Acquire(path, "apply", milliseconds(60));
  REQUIRE_FALSE(blocked.ok());
  CHECK(blocked.error().message.find("locked by destroy (pid " + std::to_string(child) + " ") !=
        std::string::npos);

  kill(child, SIGKILL);
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  CHECK(StateLock::Acquire(path, "apply", milliseconds(1000)).ok());
}

}  // namespace
}  // namespace planner
