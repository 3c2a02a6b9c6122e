// End-to-end tests of `gantry agent`: the real binary, real runc, a busybox
// image built by `gantry build`, and the HTTP API spoken by a real client.

#include <fcntl.h>
#include <httplib.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>

#include "agents/agent_records.h"
#include "builder/content_store.h"
#include "builder/registry_client.h"
#include "core/atomic_file.h"
#include "core/sha256.h"
#include "core/subprocess.h"
#include "tests/agent_fixture.h"
#include "tests/agent_process.h"
#include "tests/busybox_image.h"
#include "tests/docker_registry.h"
#include "tests/gantry_command.h"
#include "tests/raw_connection.h"
#include "tests/skip.h"
#include "tests/tar_builder.h"
#include "tests/temp_dir.h"
#include "tests/tls_certificate.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

json Body(const httplib::Result& result) {
  return tests::Body(result, std::nullopt);  // any status: the test checks it
}

/// What `runc list -q` says of the agent's runc root under `data_dir`: the
/// containers it left behind, one id a line ("" when none).
std::string RuncContainers(const fs::path& data_dir) {
  auto listed =
      core::RunSubprocess({{"/usr/sbin/runc", "--root", (data_dir / "runc").string(), "list", "-q"},
                           {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"},
                           std::nullopt,
                           core::Output::Capture(),
                           core::Output::Capture()});
  REQUIRE(listed.ok());
  return listed->stdout_text;
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
                {"long",
                 {{"image", image},
                  {"command", {"/bin/sh", "-c", "sleep $0; echo slept $0"}},
                  {"max_containers", 1}}},
                {"single",
                 {{"image", image},
                  {"command", {"/bin/sh", "-c", "sleep 0.3; echo $0"}},
                  {"max_containers", 1}}},
                {"reader",
                 {{"image", image},
                  {"command", {"/bin/cat", "/data/tries"}},
                  {"volumes", {{"/data", "data"}}}}},
                {"secretive",
                 {{"image", image},
                  // The secret reached the env if its hash is right; it is never printed.
                  {"command",
                   {"/bin/sh", "-c", "echo ${#DB_PASSWORD}; echo -n $DB_PASSWORD | sha256sum"}},
                  {"secrets", {"db"}}}},
                {"gpujob",
                 {{"image", image},
                  {"command", {"/bin/sh", "-c", "echo $NVIDIA_VISIBLE_DEVICES"}},
                  {"gpu", {{"type", "H100"}, {"count", 1}}}}},
                {"trainer", {{"image", image}, {"gpu", {{"type", "A100"}, {"count", 1}}}}},
                {"stream",
                 {{"image", image},
                  // Says "first", then waits for the test's go-ahead in its volume.
                  {"command",
                   {"/bin/sh", "-c",
                    "echo first; while [ ! -e /data/go ]; do sleep 0.05; done; echo second; exit "
                    "4"}},
                  {"volumes", {{"/data", "data"}}}}}}}}}}}};
}

/// The desired state `Desired` makes at `generation` without the volume
/// `data` (in no function either).
json WithoutVolume(int generation, const std::string& digest) {
  json desired = Desired(generation, digest);
  desired["apps"]["demo"]["volumes"] = json::array();
  for (const char* function : {"flaky", "reader", "stream"})
    desired["apps"]["demo"]["functions"][function].erase("volumes");
  return desired;
}

/// POST …/calls?wait=true with `Accept: application/x-ndjson`: each line
/// of the stream, parsed, goes to `on_event` as it arrives, which says
/// whether to read on (false: the client goes away).
httplib::Result StreamedCall(httplib::Client& client, const std::string& function,
                             const std::function<bool(const json&)>& on_event) {
  httplib::Request request;
  request.method = "POST";
  request.path = "/v1/apps/demo/functions/" + function + "/calls?wait=true";
  request.headers = {{"Accept", "application/x-ndjson"}, {"Content-Type", "application/json"}};
  request.body = "{}";
  std::string pending;
  request.content_receiver = [&](const char* data, std::size_t length, std::uint64_t,
                                 std::uint64_t) {
    pending.append(data, length);
    for (std::size_t end; (end = pending.find('\n')) != std::string::npos;) {
      json event = json::parse(pending.substr(0, end), nullptr, false);
      pending.erase(0, end + 1);
      if (!on_event(event)) return false;
    }
    return true;
  };
  return client.send(request);
}

/// GET /v1/calls/ID until the call has ended (at most about 20 s).
json FinishedCall(httplib::Client& client, const std::string& id) {
  json call;
  for (int i = 0; i < 1000; ++i) {
    call = Body(client.Get("/v1/calls/" + id));
    if (call["state"] != "queued" && call["state"] != "running") break;
    std::this_thread::sleep_for(20ms);
  }
  return call;
}

httplib::Result Put(httplib::Client& client, const json& document) {
  return client.Put("/v1/desired", document.dump(), "application/json");
}

/// gantry_api_streams{route="ROUTE"} of the agent's /metrics: how many
/// responses of that route (`logs`, `calls`) it is streaming now.
int OpenStreams(httplib::Client& client, const std::string& route) {
  auto metrics = client.Get("/metrics");
  REQUIRE(metrics);
  REQUIRE(metrics->status == 200);
  const std::string series = "gantry_api_streams{route=\"" + route + "\"} ";
  std::size_t at = metrics->body.find(series);
  INFO(metrics->body);
  REQUIRE(at != std::string::npos);
  return std::stoi(metrics->body.substr(at + series.size()));
}

/// A blob of the content store at `blob` swapped for a FIFO: the agent's
/// read of it (for its digest) waits until Release() writes the blob's
/// bytes into it; the file itself is back in place for any read after.
class HeldBlob {
 public:
  HeldBlob(fs::path blob, fs::path aside)
      : blob_(std::move(blob)), aside_(std::move(aside)), bytes_(core::ReadFile(blob_).value()) {
    fs::rename(blob_, aside_);
    REQUIRE(mkfifo(blob_.c_str(), 0600) == 0);
  }
  ~HeldBlob() {
    if (!released_) Release();
  }
  HeldBlob(const HeldBlob&) = delete;
  HeldBlob& operator=(const HeldBlob&) = delete;

