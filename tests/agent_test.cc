// End-to-end tests of `gantry agent`: the real binary, real runc, a busybox
// image built by `gantry build`, and the HTTP API spoken by a real client.

#include <httplib.h>
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>

#include "core/atomic_file.h"
#include "core/subprocess.h"
#include "tests/gantry_command.h"
#include "tests/temp_dir.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

bool CanRunContainers() {
  return geteuid() == 0 && fs::exists("/usr/sbin/runc") && fs::exists("/bin/busybox");
}

/// A busybox image built with `gantry build` into a store of the test's own:
/// its manifest digest.
std::string BuildBusyboxImage(const tests::TempDir& dir, const fs::path& store) {
  fs::create_directories(dir.path() / "context/bin");
  fs::copy_file("/bin/busybox", dir.path() / "context/bin/busybox");
  fs::create_symlink("busybox", dir.path() / "context/bin/sh");
  dir.Write("context/app.yaml", R"(app: agenttest
images:
  box:
    from: scratch
    steps:
      - copy: {src: ./bin, dst: /bin}
      - run: /bin/busybox --install -s /bin
functions:
  echo: {image: box}
)");
  auto built = tests::RunGantry(
      {"build", (dir.path() / "context/app.yaml").string(), "--output", store.string(), "-q"});
  INFO(built.err);
  REQUIRE(built.exit_code == 0);
  auto index = core::ReadFile(store / "index.json");
  REQUIRE(index.ok());
  json parsed = json::parse(*index);
  for (const json& manifest : parsed["manifests"]) {
    if (manifest["annotations"]["org.opencontainers.image.ref.name"] == "box")
      return manifest["digest"];
  }
  FAIL("no image box in the store");
  return "";
}

/// `gantry agent` as a child process on a free port, with its log in a file.
class AgentProcess {
 public:
  AgentProcess(fs::path data_dir, fs::path store, fs::path log)
      : data_dir_(std::move(data_dir)), store_(std::move(store)), log_(std::move(log)) {
    Start();
  }

  void Start() {
    std::error_code ignored;
    fs::remove(data_dir_ / "address", ignored);
    core::SubprocessOptions options;
    options.argv = {GANTRY_BINARY,      "agent",   "--listen",      "127.0.0.1:0", "--data-dir",
                    data_dir_.string(), "--store", store_.string(), "--gpus",      "fake:H100x1"};
    options.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                   "HOME=/root"};
    options.stdout_to = core::Output::File(log_);
    options.stderr_to = core::Output::File(log_);
    auto started = core::Subprocess::Start(options);
    REQUIRE(started.ok());
    process_.emplace(std::move(started).value());
    for (int i = 0; i < 300 && !fs::exists(data_dir_ / "address"); ++i)
      std::this_thread::sleep_for(20ms);
    INFO(Log());
    REQUIRE(fs::exists(data_dir_ / "address"));
    std::string address = core::ReadFile(data_dir_ / "address").value();
    address.erase(address.find_last_not_of("\n") + 1);
    address_ = address;
    token_ = core::ReadFile(data_dir_ / "token").value();
    token_.erase(token_.find_last_not_of("\n") + 1);
  }

  void Kill(int signal) {
    REQUIRE(process_->Signal(signal).ok());
    REQUIRE(process_->Wait(10s).value());
    process_.reset();
  }

  httplib::Client Client(bool with_token = true) const {
    httplib::Client client(address_);
    client.set_read_timeout(60, 0);
    if (with_token) client.set_bearer_token_auth(token_.c_str());
    return client;
  }
  std::string Log() const { return core::ReadFile(log_).ok() ? core::ReadFile(log_).value() : ""; }

 private:
  fs::path data_dir_, store_, log_;
  std::optional<core::Subprocess> process_;
  std::string address_, token_;
};

json Body(const httplib::Result& result) {
  REQUIRE(result);
  INFO(result->body);
  return json::parse(result->body);
}

json Desired(int generation, const std::string& digest) {
  json image = {{"digest", digest}};
  return {{"generation", generation},
          {"apps",
           {{"demo",
             {{"volumes", {"data"}},
              {"secrets", {{"db", {{"DB_PASSWORD", "s3cr3t-value-42"}}}}},
              {"functions",
               {{"echo",
                 {{"image", image},
                  {"command", {"/bin/sh", "-c", "echo \"hello $NAME $1\"; cat; exit 3", "sh"}},
                  {"env", {{"NAME", "agent"}}}}},
                {"sleeper",
                 {{"image", image}, {"command", {"/bin/sleep", "30"}}, {"timeout_ms", 1000}}},
                {"flaky",
                 {{"image", image},
                  // Fails twice, then succeeds: its counter lives in a volume.
                  {"command",
                   {"/bin/sh", "-c", "echo x >> /data/tries; test $(wc -l < /data/tries) -ge 3"}},
                  {"retries", 2},
                  {"retry_backoff_ms", 50},
                  {"volumes", {{"/data", "data"}}}}},
                {"reader",
                 {{"image", image},
                  {"command", {"/bin/cat", "/data/tries"}},
                  {"volumes", {{"/data", "data"}}}}},
                {"secretive",
                 {{"image", image},
                  {"command", {"/bin/sh", "-c", "echo ${#DB_PASSWORD} $DB_PASSWORD"}},
                  {"secrets", {"db"}}}},
                {"trainer", {{"image", image}, {"gpu", {{"type", "A100"}, {"count", 1}}}}}}}}}}}};
}

