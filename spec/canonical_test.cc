#include "spec/canonical.h"

#include <catch2/catch.hpp>

#include "core/canonical_json.h"
#include "spec/spec_test_support.h"

using spec::testing::ErrorText;
using spec::testing::LoadLua;
using spec::testing::LoadYaml;
using spec::testing::TempDir;

namespace {

const char* kYaml = R"(app: hello
images:
  base:
    from: busybox:1.36
    steps:
      - run: "echo built > /etc/built"
      - env: {GREETING: hello}
      - workdir: /srv
    entrypoint: ["/bin/sh", "-c"]
functions:
  api:
    image: base
    command: ["httpd", "-f", "-p", "$PORT"]
    web: {port_env: PORT, health_path: /, queue_timeout: 2m, max_queued: 50}
    gpu: ["H100", "A100-80GB:2"]
    cpu: 1.5
    memory: 2Gi
    timeout: 300s
    retries: {max: 3, backoff: 2s}
    max_inputs: 4
    secrets: [hf]
    volumes: {/weights: models}
  nightly:
    image: base
    command: ["sh", "-c", "date"]
    schedule: {cron: "0 9 * * 1-5", timezone: Europe/Paris}
secrets:
  hf: {from_env: [HF_TOKEN]}
volumes:
  models: {}
budget: {monthly_usd: 200, on_exceed: stop}
)";

// The same app: keys reordered, comments added, units written differently,
// defaults spelled out.
const char* kReordered = R"(# the same app, written another way
budget: {on_exceed: stop, monthly_usd: 200.0}
volumes:
  models: {}   # weights live here
secrets:
  hf:
    from_env: [HF_TOKEN]
functions:
  nightly:
    schedule: {timezone: Europe/Paris, cron: "0  9 * * 1-5", catch_up: 1}
    command: [sh, -c, date]
    image: base
  api:
    volumes: {/weights/: models}
    secrets: [hf]
    max_inputs: 4
    retries: {backoff: 2000ms, max: 3}
    timeout: 5m
    memory: 2048Mi
    cpu: 1.5
    gpu: [h100, "A100-80GB:2"]
    web: {max_queued: 50.0, startup_timeout: 60, health_path: /, queue_timeout: 120s, port_env: PORT, auth: public}
    command: [httpd, -f, -p, $PORT]
    image: base
    min_containers: 0
    scaledown_window: 1m
images:
  base:
    entrypoint: [/bin/sh, -c]
    steps:
      - run: {command: "echo built > /etc/built", network: default}
      - env: {GREETING: hello}
      - workdir: /srv/
    from: docker.io/library/busybox:1.36
app: hello
)";

const char* kLua = R"(-- the same app in Lua
local base = "base"
return {
  app = "hello",
  images = {
    [base] = {
      from = "busybox:1.36",
      steps = {
        { run = "echo built > /etc/built" },
        { env = { GREETING = "hello" } },
        { workdir = "/srv" },
      },
      entrypoint = { "/bin/sh", "-c" },
    },
  },
  functions = {
    api = {
      image = base,
      command = { "httpd", "-f", "-p", "$PORT" },
      web = { port_env = "PORT", health_path = "/", queue_timeout = 2 * 60, max_queued = 100 / 2 },
      gpu = { "H100", "A100-80GB:2" },
      cpu = 1.5,
      memory = 2 * 1024 * 1024 * 1024,
      timeout = 300,
      retries = { max = 3, backoff = "2s" },
      max_inputs = 4,
      secrets = { "hf" },
      volumes = { ["/weights"] = "models" },
    },
    nightly = {
      image = base,
      command = { "sh", "-c", "date" },
      schedule = { cron = "0 9 * * 1-5", timezone = "Europe/Paris" },
    },
  },
  secrets = { hf = { from_env = { "HF_TOKEN" } } },
  volumes = { models = {} },
  budget = { monthly_usd = 200.0, on_exceed = "stop" },
}
)";

spec::App Load(const char* text, bool lua, const TempDir& dir) {
  auto result = lua ? LoadLua(text, dir) : LoadYaml(text, dir);
  INFO(ErrorText(result));
  REQUIRE(result.ok());
  return result.value();
}

}  // namespace

TEST_CASE("the same app in YAML, reordered YAML and Lua has the same canonical JSON and digests") {
  TempDir dir;
  spec::App yaml = Load(kYaml, false, dir);
  spec::App reordered = Load(kReordered, false, dir);
  spec::App lua = Load(kLua, true, dir);
  std::string canonical = core::CanonicalJson(spec::ToCanonicalJson(yaml));
  CHECK(core::CanonicalJson(spec::ToCanonicalJson(reordered)) == canonical);
  CHECK(core::CanonicalJson(spec::ToCanonicalJson(lua)) == canonical);
  spec::Digests digests = spec::ComputeDigests(yaml);
  CHECK(spec::ComputeDigests(reordered).ToJson() == digests.ToJson());
  CHECK(spec::ComputeDigests(lua).ToJson() == digests.ToJson());
}