  /// Waits (about 30 s at most, or until `gave_up()`) for the agent to
  /// open the FIFO: whether it did.
  bool WaitForReader(const std::function<bool()>& gave_up) {
    // A reader waiting on the FIFO (the agent) lets a non-blocking writer open it.
    for (int i = 0; i < 3000 && writer_ < 0 && !gave_up(); ++i) {
      writer_ = open(blob_.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
      if (writer_ < 0) std::this_thread::sleep_for(10ms);
    }
    return writer_ >= 0;
  }

  /// The blob is the real file again, and the agent's read of the FIFO,
  /// still open, gets its bytes.
  void Release() {
    released_ = true;
    std::error_code error;
    fs::rename(aside_, blob_, error);
    if (writer_ < 0) return;
    fcntl(writer_, F_SETFL, 0);
    for (std::size_t done = 0; done < bytes_.size();) {
      ssize_t wrote = write(writer_, bytes_.data() + done, bytes_.size() - done);
      if (wrote <= 0) break;
      done += static_cast<std::size_t>(wrote);
    }
    close(writer_);
    writer_ = -1;
  }

 private:
  fs::path blob_;
  fs::path aside_;
  std::string bytes_;
  int writer_ = -1;
  bool released_ = false;
};

/// Adds to `store` the image `base` with one more layer, an uncompressed
/// tar of `items` (written under `work`): the new image's manifest digest
/// and its new layer's.
std::pair<std::string, std::string> ImageWithLayer(const fs::path& store, const std::string& base,
                                                   const std::vector<tests::TarItem>& items,
                                                   const fs::path& work) {
  auto opened = builder::ContentStore::Open(store);
  REQUIRE(opened);
  builder::ContentStore& content = *opened;
  const fs::path tar = work / "extra-layer.tar";
  std::string err;
  REQUIRE(tests::WriteTar(tar, items, /*gzip=*/false, &err));
  auto layer = content.PutBlob(core::ReadFile(tar).value(), builder::kOciLayerTarMediaType);
  REQUIRE(layer);
  json manifest = json::parse(content.ReadBlob(base).value());
  json config = json::parse(content.ReadBlob(manifest["config"]["digest"]).value());
  config["rootfs"]["diff_ids"].push_back(layer->digest);  // uncompressed: the same digest
  auto config_blob = content.PutBlob(config.dump(), builder::kOciConfigMediaType);
  REQUIRE(config_blob);
  manifest["config"] = config_blob->ToJson();
  manifest["layers"].push_back(layer->ToJson());
  auto manifest_blob = content.PutBlob(manifest.dump(), builder::kOciManifestMediaType);
  REQUIRE(manifest_blob);
  return {manifest_blob->digest, layer->digest};
}

json Call(httplib::Client& client, const std::string& function, const json& body,
          const std::string& app = "demo") {
  auto result = client.Post("/v1/apps/" + app + "/functions/" + function + "/calls?wait=true",
                            body.dump(), "application/json");
  REQUIRE(result);
  INFO(result->body);
  REQUIRE(result->status == 200);
  return json::parse(result->body);
}

TEST_CASE("the agent runs job calls in real runc containers", "[agent][runc]") {
  if (!tests::ContainersOrSkip()) return;
  tests::TempDir dir("gantry-agent-test");
  fs::path store = dir.path() / "store";
  std::string digest = tests::RequireBusyboxImage(dir.path(), store);
  fs::path data_dir = dir.path() / "agent";
  auto started_agent = tests::RequireAgent(data_dir, store, dir.path() / "agent.log");
  tests::AgentProcess& agent = *started_agent;
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

  SECTION("a call runs in a container of an image whose layers are zstd") {
    auto zstd = tests::BuildBusyboxImage(GANTRY_BINARY, dir.path() / "zstd", store, "zstd");
    INFO((zstd.ok() ? "" : zstd.error().message));
    REQUIRE(zstd.ok());
    auto content = builder::ContentStore::Open(store);
    REQUIRE(content);
    json manifest = json::parse(content->ReadBlob(*zstd).value());
    REQUIRE(manifest["layers"].size() == 2);
    for (const json& layer : manifest["layers"])
      CHECK(layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd");
    auto applied = Put(client, Desired(1, *zstd));
    REQUIRE(applied);
    INFO(applied->body);
    REQUIRE(applied->status == 200);
    json echo = Call(client, "echo", {{"args", {"zstd"}}, {"stdin", "from stdin\n"}});
    CHECK(echo["stdout"] == "hello agent zstd\nfrom stdin\n");
    CHECK(echo["exit_code"] == 3);
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
    CHECK(secret["stdout"] == "15\n" + core::Sha256Digest("s3cr3t-value-42").substr(7) + "  -\n");

    json node = Body(client.Get("/v1/node"));
    CHECK(Call(client, "gpujob", json::object())["stdout"] ==
          node["gpus"][0]["uuid"].get<std::string>() + "\n");

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

    // The function's log holds each attempt's output and how it ended.
    auto logs = client.Get("/v1/logs?app=demo&function=flaky");
    REQUIRE(logs);
    CHECK(logs->status == 200);
    CHECK(logs->body.find("\"attempt 1 exited with code 1\"") != std::string::npos);
    CHECK(logs->body.find("\"attempt 3 exited with code 0\"") != std::string::npos);
    auto app_logs = client.Get("/v1/logs?app=demo");
    REQUIRE(app_logs);
    CHECK(app_logs->body.find("\"hello agent world\"") != std::string::npos);
    CHECK(client.Get("/v1/logs?app=../etc")->status == 400);

    // A follower sees what later calls write.
    std::string followed;
    httplib::Client follower = agent.Client();
    std::thread follow([&] {
      follower.Get("/v1/logs?app=demo&function=echo&follow=1",
                   [&](const char* data, std::size_t length) {
                     followed.append(data, length);
                     return followed.find("followed-marker") == std::string::npos;
                   });
    });
    std::this_thread::sleep_for(300ms);
    Call(client, "echo", {{"args", {"followed-marker"}}});
    follow.join();
    CHECK(followed.find("hello agent followed-marker") != std::string::npos);

    // A volume's files survive a redeploy.
    json redeployed = Desired(2, digest);
    redeployed["apps"]["demo"]["functions"]["echo"]["env"]["NAME"] = "v2";
    auto second = Put(client, redeployed);
    REQUIRE(second);
    CHECK(second->status == 200);
    CHECK(Call(client, "reader", json::object())["stdout"] == "x\nx\nx\n");
    // Only an explicit delete removes it, and not while it is desired.
    auto refused_delete = client.Delete("/v1/apps/demo/volumes/data");
    REQUIRE(refused_delete);
    CHECK(refused_delete->status == 409);
    CHECK(fs::exists(data_dir / "volumes/demo/data/tries"));
    CHECK(Call(client, "echo", json::object())["stdout"] == "hello v2 \n");

    // Once no longer desired, the volume can be deleted, and then it is gone.
    json without_volume = WithoutVolume(3, digest);
    without_volume["apps"]["demo"]["functions"]["echo"]["env"]["NAME"] = "v2";
    REQUIRE(Put(client, without_volume)->status == 200);
    CHECK(fs::exists(data_dir / "volumes/demo/data/tries"));
    auto deleted = client.Delete("/v1/apps/demo/volumes/data");
    REQUIRE(deleted);
    CHECK(deleted->status == 200);
    CHECK_FALSE(fs::exists(data_dir / "volumes/demo/data"));
    CHECK(client.Delete("/v1/apps/demo/volumes/data")->status == 404);
  }

  SECTION("calls beyond max_containers wait their turn, in order") {
    REQUIRE(Put(client, Desired(1, digest))->status == 200);
    std::vector<std::string> ids;
    for (int i = 0; i < 3; ++i) {
      auto queued = client.Post("/v1/apps/demo/functions/single/calls",
                                json{{"args", {std::to_string(i)}}}.dump(), "application/json");
      REQUIRE(queued);
      REQUIRE(queued->status == 202);
      ids.push_back(json::parse(queued->body)["id"]);
    }
    bool saw_queue = false;
    std::vector<json> calls;
    for (int i = 0; i < 500; ++i) {
      json function = Body(client.Get("/v1/status"))["apps"]["demo"]["functions"]["single"];
      CHECK(function["running_containers"].get<int>() <= 1);
      saw_queue = saw_queue || function["queued_calls"].get<int>() > 0;
      calls.clear();
      for (const std::string& id : ids) calls.push_back(Body(client.Get("/v1/calls/" + id)));
      if (std::all_of(calls.begin(), calls.end(),
                      [](const json& call) { return call["state"] == "succeeded"; }))
        break;
      std::this_thread::sleep_for(20ms);
    }
    CHECK(saw_queue);
    for (std::size_t i = 0; i < calls.size(); ++i) {
      REQUIRE(calls[i]["state"] == "succeeded");
      CHECK(calls[i]["stdout"] == std::to_string(i) + "\n");
      // One at a time, in the order they came.
      if (i > 0)
        CHECK(calls[i]["started_ms"].get<std::int64_t>() >=
              calls[i - 1]["finished_ms"].get<std::int64_t>());
    }
  }

  SECTION(
      "an image missing from the store is reported, and pushing again after it arrives runs it") {
    fs::path manifest = store / "blobs/sha256" / digest.substr(7);
    fs::path aside = dir.path() / "manifest-aside";
    fs::rename(manifest, aside);
    REQUIRE(Put(client, Desired(1, digest))->status == 200);
    json echo = Body(client.Get("/v1/status"))["apps"]["demo"]["functions"]["echo"];
    CHECK(echo["schedulable"] == false);
    CHECK(echo["errors"][0].get<std::string>().find("is not in the content store") !=
          std::string::npos);
    CHECK(client.Post("/v1/apps/demo/functions/echo/calls?wait=true", "{}", "application/json")
              ->status == 409);

    fs::rename(aside, manifest);  // the image arrives
    REQUIRE(Body(Put(client, Desired(1, digest)))["changed"] == false);
    CHECK(Body(client.Get("/v1/status"))["apps"]["demo"]["functions"]["echo"]["schedulable"] ==
          true);
    CHECK(Call(client, "echo", json::object())["exit_code"] == 3);
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

  SECTION("the per-app routes change one app and keep the others, secrets included") {
    json image = {{"digest", digest}};
    json app_a = {{"functions", {{"hello", {{"image", image}, {"command", {"/bin/echo", "a1"}}}}}}};
    json app_b = {{"secrets", {{"tok", {{"B_SECRET", "b-secret-value-7"}}}}},
                  {"functions",
                   {{"show",
                     {{"image", image},
                      {"command", {"/bin/sh", "-c", "echo $B_SECRET"}},
                      {"secrets", {"tok"}}}}}}};
    auto put_app = [&](const std::string& app, const json& body) {
      return client.Put("/v1/desired/apps/" + app, body.dump(), "application/json");
    };
    auto app_body = [](int generation, const json& app) {
      return json{{"generation", generation}, {"app", app}};
    };
    CHECK(Body(put_app("a", app_body(1, app_a))) == json{{"generation", 1}, {"changed", true}});
    CHECK(Body(put_app("b", app_body(2, app_b))) == json{{"generation", 2}, {"changed", true}});
    json desired = Body(client.Get("/v1/desired"));
    CHECK(desired["generation"] == 2);
    CHECK(desired["apps"].size() == 2);
    CHECK(desired["apps"]["b"]["secrets"]["tok"]["B_SECRET"] == "(sensitive)");

    // Redeploying a cannot resend b's secret, and need not: b keeps it.
    app_a["functions"]["hello"]["command"][1] = "a2";
    CHECK(Body(put_app("a", app_body(3, app_a)))["changed"] == true);
    CHECK(Call(client, "hello", json::object(), "a")["stdout"] == "a2\n");
    CHECK(Call(client, "show", json::object(), "b")["stdout"] == "b-secret-value-7\n");
    CHECK(Body(put_app("a", app_body(3, app_a))) == json{{"generation", 3}, {"changed", false}});

    // Refused bodies change nothing.
    json before = Body(client.Get("/v1/desired"));
    auto stale = put_app("a", app_body(2, app_a));
    CHECK(stale->status == 409);
    CHECK(Body(stale)["error"]["message"] ==
          "generation 2 is stale: it is older than the applied generation 3");
    auto same_generation = put_app("b", app_body(3, app_a));
    CHECK(same_generation->status == 409);
    CHECK(Body(same_generation)["error"]["code"] == "conflict");
    json broken = app_a;
    broken["functions"]["hello"]["cpus"] = 2;
    auto malformed = put_app("a", app_body(4, broken));
    CHECK(malformed->status == 400);
    CHECK(Body(malformed)["error"]["message"] == "app.functions.hello.cpus: unknown field");
    json extra = app_body(4, app_a);
    extra["force"] = true;
    auto extra_member = put_app("a", extra);
    CHECK(extra_member->status == 400);
    CHECK(Body(extra_member)["error"]["message"] == "force: unknown field");
    auto no_generation = put_app("a", json{{"app", app_a}});
    CHECK(no_generation->status == 400);
    CHECK(Body(no_generation)["error"]["message"] == "generation: missing");
    CHECK(put_app("Bad", app_body(4, app_a))->status == 404);  // no route for such a name
    CHECK(Body(client.Get("/v1/desired")) == before);

    CHECK(client.Delete("/v1/desired/apps/zzz?generation=4")->status == 404);
    CHECK(client.Delete("/v1/desired/apps/a")->status == 400);
    CHECK(client.Delete("/v1/desired/apps/a?generation=four")->status == 400);
    CHECK(client.Delete("/v1/desired/apps/a?generation=3")->status == 409);
    CHECK(Body(client.Get("/v1/desired")) == before);
    CHECK(Body(client.Delete("/v1/desired/apps/a?generation=4")) ==
          json{{"generation", 4}, {"changed", true}});
    desired = Body(client.Get("/v1/desired"));
    CHECK(desired["generation"] == 4);
    CHECK(desired["apps"].size() == 1);
    CHECK(desired["apps"].contains("b"));
    CHECK(Call(client, "show", json::object(), "b")["stdout"] == "b-secret-value-7\n");
    CHECK(client.Post("/v1/apps/a/functions/hello/calls?wait=true", "{}", "application/json")
              ->status == 404);
    CHECK(agent.Log().find("b-secret-value-7") == std::string::npos);
  }

  SECTION(
      "SIGTERM stops in order: the running call is interrupted, the queued one runs on the next "
      "start") {
    REQUIRE(Put(client, Desired(1, digest))->status == 200);
    std::vector<std::string> ids;
    for (const char* seconds : {"30", "0"}) {
      auto queued = client.Post("/v1/apps/demo/functions/long/calls",
                                json{{"args", {seconds}}}.dump(), "application/json");
      REQUIRE(queued);
      REQUIRE(queued->status == 202);
      ids.push_back(json::parse(queued->body)["id"]);
    }
    for (int i = 0; i < 200 && Body(client.Get("/v1/calls/" + ids[0]))["state"] != "running"; ++i) {
      std::this_thread::sleep_for(20ms);
    }
    std::this_thread::sleep_for(300ms);  // runc has started the container
    REQUIRE(agent.Kill(SIGTERM).ok());   // returns once the agent has exited
    CHECK(agent.Log().find("stopping on signal") != std::string::npos);

    REQUIRE(agent.Restart().ok());
    auto restarted = agent.Client();
    CHECK(Body(restarted.Get("/v1/calls/" + ids[0]))["state"] == "interrupted");
    json second;
    for (int i = 0; i < 250; ++i) {
      second = Body(restarted.Get("/v1/calls/" + ids[1]));
      if (second["state"] == "succeeded") break;
      std::this_thread::sleep_for(20ms);
    }
    CHECK(second["state"] == "succeeded");
    CHECK(second["stdout"] == "slept 0\n");
  }

  SECTION("wait=true with Accept: application/x-ndjson streams the call as it runs") {
    REQUIRE(Put(client, Desired(1, digest))->status == 200);
    const fs::path go = data_dir / "volumes/demo/data/go";
    // The function's log is followed meanwhile: its lines come as written.
    std::mutex log_mutex;
    std::string log;
    std::thread follow([&] {
      httplib::Client follower = agent.Client();
      follower.set_read_timeout(30, 0);
      follower.Get("/v1/logs?app=demo&function=stream&follow=1",
                   [&](const char* data, std::size_t length) {
                     std::lock_guard lock(log_mutex);
                     log.append(data, length);
                     return log.find("attempt 1 exited with code 4") == std::string::npos;
                   });
    });
    auto log_has = [&](const std::string& text) {
      std::lock_guard lock(log_mutex);
      return log.find(text) != std::string::npos;
    };

    std::vector<json> events;
    std::string id, stdout_text, state_at_first;
    bool log_had_first = false;
    httplib::Client other = agent.Client();
    auto streamed = StreamedCall(client, "stream", [&](const json& event) {
      if (event.value("event", "") == "heartbeat") return true;  // a pause: the next section's
      events.push_back(event);
      if (event.value("event", "") == "call") id = event["call"]["id"];
      if (event.value("event", "") != "output") return true;
      stdout_text += event["text"].get<std::string>();
      if (stdout_text == "first\n") {
        // The call waits for the go-ahead: it has not ended.
        state_at_first = Body(other.Get("/v1/calls/" + id))["state"];
        for (int i = 0; i < 500 && !log_had_first; ++i) {
          log_had_first = log_has("\"text\":\"first\"");
          if (!log_had_first) std::this_thread::sleep_for(20ms);
        }
        std::ofstream(go).close();
      }
      return true;
    });
    if (!fs::exists(go)) std::ofstream(go).close();  // never leave the call waiting
    follow.join();
    REQUIRE(streamed);
    CHECK(streamed->status == 200);
    CHECK(streamed->get_header_value("Content-Type") == "application/x-ndjson");
    CHECK(state_at_first == "running");
    CHECK(log_had_first);
    CHECK(stdout_text == "first\nsecond\n");
    REQUIRE(events.size() >= 4);
    CHECK(events.front()["event"] == "call");
    CHECK(events.front()["call"]["state"] == "queued");
    CHECK(events[1] == json{{"event", "attempt"}, {"attempt", 1}});
    // The last line is the finished call.
    CHECK(events.back()["event"] == "end");
    CHECK(events.back()["call"]["id"] == id);
    CHECK(events.back()["call"]["exit_code"] == 4);
    CHECK(events.back()["call"]["state"] == "failed");
    // Every line is what schemas/call_event.schema.json says.
    for (std::size_t i = 0; i < events.size(); ++i) {
      fs::path file = dir.path() / ("event-" + std::to_string(i) + ".json");
      std::ofstream(file) << events[i].dump();
      auto checked = tests::CheckJsonSchema("call_event.schema.json", file);
      INFO(events[i].dump() << "\n" << checked.out << checked.err);
      CHECK(checked.exit_code == 0);
    }
    {
      std::lock_guard lock(log_mutex);
      CHECK(log.find("\"text\":\"second\"") != std::string::npos);
    }

    // A client that goes away mid-stream neither stops nor breaks the call.
    fs::remove(go);
    std::string second_id;
    StreamedCall(client, "stream", [&](const json& event) {
      if (event.value("event", "") == "call") second_id = event["call"]["id"];
      return event.value("event", "") != "output";  // gone at the first output
    });
    REQUIRE(!second_id.empty());
    CHECK(Body(client.Get("/v1/calls/" + second_id))["state"] == "running");
    std::ofstream(go).close();
    json second = FinishedCall(client, second_id);
    CHECK(second["state"] == "failed");
    CHECK(second["exit_code"] == 4);
    CHECK(second["stdout"] == "first\nsecond\n");
    // Without the header, wait=true still answers one document.
    CHECK(Call(client, "echo", json::object())["exit_code"] == 3);
  }

  SECTION("a client that closes its socket mid-stream releases the stream's thread") {
    REQUIRE(Put(client, Desired(1, digest))->status == 200);
    CHECK(OpenStreams(client, "logs") == 0);
    CHECK(OpenStreams(client, "calls") == 0);
    // The log of a function that writes nothing: only heartbeats come, and
    // the client closes its socket at the first.
    httplib::Client follower = agent.Client();
    follower.set_read_timeout(30, 0);
    json log_heartbeat;
    int logs_open = 0;
    follower.Get("/v1/logs?app=demo&function=reader&follow=1",
                 [&](const char* data, std::size_t length) {
                   std::string line(data, length);
                   log_heartbeat = json::parse(line.substr(0, line.find('\n')), nullptr, false);
                   logs_open = OpenStreams(client, "logs");
                   return false;
                 });
    CHECK(logs_open == 1);
    CHECK(log_heartbeat["heartbeat"] == true);
    CHECK(log_heartbeat["time_ms"].is_number_integer());
    // A streamed call that waits for the go-ahead in its volume: after its
    // first output only heartbeats come, and the client leaves at the first.
    const fs::path go = data_dir / "volumes/demo/data/go";
    httplib::Client caller = agent.Client();
    caller.set_read_timeout(30, 0);
    std::string id;
    json call_heartbeat;
    int calls_open = 0;
    StreamedCall(caller, "stream", [&](const json& event) {
      if (event.value("event", "") == "call") id = event["call"]["id"];
      if (event.value("event", "") != "heartbeat") return true;
      call_heartbeat = event;
      calls_open = OpenStreams(client, "calls");
      return false;
    });
    CHECK(calls_open == 1);
    REQUIRE(!id.empty());
    fs::path file = dir.path() / "heartbeat.json";
    std::ofstream(file) << call_heartbeat.dump();
    auto checked = tests::CheckJsonSchema("call_event.schema.json", file);
    INFO(call_heartbeat.dump() << "\n" << checked.out << checked.err);
    CHECK(checked.exit_code == 0);
    // Both clients are gone: the agent's next heartbeats find it out and
    // end both responses, while the call itself runs on.
    int logs_left = 1, calls_left = 1;
    for (int i = 0; i < 600 && (logs_left > 0 || calls_left > 0); ++i) {
      std::this_thread::sleep_for(100ms);
      logs_left = OpenStreams(client, "logs");
      calls_left = OpenStreams(client, "calls");
    }
    CHECK(logs_left == 0);
    CHECK(calls_left == 0);
    CHECK(Body(client.Get("/v1/calls/" + id))["state"] == "running");
    std::ofstream(go).close();
    CHECK(FinishedCall(client, id)["exit_code"] == 4);
  }

  SECTION("a web container's output reaches the function's log while it runs") {
    json desired = Desired(1, digest);
    desired["apps"]["demo"]["functions"]["server"] = {
        {"image", {{"digest", digest}}},
        {"command",
         {"/bin/sh", "-c",
          "echo server-starting; mkdir -p /www; exec httpd -f -p \"$PORT\" -h /www"}},
        {"web", json::object()},
        {"min_containers", 1}};
    REQUIRE(Put(client, desired)->status == 200);
    std::string log;
    httplib::Client follower = agent.Client();
    follower.set_read_timeout(30, 0);
    follower.Get("/v1/logs?app=demo&function=server&follow=1",
                 [&](const char* data, std::size_t length) {
                   log.append(data, length);
                   return log.find("server-starting") == std::string::npos;
                 });
    INFO(log);
    REQUIRE(log.find("\"text\":\"server-starting\"") != std::string::npos);
    // Its line (heartbeats may come before it while the container starts).
    std::size_t begin = log.rfind('\n', log.find("server-starting"));
    begin = begin == std::string::npos ? 0 : begin + 1;
    json line = json::parse(log.substr(begin, log.find('\n', begin) - begin));
    CHECK(line["stream"] == "stdout");
    CHECK(line["container"].get<std::string>().size() > 0);
    // Its container is still running: the line did not wait for it to stop.
    json server = Body(client.Get("/v1/status"))["apps"]["demo"]["functions"]["server"];
    REQUIRE(server["container_list"].size() == 1);
    CHECK(server["container_list"][0]["id"] == line["container"]);
  }

  SECTION("layers are unpacked outside the agent's lock: the status answers meanwhile") {
    // The image's last layer is a FIFO: the agent's read of it waits until
    // the test writes the layer's bytes into it.
    json manifest = json::parse(core::ReadFile(store / "blobs/sha256" / digest.substr(7)).value());
    std::string layer = manifest["layers"].back()["digest"];
    HeldBlob held(store / "blobs/sha256" / layer.substr(7), dir.path() / "layer-aside");
    std::atomic<int> applied_status = 0;
    std::thread apply([&] {
      httplib::Client putter = agent.Client();
      putter.set_read_timeout(120, 0);
      auto applied = Put(putter, Desired(1, digest));
      applied_status = applied ? applied->status : -1;
    });
    const bool held_read = held.WaitForReader([&] { return applied_status != 0; });
    // The agent is reading the layer now: the status answers, and says why
    // the functions wait; a call is told so.
    httplib::Client reader = agent.Client();
    reader.set_read_timeout(10, 0);
    auto status = reader.Get("/v1/status");
    auto early =
        reader.Post("/v1/apps/demo/functions/echo/calls?wait=true", "{}", "application/json");
    held.Release();
    apply.join();
    CHECK(held_read);
    REQUIRE(status);
    REQUIRE(status->status == 200);
    json echo = json::parse(status->body)["apps"]["demo"]["functions"]["echo"];
    CHECK(echo["schedulable"] == false);
    CHECK(echo["errors"].dump().find("is being unpacked") != std::string::npos);
    REQUIRE(early);
    CHECK(early->status == 409);
    CHECK(early->body.find("is being unpacked") != std::string::npos);
    CHECK(applied_status == 200);
    echo = Body(client.Get("/v1/status"))["apps"]["demo"]["functions"]["echo"];
    CHECK(echo["schedulable"] == true);
    CHECK(Call(client, "echo", json::object())["exit_code"] == 3);
  }

  SECTION(
      "a web function whose image changes is served by its old container until the new one "
      "is unpacked") {
    // The same command on both images: the new one has /www/version already.
    json desired = Desired(1, digest);
    desired["apps"]["demo"]["functions"]["site"] = {
        {"image", {{"digest", digest}}},
        {"command",
         {"/bin/sh", "-c",
          "mkdir -p /www; [ -e /www/version ] || echo old > /www/version; "
          "exec httpd -f -p \"$PORT\" -h /www"}},
        {"web", json::object()},
        {"min_containers", 1}};
    REQUIRE(Put(client, desired)->status == 200);
    httplib::Client visitor = agent.Client();
    visitor.set_read_timeout(60, 0);
    // The body of a 200, else what came instead (no REQUIRE: a thread is
    // running below, and a REQUIRE would end the test with it joinable).
    auto version = [&]() -> std::string {
      auto answer = visitor.Get("/apps/demo/site/version");
      if (!answer) return "no answer: " + httplib::to_string(answer.error());
      if (answer->status != 200) return std::to_string(answer->status) + " " + answer->body;
      return answer->body;
    };
    CHECK(version() == "old\n");
    // The new image's layer is read only once the test lets it.
    auto [new_digest, new_layer] = ImageWithLayer(
        store, digest, {tests::Folder("www"), tests::File("www/version", "new\n")}, dir.path());
    HeldBlob held(store / "blobs/sha256" / new_layer.substr(7), dir.path() / "layer-aside");
    desired["generation"] = 2;
    desired["apps"]["demo"]["functions"]["site"]["image"]["digest"] = new_digest;
    std::atomic<int> applied_status = 0;
    std::thread apply([&] {
      httplib::Client putter = agent.Client();
      putter.set_read_timeout(120, 0);
      auto applied = Put(putter, desired);
      applied_status = applied ? applied->status : -1;
    });
    const bool held_read = held.WaitForReader([&] { return applied_status != 0; });
    // Meanwhile the old container answers every request.
    auto during = client.Get("/v1/status");
    std::vector<std::string> answers;
    for (int i = 0; i < 10; ++i) answers.push_back(version());
    held.Release();
    apply.join();
    CHECK(held_read);
    CHECK(applied_status == 200);
    REQUIRE(during);
    CHECK(during->body.find("is being unpacked") != std::string::npos);
    for (const std::string& answer : answers) CHECK(answer == "old\n");
    // Then the new image's container takes over, and no request in between
    // goes unanswered.
    std::string last = version();
    for (int i = 0; i < 600 && last != "new\n"; ++i) {
      CHECK(last == "old\n");
      std::this_thread::sleep_for(50ms);
      last = version();
    }
    CHECK(last == "new\n");
  }

  SECTION("a volume an older generation's call still mounts is not deleted under it") {
    REQUIRE(Put(client, Desired(1, digest))->status == 200);
    auto queued = client.Post("/v1/apps/demo/functions/stream/calls", "{}", "application/json");
    REQUIRE(queued);
    REQUIRE(queued->status == 202);
    std::string id = json::parse(queued->body)["id"];
    for (int i = 0; i < 1000; ++i) {
      json call = Body(client.Get("/v1/calls/" + id + "?stdout_from=0"));
      if (call["stdout"] == "first\n") break;
      std::this_thread::sleep_for(20ms);
    }
    REQUIRE(Put(client, WithoutVolume(2, digest))->status == 200);
    auto refused = client.Delete("/v1/apps/demo/volumes/data");
    REQUIRE(refused);
    CHECK(refused->status == 409);
    CHECK(refused->body.find("is mounted by call " + id) != std::string::npos);
    CHECK(fs::is_directory(data_dir / "volumes/demo/data"));
    // The call carries on with it; once it has ended, the volume can go.
    std::ofstream(data_dir / "volumes/demo/data/go").close();
    json call = FinishedCall(client, id);
    CHECK(call["stdout"] == "first\nsecond\n");
    CHECK(call["exit_code"] == 4);
    auto deleted = client.Delete("/v1/apps/demo/volumes/data");
    REQUIRE(deleted);
    CHECK(deleted->status == 200);
    CHECK_FALSE(fs::exists(data_dir / "volumes/demo/data"));
  }

  SECTION("calls that ended over --call-retention ago are pruned at start with their output") {
    REQUIRE(Put(client, Desired(1, digest))->status == 200);
    auto run = [&] {
      auto queued = client.Post("/v1/apps/demo/functions/echo/calls", "{}", "application/json");
      REQUIRE(queued);
      REQUIRE(queued->status == 202);
      std::string id = json::parse(queued->body)["id"];
      REQUIRE(FinishedCall(client, id)["exit_code"] == 3);
      return id;
    };
    const std::string old_id = run(), recent_id = run();
    REQUIRE(fs::exists(data_dir / "calls" / old_id / "stdout"));
    REQUIRE(agent.Kill(SIGTERM).ok());
    // Back-dated while the agent is stopped: one call ended 8 days ago, and
    // one still queued since then.
    const std::int64_t eight_days_ms = 8LL * 24 * 3600 * 1000;
    const std::string queued_id = "call-0000000000000000000000aa";
    {
      auto records = agents::AgentRecords::Open(data_dir / "agent.db");
      REQUIRE(records.ok());
      auto found = (*records)->FindCall(old_id);
      REQUIRE(found.ok());
      REQUIRE(found->has_value());
      agents::CallRecord old = **found;
      old.created_ms -= eight_days_ms;
      old.started_ms -= eight_days_ms;
      old.finished_ms -= eight_days_ms;
      REQUIRE((*records)->SaveCall(old).ok());
      agents::CallRecord queued{queued_id, "demo", "echo", agents::CallState::kQueued,
                                0,         {},     "",     old.created_ms,
                                0,         0,      "{}"};
      REQUIRE((*records)->SaveCall(queued).ok());
      fs::create_directories(data_dir / "calls" / queued_id);  // made as a call is queued
    }
    // Folders no call names (a record that could not be saved, a crash
    // between the folder and the record): one untouched for 8 days, one new.
    const fs::path orphan = data_dir / "calls" / "call-0000000000000000000000bb";
    const fs::path new_orphan = data_dir / "calls" / "call-0000000000000000000000cc";
    fs::create_directories(orphan);
    fs::create_directories(new_orphan);
    std::ofstream(orphan / "stdout") << "left\n";
    fs::last_write_time(orphan, fs::last_write_time(orphan) - std::chrono::hours(8 * 24));
    // A folder as old whose call is on record (a recent one's) stays.
    const fs::path recent_folder = data_dir / "calls" / recent_id;
    fs::last_write_time(recent_folder,
                        fs::last_write_time(recent_folder) - std::chrono::hours(8 * 24));
    REQUIRE(agent.Restart().ok());  // the default retention, 7 days
    auto restarted = agent.Client();
    // Pruned by the agent's pruning thread, which starts with it.
    auto pruned = restarted.Get("/v1/calls/" + old_id);
    for (int i = 0; i < 500 && pruned && pruned->status != 404; ++i) {
      std::this_thread::sleep_for(20ms);
      pruned = restarted.Get("/v1/calls/" + old_id);
    }
    REQUIRE(pruned);
    CHECK(pruned->status == 404);
    CHECK_FALSE(fs::exists(data_dir / "calls" / old_id));
    // The same thread sweeps the folders no call names once its prune is
    // done, and logs it when the sweep ends.
    for (int i = 0;
         i < 500 && agent.Log().find("removed 1 call folders without a call") == std::string::npos;
         ++i) {
      std::this_thread::sleep_for(20ms);
    }
    CHECK(agent.Log().find("removed 1 call folders without a call") != std::string::npos);
    CHECK_FALSE(fs::exists(orphan));
    CHECK(fs::exists(new_orphan));
    json recent = Body(restarted.Get("/v1/calls/" + recent_id));
    CHECK(recent["stdout"] == "hello agent \n");
    CHECK(fs::exists(recent_folder / "stdout"));
    // The queued call is not pruned, however old: it runs.
    json rerun = FinishedCall(restarted, queued_id);
    INFO(rerun.dump());
    CHECK(rerun["exit_code"] == 3);
    CHECK(agent.Log().find("pruned 1 calls that ended over 168h ago") != std::string::npos);
    // A retention that is no duration is refused, in one line.
    auto refused = tests::RunGantry(
        {"agent", "--data-dir", (dir.path() / "other").string(), "--call-retention", "0s"});
    CHECK(refused.exit_code != 0);
    CHECK(refused.err.find("--call-retention: expected a duration of 1m or more") !=
          std::string::npos);
    CHECK_FALSE(fs::exists(dir.path() / "other"));
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
    REQUIRE(agent.Kill(SIGKILL).ok());

    REQUIRE(agent.Restart().ok());
    auto restarted = agent.Client();
    json status = Body(restarted.Get("/v1/status"));
    CHECK(status["generation"] == 1);
    json call = Body(restarted.Get("/v1/calls/" + id));
    CHECK(call["state"] == "interrupted");
    CHECK(RuncContainers(data_dir).empty());
    CHECK(fs::is_empty(data_dir / "containers"));
    // And it still runs calls.
    CHECK(Call(restarted, "secretive", json::object())["exit_code"] == 0);
  }
}

TEST_CASE("a container runc is creating when the agent gets SIGTERM is stopped", "[agent][runc]") {
  if (!tests::ContainersOrSkip()) return;
  tests::TempDir dir("gantry-agent-stop-test");
  fs::path store = dir.path() / "store";
  std::string digest = tests::RequireBusyboxImage(dir.path(), store);
  // The agent's runtime is runc behind a script that holds each `run`
  // (announced in `creating`) until the test lets it go on: the container
  // is made only after the agent has begun to stop. What the agent sends
  // the held `run` meanwhile (its SIGTERM) is noted, not obeyed.
  const fs::path creating = dir.path() / "creating", go = dir.path() / "go";
  const fs::path runtime = dir.path() / "runc";
  std::ofstream(runtime) << "#!/bin/sh\n"
                         << "case \" $* \" in *\" run \"*)\n"
                         << "  trap 'touch " << (dir.path() / "termed").string() << "' TERM\n"
                         << "  touch " << creating.string() << "\n"
                         << "  while [ ! -e " << go.string() << " ]; do sleep 0.01; done;;\n"
                         << "esac\n"
                         << "exec /usr/sbin/runc \"$@\"\n";
  fs::permissions(runtime, fs::perms::owner_all);
  fs::path data_dir = dir.path() / "agent";
  auto started_agent = tests::RequireAgent(data_dir, store, dir.path() / "agent.log",
                                           {"--runtime", runtime.string()});
  tests::AgentProcess& agent = *started_agent;
  auto client = agent.Client();
  REQUIRE(Put(client, Desired(1, digest))->status == 200);
  // `stream` says "first", then waits for a file that never comes.
  auto queued = client.Post("/v1/apps/demo/functions/stream/calls", "{}", "application/json");
  REQUIRE(queued);
  REQUIRE(queued->status == 202);
  std::string id = json::parse(queued->body)["id"];
  for (int i = 0; i < 1000 && !fs::exists(creating); ++i) std::this_thread::sleep_for(10ms);
  REQUIRE(fs::exists(creating));

  // SIGTERM now. The agent stops the attempt as it stops any: `runc kill`
  // finds no container yet, so it signals the `run`, which the script notes;
  // only then does runc make the container, during the stop's grace.
  const fs::path termed = dir.path() / "termed";
  std::atomic<bool> stopped = false;
  std::thread stop([&] { stopped = agent.Kill(SIGTERM).ok(); });
  for (int i = 0; i < 1000 && !fs::exists(termed); ++i) std::this_thread::sleep_for(10ms);
  const bool run_was_signalled = fs::exists(termed);
  std::ofstream(go).close();
  stop.join();
  INFO(agent.Log());
  CHECK(run_was_signalled);
  // It stopped in time (AgentProcess waits 10 s), and left no container.
  CHECK(stopped);
  CHECK(RuncContainers(data_dir).empty());
  CHECK(fs::is_empty(data_dir / "containers"));
  REQUIRE(agent.Restart().ok());
  auto restarted = agent.Client();
  json call = Body(restarted.Get("/v1/calls/" + id));
  CHECK(call["state"] == "interrupted");
  // Its container was made and stopped; on a slow host runc may still have
  // been making it when the grace ended (then it never printed).
  CHECK((call["stdout"] == "first\n" || call["stdout"] == ""));
}

TEST_CASE("the agent serves its API over TLS", "[agent][tls]") {
  if (!tests::ContainersOrSkip()) return;
  tests::TempDir dir("gantry-agent-tls-test");
  fs::path cert = dir.path() / "cert.pem";
  fs::path key = dir.path() / "key.pem";
  auto made = tests::MakeLoopbackCertificate(cert, key);
  INFO((made.ok() ? "" : made.error().message));
  REQUIRE(made.ok());

  const std::string digest = tests::RequireBusyboxImage(dir.path(), dir.path() / "store");
  auto started_agent =
      tests::RequireAgent(dir.path() / "agent", dir.path() / "store", dir.path() / "agent.log",
                          {"--tls-cert", cert.string(), "--tls-key", key.string()});
  tests::AgentProcess& agent = *started_agent;
  auto client = agent.Client();
  client.set_ca_cert_path(cert.c_str());
  client.enable_server_certificate_verification(true);
  json node = Body(client.Get("/v1/node"));
  CHECK(node["gpus"].size() == 1);
  auto anonymous = agent.Client(/*with_token=*/false);
  anonymous.set_ca_cert_path(cert.c_str());
  auto refused = anonymous.Get("/v1/node");
  REQUIRE(refused);
  CHECK(refused->status == 401);
  // The router reads and answers its own requests on TLS connections too.
  auto no_function = anonymous.Get("/apps/demo/nope/");
  REQUIRE(no_function);
  CHECK(no_function->status == 404);
  CHECK(Body(no_function)["error"]["message"] == "no web function demo/nope on this host");
  // A web function learns that its client came over TLS.
  const char* const kProtoServer = R"SH(
mkdir -p /www/cgi-bin
cat > /www/cgi-bin/proto <<'END'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
echo "proto=$HTTP_X_FORWARDED_PROTO"
END
chmod +x /www/cgi-bin/proto
exec httpd -f -p "$PORT" -h /www
)SH";
  json desired = {{"generation", 1},
                  {"apps",
                   {{"demo",
                     {{"functions",
                       {{"site",
                         {{"image", {{"digest", digest}}},
                          {"command", {"/bin/sh", "-c", kProtoServer}},
                          {"web", json::object()}}}}}}}}}};
  auto applied = client.Put("/v1/desired", desired.dump(), "application/json");
  REQUIRE(applied);
  INFO(applied->body);
  REQUIRE(applied->status == 200);
  auto proto = anonymous.Get("/apps/demo/site/cgi-bin/proto");
  REQUIRE(proto);
  CHECK(proto->status == 200);
  CHECK(proto->body == "proto=https\n");
  // Plain HTTP on the TLS port gets nothing.
  std::string address = core::ReadFile(dir.path() / "agent/address").value();
  CHECK(address.starts_with("https://127.0.0.1:"));
  httplib::Client plain("http://" + address.substr(8, address.find_last_not_of("\n") - 7));
  plain.set_connection_timeout(2, 0);
  plain.set_read_timeout(2, 0);
  auto cleartext = plain.Get("/healthz");
  CHECK((!cleartext || cleartext->status != 200));
}

TEST_CASE("the agent keeps more connections open than its API has threads", "[agent]") {
  if (!tests::ContainersOrSkip()) return;
  tests::TempDir dir("gantry-agent-connections-test");
  // Started with a soft open-files limit of 512, as a service's 1024 would
  // be for more connections: the agent raises it to the hard one.
  struct rlimit files {};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &files) == 0);
  struct rlimit lowered = {.rlim_cur = std::min<rlim_t>(512, files.rlim_cur),
                           .rlim_max = files.rlim_max};
  REQUIRE(setrlimit(RLIMIT_NOFILE, &lowered) == 0);
  auto started_agent = tests::AgentProcess::Start(GANTRY_BINARY, dir.path() / "agent",
                                                  dir.path() / "store", dir.path() / "agent.log");
  REQUIRE(setrlimit(RLIMIT_NOFILE, &files) == 0);  // before anything else can fail
  INFO((started_agent.ok() ? "" : started_agent.error().message));
  REQUIRE(started_agent.ok());
  const int port = (*started_agent)->port();
  // 600 kept-alive connections, beyond the API listener's 512 threads
  // (api_server.cc) and the soft limit it was started with, made one after
  // the other, then each asking twice.
  // Were each to hold a thread between requests, the last ones would wait
  // until the first idled out (5 s), which would then be closed before
  // their second request. With httplib's listen backlog of 5, one connect
  // in ten waited a second for its SYN's retry, and the first connections
  // idled out before the last was made.
  std::vector<core::UniqueFd> sockets;
  for (int i = 0; i < 600; ++i) {
    sockets.push_back(tests::ConnectLoopback(port));
    REQUIRE(sockets.back().valid());
  }
  for (int round = 0; round < 2; ++round) {
    int answered = 0;
    for (const core::UniqueFd& socket : sockets) {
      if (!tests::SendAll(socket.get(), "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")) continue;
      std::string answer = tests::ReadUntil(socket.get(), "{\"ok\":true}\n");
      if (answer.starts_with("HTTP/1.1 200") && answer.ends_with("{\"ok\":true}\n")) ++answered;
    }
    INFO("round " << round);
    CHECK(answered == 600);
  }
}

}  // namespace