httplib::Result Put(httplib::Client& client, const json& document) {
  return client.Put("/v1/desired", document.dump(), "application/json");
}

json Call(httplib::Client& client, const std::string& function, const json& body) {
  auto result = client.Post("/v1/apps/demo/functions/" + function + "/calls?wait=true", body.dump(),
                            "application/json");
  REQUIRE(result);
  INFO(result->body);
  REQUIRE(result->status == 200);
  return json::parse(result->body);
}

TEST_CASE("the agent runs job calls in real runc containers", "[agent][runc]") {
  if (!CanRunContainers()) {
    WARN("skipped: needs root, /usr/sbin/runc and /bin/busybox");
    return;
  }
  tests::TempDir dir("gantry-agent-test");
  fs::path store = dir.path() / "store";
  std::string digest = BuildBusyboxImage(dir, store);
  fs::path data_dir = dir.path() / "agent";
  AgentProcess agent(data_dir, store, dir.path() / "agent.log");
  auto client = agent.Client();

  SECTION("every route but /healthz needs the token") {
    auto anonymous = agent.Client(/*with_token=*/false);
    auto health = anonymous.Get("/healthz");
    REQUIRE(health);
    CHECK(health->status == 200);
    for (const char* path : {"/v1/node", "/v1/status", "/v1/desired", "/v1/calls/call-00"}) {
      auto refused = anonymous.Get(path);
      REQUIRE(refused);
      CHECK(refused->status == 401);
      CHECK(refused->body.find("unauthorized") != std::string::npos);
    }
    auto refused_put = anonymous.Put("/v1/desired", Desired(1, digest).dump(), "application/json");
    REQUIRE(refused_put);
    CHECK(refused_put->status == 401);
    httplib::Client wrong = agent.Client(false);
    wrong.set_bearer_token_auth("not-the-token");
    auto wrong_token = wrong.Get("/v1/node");
    REQUIRE(wrong_token);
    CHECK(wrong_token->status == 401);
    // Nothing was applied by the refused PUT.
    CHECK(Body(client.Get("/v1/status"))["generation"] == 0);
  }

  SECTION("the node reports the host, its fake GPU and runc") {
    json node = Body(client.Get("/v1/node"));
    CHECK(node["gpus"].size() == 1);
    CHECK(node["gpus"][0]["type"] == "H100");
    CHECK(node["runtime"]["version"].get<std::string>().find("runc") != std::string::npos);
    CHECK(node["cpus"].get<int>() >= 1);
    CHECK(node["host_id"].get<std::string>().size() >= 16);
  }

  SECTION("job calls return output and exit codes; timeouts, retries, secrets, volumes") {
    auto applied = Put(client, Desired(1, digest));
    REQUIRE(applied);
    INFO(applied->body);
    REQUIRE(applied->status == 200);

    json echo = Call(client, "echo", {{"args", {"world"}}, {"stdin", "from stdin\n"}});
    CHECK(echo["stdout"] == "hello agent world\nfrom stdin\n");
    CHECK(echo["exit_code"] == 3);
    CHECK(echo["state"] == "failed");
    CHECK(echo["attempts"] == 1);
    // The record is there afterwards too.
    json found = Body(client.Get("/v1/calls/" + echo["id"].get<std::string>()));
    CHECK(found["exit_code"] == 3);
    CHECK(found["stdout"] == echo["stdout"]);

    json overridden = Call(client, "echo", {{"env", {{"NAME", "caller"}}}});
    CHECK(overridden["stdout"] == "hello caller \n");

    json slow = Call(client, "sleeper", json::object());
    CHECK(slow["state"] == "timed_out");

    json flaky = Call(client, "flaky", json::object());
    CHECK(flaky["state"] == "succeeded");
    CHECK(flaky["attempts"] == 3);
    CHECK(flaky["exit_code"] == 0);

    json secret = Call(client, "secretive", json::object());
    CHECK(secret["stdout"] == "15 s3cr3t-value-42\n");

    json status = Body(client.Get("/v1/status"));
    CHECK(status["generation"] == 1);
    CHECK(status["apps"]["demo"]["functions"]["echo"]["schedulable"] == true);
    json trainer = status["apps"]["demo"]["functions"]["trainer"];
    CHECK(trainer["schedulable"] == false);
    CHECK(trainer["errors"][0].get<std::string>().find(
              "unschedulable: needs 1 x A100 GPU, this host has 1 x H100") != std::string::npos);
    auto refused =
        client.Post("/v1/apps/demo/functions/trainer/calls?wait=true", "{}", "application/json");
    REQUIRE(refused);
    CHECK(refused->status == 409);

    // The secret is in no log, no document the API returns, and not in the clear on disk.
    CHECK(agent.Log().find("s3cr3t-value-42") == std::string::npos);
    CHECK(Body(client.Get("/v1/desired")).dump().find("s3cr3t-value-42") == std::string::npos);
    CHECK(Body(client.Get("/v1/status")).dump().find("s3cr3t-value-42") == std::string::npos);
    for (const auto& entry : fs::recursive_directory_iterator(data_dir)) {
      if (!entry.is_regular_file() || entry.path().string().find("/calls/") != std::string::npos)
        continue;
      INFO(entry.path());
      CHECK(core::ReadFile(entry.path()).value().find("s3cr3t-value-42") == std::string::npos);
    }

    // A volume's files survive a redeploy.
    json redeployed = Desired(2, digest);
    redeployed["apps"]["demo"]["functions"]["echo"]["env"]["NAME"] = "v2";
    auto second = Put(client, redeployed);
    REQUIRE(second);
    CHECK(second->status == 200);
    CHECK(Call(client, "reader", json::object())["stdout"] == "x\nx\nx\n");
    CHECK(Call(client, "echo", json::object())["stdout"] == "hello v2 \n");
  }

  SECTION("bad desired states are refused whole, with a JSON error") {
    REQUIRE(Put(client, Desired(2, digest))->status == 200);
    json before = Body(client.Get("/v1/desired"));

    auto older = Put(client, Desired(1, digest));
    CHECK(older->status == 409);
    CHECK(Body(older)["error"]["code"] == "conflict");
    auto malformed = client.Put("/v1/desired", "{\"generation\": 3,", "application/json");
    CHECK(malformed->status == 400);
    CHECK(Body(malformed)["error"]["code"] == "parse");
    json unknown = Desired(3, digest);
    unknown["apps"]["demo"]["functions"]["echo"]["gpus"] = 1;
    auto unknown_field = Put(client, unknown);
    CHECK(unknown_field->status == 400);
    CHECK(Body(unknown_field)["error"]["message"] ==
          "apps.demo.functions.echo.gpus: unknown field");
    auto oversize = client.Put("/v1/desired", std::string(17 << 20, ' '), "application/json");
    REQUIRE(oversize);
    CHECK(oversize->status == 400);
    auto unknown_function =
        client.Post("/v1/apps/demo/functions/nope/calls", "{}", "application/json");
    CHECK(unknown_function->status == 404);
    auto bad_call =
        client.Post("/v1/apps/demo/functions/echo/calls", "{\"argz\": []}", "application/json");
    CHECK(bad_call->status == 400);
    // The same generation again is a no-op.
    auto again = Put(client, Desired(2, digest));
    CHECK(Body(again)["changed"] == false);

    CHECK(Body(client.Get("/v1/desired")) == before);
  }

  SECTION("the agent survives kill -9 mid-call and cleans what it left") {
    REQUIRE(Put(client, Desired(1, digest))->status == 200);
    auto queued = client.Post("/v1/apps/demo/functions/sleeper/calls", "{}", "application/json");
    REQUIRE(queued);
    REQUIRE(queued->status == 202);
    std::string id = json::parse(queued->body)["id"];
    for (int i = 0; i < 200 && Body(client.Get("/v1/calls/" + id))["state"] != "running"; ++i) {
      std::this_thread::sleep_for(20ms);
    }
    std::this_thread::sleep_for(300ms);  // runc has started the container
    agent.Kill(SIGKILL);

    agent.Start();
    auto restarted = agent.Client();
    json status = Body(restarted.Get("/v1/status"));
    CHECK(status["generation"] == 1);
    json call = Body(restarted.Get("/v1/calls/" + id));
    CHECK(call["state"] == "interrupted");
    auto runc_list =
        core::RunSubprocess({{"runc", "--root", (data_dir / "runc").string(), "list", "-q"},
                             {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"},
                             std::nullopt,
                             core::Output::Capture(),
                             core::Output::Capture()});
    REQUIRE(runc_list.ok());
    CHECK(runc_list->stdout_text.empty());
    CHECK(fs::is_empty(data_dir / "containers"));
    // And it still runs calls.
    CHECK(Call(restarted, "secretive", json::object())["exit_code"] == 0);
  }
}

}  // namespace