TEST_CASE("canonical JSON fills defaults and normalises units") {
  TempDir dir;
  nlohmann::json app = spec::ToCanonicalJson(Load(kYaml, false, dir));
  const nlohmann::json& api = app["functions"]["api"];
  CHECK(api["memory"] == 2147483648ull);
  CHECK(api["timeout"] == 300);
  CHECK(api["retries"]["backoff"] == 2);
  CHECK(api["gpu"] == nlohmann::json({"H100:1", "A100-80GB:2"}));
  CHECK(api["scaledown_window"] == 60);
  CHECK(api["max_containers"] == 10);
  CHECK(api["web"]["auth"] == "public");
  CHECK(api["web"]["queue_timeout"] == 120);
  CHECK(api["web"]["max_queued"] == 50);
  CHECK(api["web"]["startup_timeout"] == 60);
  CHECK(app["images"]["base"]["from"] == "docker.io/library/busybox:1.36");
  CHECK(app["images"]["base"]["steps"][0]["run"]["network"] == "default");
  CHECK(app["images"]["base"]["steps"].back() ==
        nlohmann::json({{"entrypoint", {"/bin/sh", "-c"}}}));
  CHECK(app["functions"]["nightly"]["schedule"]["overlap"] == "skip");
  CHECK(app["functions"]["nightly"]["schedule"]["catch_up"] == 1);
}

TEST_CASE("canonical JSON is itself a spec that loads to the same digests") {
  TempDir dir;
  spec::App app = Load(kYaml, false, dir);
  std::string canonical = core::CanonicalJson(spec::ToCanonicalJson(app));
  spec::App again = Load(canonical.c_str(), false, dir);
  CHECK(spec::ComputeDigests(again).app == spec::ComputeDigests(app).app);
}

TEST_CASE("a change to one resource changes its digest and the app's, and no other") {
  TempDir dir;
  spec::Digests before = spec::ComputeDigests(Load(kYaml, false, dir));
  std::string edited = kYaml;
  edited.replace(edited.find("cpu: 1.5"), 8, "cpu: 2.5");
  spec::Digests after = spec::ComputeDigests(Load(edited.c_str(), false, dir));
  CHECK(after.functions.at("api") != before.functions.at("api"));
  CHECK(after.app != before.app);
  CHECK(after.functions.at("nightly") == before.functions.at("nightly"));
  CHECK(after.images == before.images);
  CHECK(after.secrets == before.secrets);
  CHECK(after.budget == before.budget);
}

TEST_CASE("compression is in an image's canonical JSON only when it is zstd") {
  TempDir dir;
  auto with = [&](const std::string& compression) {
    return spec::ToCanonicalJson(
        Load(("app: packing\nimages:\n  base:\n    from: scratch\n" + compression).c_str(), false,
             dir))["images"]["base"];
  };
  nlohmann::json plain = with("");
  CHECK(plain == nlohmann::json::parse(R"({"from":"scratch","steps":[]})"));
  CHECK(with("    compression: gzip\n") == plain);
  nlohmann::json zstd = with("    compression: zstd\n");
  CHECK(zstd["compression"] == "zstd");
  CHECK(core::CanonicalDigest(zstd) != core::CanonicalDigest(plain));
  std::string canonical = core::CanonicalJson(spec::ToCanonicalJson(
      Load("app: packing\nimages:\n  base: {from: scratch, compression: zstd}\n", false, dir)));
  CHECK(Load(canonical.c_str(), false, dir).images.at("base").compression ==
        spec::Compression::kZstd);
}

TEST_CASE("digests are stable across releases: changing the canonical form is a breaking change") {
  // Builders and planners key caches and state on these digests. If this
  // fails, the canonical form changed: that invalidates every user's cache
  // and state, so it must be deliberate (and noted in spec/README.md).
  TempDir dir;
  spec::Digests digests = spec::ComputeDigests(Load(kYaml, false, dir));
  CHECK(digests.volumes.at("models") == core::CanonicalDigest(nlohmann::json::object()));
  CHECK(digests.volumes.at("models") ==
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
  CHECK(digests.secrets.at("hf") ==
        core::CanonicalDigest(nlohmann::json::parse(R"({"from_env":["HF_TOKEN"]})")));
  CHECK(
      digests.functions.at("nightly") ==
      core::CanonicalDigest(nlohmann::json::parse(
          R"({"buffer_containers":0,"command":["sh","-c","date"],"cpu":0.125,"env":{},"gpu":[],"image":"base",
                "max_containers":10,"max_inputs":1,"memory":134217728,"min_containers":0,
                "retries":{"backoff":1,"max":0},"scaledown_window":60,
                "schedule":{"catch_up":1,"cron":"0 9 * * 1-5","overlap":"skip","timezone":"Europe/Paris"},
                "secrets":[],"timeout":300,"volumes":{}})")));
}