TEST_CASE("the agent pulls a function's image from a registry, pinned to its digest",
          "[agent][registry][runc]") {
  if (!tests::CanRunContainers() || !tests::HasDockerRegistry()) {
    tests::Skip("needs root, /usr/sbin/runc, /bin/busybox and docker-registry");
    return;
  }
  tests::TempDir dir("gantry-agent-pull-test");
  // The image is built into a store the agent does not read, and pushed.
  const fs::path build_store = dir.path() / "build-store";
  std::string digest = tests::RequireBusyboxImage(dir.path(), build_store);
  auto registry = tests::DockerRegistry::Start(dir.path() / "registry");
  INFO((registry.ok() ? "" : registry.error().message));
  REQUIRE(registry.ok());
  auto store = builder::ContentStore::OpenExisting(build_store);
  REQUIRE(store.ok());
  builder::RegistryOptions options;
  options.insecure = true;
  builder::RegistryClient client((*registry)->domain(), options);
  auto pushed = client.Push(*store, digest, "team/box", "v1");
  INFO((pushed.ok() ? "" : pushed.error().message));
  REQUIRE(pushed.ok());

  auto started_agent = tests::RequireAgent(dir.path() / "agent", dir.path() / "agent-store",
                                           dir.path() / "agent.log");
  tests::AgentProcess& agent = *started_agent;
  auto api = agent.Client();
  const std::string reference = (*registry)->domain() + "/team/box:v1";
  json desired = {{"generation", 1},
                  {"apps",
                   {{"demo",
                     {{"functions",
                       {{"echo",
                         {{"image", {{"digest", digest}, {"reference", reference}}},
                          {"command", {"/bin/echo", "pulled"}}}},
                        {"stray",
                         {{"image",
                           {{"digest", "sha256:" + std::string(64, 'e')},
                            {"reference", (*registry)->domain() + "/team/nothing:v1"}}},
                          {"command", {"/bin/true"}}}}}}}}}}};
  REQUIRE(Put(api, desired)->status == 200);
  json call = Call(api, "echo", json::object());
  CHECK(call["state"] == "succeeded");
  CHECK(call["stdout"] == "pulled\n");
  CHECK(fs::exists(dir.path() / "agent-store" / "blobs" / "sha256" / digest.substr(7)));
  // What cannot be pulled says so in the status, and its calls are refused.
  json stray = Body(api.Get("/v1/status"))["apps"]["demo"]["functions"]["stray"];
  CHECK(stray["schedulable"] == false);
  CHECK(stray["errors"][0].get<std::string>().find("cannot be pulled") != std::string::npos);
}
