// End-to-end tests of deploying with the planner: `gantry agents add`, `plan`, `apply`,
// `destroy` and `status` against two real agents on loopback (fake GPUs,
// real runc), with the state file and saved plans on disk.

#include <httplib.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/atomic_file.h"
#include "planner/deploy_state.h"
#include "tests/agent_fixture.h"
#include "tests/agent_process.h"
#include "tests/busybox_image.h"
#include "tests/docker_registry.h"
#include "tests/gantry_command.h"
#include "tests/temp_dir.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kSecretValue[] = "s3cr3t-planner-value-77";

// The app: a warm web function, GPU jobs with fallbacks, a schedule, a
// secret and a volume. `train_env` and `extra` let a test edit it.
std::string AppYaml(const std::string& train_env = "first", const std::string& extra = "") {
  return R"(app: fleet
images:
  box:
    from: scratch
    steps:
      - copy: {src: ./bin, dst: /bin}
      - run: /bin/busybox --install -s /bin
secrets:
  api: {from_env: [PLANNER_TEST_API_TOKEN]}
volumes:
  data: {}
functions:
  site:
    image: box
    command: ["/bin/sh", "-c", "mkdir -p /www && echo hi > /www/index.html && exec httpd -f -p \"$PORT\" -h /www"]
    web: true
    min_containers: 1
    max_containers: 2
  train:
    image: box
    command: ["/bin/sh", "-c", "echo \"$MODE $API_TOKEN_LEN\""]
    env: {MODE: )" +
         train_env + R"(}
    gpu: H100
    secrets: [api]
  infer:
    image: box
    command: ["/bin/true"]
    gpu: ["H100:4", "A100-80GB:1"]
  nightly:
    image: box
    command: ["/bin/sh", "-c", "date >> /data/runs"]
    schedule: {cron: "0 3 * * *", timezone: Europe/Berlin}
    volumes: {/data: data}
)" + extra;
}

class Fleet {
 public:
  /// With `agents_share_store` false each agent starts with an empty store
  /// of its own, so its images must come from a registry.
  explicit Fleet(bool agents_share_store = true) : agents_share_store_(agents_share_store) {
    REQUIRE(tests::CanRunContainers());
    store_ = dir_.path() / "store";
    auto digest = tests::BuildBusyboxImage(GANTRY_BINARY, dir_.path(), store_);
    INFO((digest.ok() ? "" : digest.error().message));
    REQUIRE(digest.ok());
    digest_ = *digest;
    spec_ = dir_.path() / "context/app.yaml";
    WriteSpec(AppYaml());
    h100_ = StartAgent("h100", "fake:H100x2");
    a100_ = StartAgent("a100", "fake:A100-80GBx2");
    for (auto* agent : {h100_.get(), a100_.get()}) {
      std::string name = agent == h100_.get() ? "gpu-h100" : "gpu-a100";
      auto added = Gantry(agent->AddArgs(name));
      INFO(added.err);
      REQUIRE(added.exit_code == 0);
    }
  }

  void WriteSpec(const std::string& yaml) { std::ofstream(spec_, std::ios::trunc) << yaml; }

  // Runs gantry with this fleet's home and secret; every output is kept so
  // that the test can check that no secret or token ever appeared.
  tests::CommandOutput Gantry(std::vector<std::string> args) {
    auto output = tests::RunGantry(
        args, {"GANTRY_HOME=" + (dir_.path() / "home").string(),
               std::string("PLANNER_TEST_API_TOKEN=") + kSecretValue, "NO_COLOR=1"});
    outputs_ += output.out + output.err;
    return output;
  }
  tests::CommandOutput Plan(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"plan", spec_.string(), "--store", store_.string(), "-q"};
    args.insert(args.end(), extra.begin(), extra.end());
    return Gantry(args);
  }
  tests::CommandOutput Apply(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"apply",         spec_.string(), "--store",
                                     store_.string(), "-q",           "--yes"};
    args.insert(args.end(), extra.begin(), extra.end());
    return Gantry(args);
  }

  json AppOn(const tests::AgentProcess& agent) {
    auto result = agent.Client().Get("/v1/desired");
    REQUIRE(result);
    json desired = json::parse(result->body);
    return desired["apps"].value("fleet", json());
  }

  fs::path state_path() const { return dir_.path() / "context/.gantry/state/fleet.json"; }
  const fs::path& spec() const { return spec_; }
  const fs::path& store() const { return store_; }
  const fs::path& dir() const { return dir_.path(); }
  const std::string& digest() const { return digest_; }
  tests::AgentProcess& h100() { return *h100_; }
  tests::AgentProcess& a100() { return *a100_; }
  const std::string& outputs() const { return outputs_; }

 private:
  std::unique_ptr<tests::AgentProcess> StartAgent(const std::string& name,
                                                  const std::string& gpus) {
    fs::path store = agents_share_store_ ? store_ : dir_.path() / ("store-" + name);
    auto agent =
        tests::AgentProcess::Start(GANTRY_BINARY, dir_.path() / ("agent-" + name), store,
                                   dir_.path() / ("agent-" + name + ".log"), {"--gpus", gpus});
    INFO((agent.ok() ? "" : agent.error().message));
    REQUIRE(agent.ok());
    return std::move(*agent);
  }

  bool agents_share_store_;
  tests::TempDir dir_;
  fs::path store_, spec_;
  std::string digest_;
  std::unique_ptr<tests::AgentProcess> h100_, a100_;
  std::string outputs_;
};

// The lines of a rendered plan that start resources: "  + function \"site\" {".
std::vector<std::string> ResourceLines(const std::string& plan) {
  std::vector<std::string> lines;
  std::regex resource(R"(^(  \+|  ~|-/\+|  -) (\w+)( "[^"]*")?)");
  std::istringstream in(plan);
  for (std::string line; std::getline(in, line);) {
    std::smatch match;
    if (std::regex_search(line, match, resource)) lines.push_back(match.str(0));
  }
  return lines;
}

// Checks a plan document against schemas/plan.schema.json with Debian's
// python3-jsonschema (what tests/schema_test.py uses too).
void CheckPlanSchema(const fs::path& plan_file) {
  auto checked = tests::CheckJsonSchema("plan.schema.json", plan_file);
  INFO(checked.err);
  CHECK(checked.exit_code == 0);
}

}  // namespace

TEST_CASE("plan, apply, change, plan and destroy an app over two agents", "[planner]") {
  if (!tests::ContainersOrSkip()) return;
  Fleet fleet;

  // A first plan creates everything; functions land where their GPUs are.
  auto plan = fleet.Plan();
  INFO(plan.out << plan.err);
  REQUIRE(plan.exit_code == 0);
  CHECK(ResourceLines(plan.out) ==
        std::vector<std::string>{"  + image \"box\"", "  + secret \"api\"", "  + volume \"data\"",
                                 "  + function \"infer\"", "  + function \"nightly\"",
                                 "  + function \"site\"", "  + function \"train\"",
                                 "  + schedule \"nightly\""});
  CHECK(plan.out.find("Plan: 8 to add, 0 to change, 0 to destroy.") != std::string::npos);
  CHECK(plan.out.find("train    gpu-h100 H100:1") != std::string::npos);
  CHECK(plan.out.find("infer    gpu-a100 A100-80GB:1") != std::string::npos);
  CHECK(plan.out.find("value.PLANNER_TEST_API_TOKEN = (sensitive)") != std::string::npos);
  CHECK_FALSE(fs::exists(fleet.state_path()));
  auto as_json = fleet.Plan({"--json"});
  REQUIRE(as_json.exit_code == 0);
  json document = json::parse(as_json.out);
  CHECK(document["summary"] == json{{"add", 8}, {"change", 0}, {"destroy", 0}});
  fs::path first_plan = fleet.dir() / "first.plan.json";
  REQUIRE(core::WriteFileAtomically(first_plan, as_json.out).ok());
  CheckPlanSchema(first_plan);

  // Apply pushes both agents and waits for the warm web container.
  auto applied = fleet.Apply();
  INFO(applied.out << applied.err);
  REQUIRE(applied.exit_code == 0);
  CHECK(applied.out.find("Apply complete! Resources: 8 added, 0 changed, 0 destroyed.") !=
        std::string::npos);
  json on_h100 = fleet.AppOn(fleet.h100());
  json on_a100 = fleet.AppOn(fleet.a100());
  CHECK(on_h100["functions"].contains("train"));
  CHECK(on_h100["functions"]["train"]["gpu"] == json{{"type", "H100"}, {"count", 1}});
  CHECK(on_a100["functions"]["infer"]["gpu"] == json{{"type", "A100-80GB"}, {"count", 1}});
  CHECK(on_a100["functions"].contains("infer"));
  CHECK_FALSE(on_a100["functions"].contains("train"));
  // The secret went only where a function uses it.
  CHECK(on_h100["secrets"].contains("api"));
  CHECK_FALSE(on_a100["secrets"].contains("api"));
  // The job sees the secret's value (its length, so the value is printed nowhere).
  auto call = fleet.h100().Client().Post("/v1/apps/fleet/functions/train/calls?wait=true",
                                         R"({"env": {}, "args": []})", "application/json");
  REQUIRE(call);
  INFO(call->body);
  REQUIRE(call->status == 200);
  CHECK(json::parse(call->body)["stdout"] == "first \n");

  // No change: an empty plan.
  plan = fleet.Plan();
  REQUIRE(plan.exit_code == 0);
  CHECK(plan.out.find("No changes.") != std::string::npos);
  CHECK(ResourceLines(plan.out).empty());

  // An edit yields exactly the expected plan.
  fleet.WriteSpec(AppYaml("second"));
  plan = fleet.Plan();
  INFO(plan.out);
  REQUIRE(plan.exit_code == 0);
  CHECK(ResourceLines(plan.out) == std::vector<std::string>{"  ~ function \"train\""});
  CHECK(plan.out.find("~ env.MODE = \"first\" -> \"second\"") != std::string::npos);
  CHECK(plan.out.find("Plan: 0 to add, 1 to change, 0 to destroy.") != std::string::npos);

  // A saved plan goes stale once another apply changed the state.
  fs::path saved = fleet.dir() / "edit.plan.json";
  REQUIRE(fleet.Plan({"--out", saved.string()}).exit_code == 0);
  CheckPlanSchema(saved);
  // Plans and state name every agent and hold keyed hashes: for their owner only.
  for (const fs::path& file : {saved, fleet.state_path()}) {
    auto others = fs::perms::group_all | fs::perms::others_all;
    CHECK((fs::status(file).permissions() & others) == fs::perms::none);
  }
  REQUIRE(fleet.Apply().exit_code == 0);
  auto stale = fleet.Gantry({"apply", saved.string(), "--yes"});
  CHECK(stale.exit_code == 1);
  CHECK(stale.err.find("the plan is stale") != std::string::npos);
  // A fresh saved plan applies exactly.
  fleet.WriteSpec(AppYaml("third"));
  REQUIRE(fleet.Plan({"--out", saved.string()}).exit_code == 0);
  auto exact = fleet.Gantry({"apply", saved.string(), "--yes"});
  INFO(exact.out << exact.err);
  CHECK(exact.exit_code == 0);
  CHECK(fleet.AppOn(fleet.h100())["functions"]["train"]["env"]["MODE"] == "third");

  // A new image digest replaces every function on it.
  fleet.WriteSpec(AppYaml("third", "") + "# new layer below\n");
  std::string replaced_yaml = AppYaml("third");
  replaced_yaml.replace(replaced_yaml.find("      - run: /bin/busybox --install -s /bin"),
                        std::string("      - run: /bin/busybox --install -s /bin").size(),
                        "      - run: /bin/busybox --install -s /bin && echo v2 > /version");
  fleet.WriteSpec(replaced_yaml);
  plan = fleet.Plan();
  INFO(plan.out);
  CHECK(ResourceLines(plan.out) ==
        std::vector<std::string>{"-/+ image \"box\"", "-/+ function \"infer\"",
                                 "-/+ function \"nightly\"", "-/+ function \"site\"",
                                 "-/+ function \"train\""});
  CHECK(plan.out.find("# forces replacement") != std::string::npos);

  // Nothing secret was ever shown or stored.
  auto state = core::ReadFile(fleet.state_path());
  REQUIRE(state.ok());
  auto saved_text = core::ReadFile(saved);
  REQUIRE(saved_text.ok());
  for (const std::string& text : {fleet.outputs(), *state, *saved_text}) {
    CHECK(text.find(kSecretValue) == std::string::npos);
    CHECK(text.find(fleet.h100().token()) == std::string::npos);
    CHECK(text.find(fleet.a100().token()) == std::string::npos);
  }

  // Destroy leaves both agents empty and the volume's files gone.
  auto destroyed = fleet.Gantry({"destroy", fleet.spec().string(), "--yes"});
  INFO(destroyed.out << destroyed.err);
  REQUIRE(destroyed.exit_code == 0);
  CHECK(destroyed.out.find("Destroy complete!") != std::string::npos);
  CHECK(fleet.AppOn(fleet.h100()).is_null());
  CHECK(fleet.AppOn(fleet.a100()).is_null());
  auto after = planner::ReadState(fleet.state_path());
  REQUIRE(after.ok());
  REQUIRE(after->has_value());
  CHECK((*after)->agents.empty());
  CHECK(fleet.Plan({"--destroy"}).out.find("No changes.") != std::string::npos);
}

namespace {

// The running usage records of the app on an agent: which containers run now.
std::set<std::string> RunningRecords(tests::AgentProcess& agent) {
  auto usage = agent.Client().Get("/v1/usage?app=fleet");
  REQUIRE(usage);
  REQUIRE(usage->status == 200);
  std::set<std::string> running;
  const json records = json::parse(usage->body)["records"];
  for (const json& record : records)
    if (record["running"] == true) running.insert(record["id"].get<std::string>());
  return running;
}

}  // namespace

TEST_CASE("a budget is split over the agents and changed in place", "[planner][budget]") {
  if (!tests::ContainersOrSkip()) return;
  Fleet fleet;
  fleet.WriteSpec(AppYaml("first", "budget: {daily_usd: 10, on_exceed: stop}\n"));
  auto plan = fleet.Plan();
  INFO(plan.out << plan.err);
  REQUIRE(plan.exit_code == 0);
  CHECK(plan.out.find("  budget: $10.00 a day, stopped at a cap") != std::string::npos);
  CHECK(plan.out.find("    gpu-a100  ") != std::string::npos);
  CHECK(plan.out.find("    gpu-h100  ") != std::string::npos);
  auto applied = fleet.Apply();
  INFO(applied.out << applied.err);
  REQUIRE(applied.exit_code == 0);
  double h100_cap = fleet.AppOn(fleet.h100())["budget"]["daily_usd"];
  double a100_cap = fleet.AppOn(fleet.a100())["budget"]["daily_usd"];
  CHECK(h100_cap > 0);
  CHECK(a100_cap > 0);
  CHECK(h100_cap + a100_cap <= 10);
  CHECK(h100_cap + a100_cap > 9.99);
  plan = fleet.Plan();
  CHECK(plan.out.find("No changes.") != std::string::npos);

  // A raised budget is an update in place: the warm web container goes on.
  std::set<std::string> running = RunningRecords(fleet.h100());
  for (const std::string& id : RunningRecords(fleet.a100())) running.insert(id);
  REQUIRE_FALSE(running.empty());
  fleet.WriteSpec(AppYaml("first", "budget: {daily_usd: 20, on_exceed: stop}\n"));
  plan = fleet.Plan();
  CHECK(ResourceLines(plan.out) == std::vector<std::string>{"  ~ budget"});
  applied = fleet.Apply();
  REQUIRE(applied.exit_code == 0);
  CHECK(fleet.AppOn(fleet.h100())["budget"]["daily_usd"].get<double>() == Approx(2 * h100_cap));
  CHECK(fleet.AppOn(fleet.a100())["budget"]["daily_usd"].get<double>() == Approx(2 * a100_cap));
  std::set<std::string> after = RunningRecords(fleet.h100());
  for (const std::string& id : RunningRecords(fleet.a100())) after.insert(id);
  CHECK(after == running);
  json status = json::parse(fleet.h100().Client().Get("/v1/status")->body);
  CHECK(status["apps"]["fleet"]["budget"]["state"] == "ok");
}

TEST_CASE("drift is shown and repaired, and bad plans change nothing", "[planner]") {
  if (!tests::ContainersOrSkip()) return;
  Fleet fleet;
  REQUIRE(fleet.Apply().exit_code == 0);
  auto serial = [&] {
    auto state = planner::ReadState(fleet.state_path());
    REQUIRE(state.ok());
    REQUIRE(state->has_value());
    return (*state)->serial;
  };
  const auto applied_serial = serial();

  // Someone removed the app from one agent behind gantry's back: what ran
  // there shows as drift, and the plan creates it again.
  json lost = fleet.AppOn(fleet.h100());
  std::vector<std::string> expected;
  for (const char* sign : {"  - ", "  + "}) {
    for (const auto& [name, pairs] : lost["secrets"].items())
      expected.push_back(sign + std::string("secret \"") + name + "\"");
    for (const auto& [name, function] : lost["functions"].items())
      expected.push_back(sign + std::string("function \"") + name + "\"");
  }
  REQUIRE(lost["functions"].contains("train"));
  REQUIRE(lost["volumes"].empty());
  auto removed = fleet.h100().Client().Delete("/v1/desired/apps/fleet?generation=100");
  REQUIRE(removed);
  REQUIRE(removed->status == 200);
  auto plan = fleet.Plan();
  INFO(plan.out << plan.err);
  REQUIRE(plan.exit_code == 0);
  CHECK(plan.out.find("Objects have changed outside gantry") != std::string::npos);
  CHECK(plan.out.find("# function.train is gone from its agent") != std::string::npos);
  CHECK(ResourceLines(plan.out) == expected);
  CHECK(plan.out.find("Plan: " + std::to_string(expected.size() / 2) +
                      " to add, 0 to change, 0 to destroy.") != std::string::npos);
  // gantry status with the spec compares with what the last apply pushed.
  auto drifted = fleet.Gantry({"status", fleet.spec().string(), "--json"});
  INFO(drifted.out << drifted.err);
  REQUIRE(drifted.exit_code == 0);
  bool train_gone = false;
  const json drifted_rows = json::parse(drifted.out)["functions"];
  for (const json& row : drifted_rows) {
    if (row["function"] == "train" && row["agent"] == "gpu-h100") {
      train_gone = row["drift"] == true &&
                   row["problem"].get<std::string>().find("gone from the agent") == 0;
    }
  }
  CHECK(train_gone);
  // The next apply repairs it.
  REQUIRE(fleet.Apply().exit_code == 0);
  CHECK(fleet.AppOn(fleet.h100())["functions"].contains("train"));
  CHECK(fleet.Plan().out.find("No changes.") != std::string::npos);

  // An agent that restarts keeps what it was pushed: nothing to do.
  REQUIRE(fleet.h100().Kill(SIGKILL).ok());
  REQUIRE(fleet.h100().Restart().ok());
  // (its port changed: register it again under the same name)
  REQUIRE(fleet.Gantry({"agents", "rm", "gpu-h100"}).exit_code == 0);
  REQUIRE(fleet.Gantry(fleet.h100().AddArgs("gpu-h100")).exit_code == 0);
  plan = fleet.Plan();
  INFO(plan.out << plan.err);
  CHECK(plan.out.find("No changes.") != std::string::npos);

  const auto before_bad = serial();
  CHECK(before_bad > applied_serial);
  // A function no agent can run: the plan fails with the reason, nothing changes.
  fleet.WriteSpec(AppYaml("first", R"(  big:
    image: box
    command: ["/bin/true"]
    gpu: ["B200:8", "H200"]
)"));
  auto refused = fleet.Apply();
  CHECK(refused.exit_code == 1);
  CHECK(refused.err.find("big") != std::string::npos);
  CHECK(refused.err.find("B200:8") != std::string::npos);
  CHECK_FALSE(fleet.AppOn(fleet.h100())["functions"].contains("big"));
  CHECK(serial() == before_bad);

  // A missing secret: refused before anything is pushed, the value never shown.
  fleet.WriteSpec(AppYaml("first"));
  auto no_secret = tests::RunGantry(
      {"apply", fleet.spec().string(), "--store", fleet.store().string(), "-q", "--yes"},
      {"GANTRY_HOME=" + (fleet.dir() / "home").string()});
  CHECK(no_secret.exit_code == 1);
  CHECK(no_secret.err.find("PLANNER_TEST_API_TOKEN") != std::string::npos);
  CHECK(serial() == before_bad);

  // A second apply while one holds the lock fails and says who holds it.
  {
    auto lock =
        planner::StateLock::Acquire(fleet.state_path(), "apply", std::chrono::milliseconds(0));
    REQUIRE(lock.ok());
    auto locked = fleet.Apply();
    CHECK(locked.exit_code == 1);
    CHECK(locked.err.find("is locked by apply (pid " + std::to_string(getpid())) !=
          std::string::npos);
  }
  CHECK(serial() == before_bad);

  // gantry status shows each function on each agent; the restarted agent
  // brings its warm container back (drift until then).
  json rows;
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto status = fleet.Gantry({"status", "fleet", "--json"});
    INFO(status.out << status.err);
    REQUIRE(status.exit_code == 0);
    rows = json::parse(status.out)["functions"];
    bool drift = false;
    for (const json& row : rows) drift = drift || row["drift"] == true;
    if (!drift) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  INFO(rows.dump(2) << fleet.h100().Log());
  CHECK(rows.size() == 4);
  for (const json& row : rows) {
    if (row["function"] == "site") {
      CHECK(row["desired"] == 1);
      // Why it runs what it does: its one warm container, no request yet.
      CHECK(row["scaling"].get<std::string>().starts_with("min_containers 1 kept warm"));
    }
    if (row["function"] == "nightly") {
      // Its next run, 03:00 in Berlin, as its agent has it.
      CHECK(std::regex_match(row["schedule"].value("next_fire", ""),
                             std::regex(R"(\d{4}-\d\d-\d\dT03:00:00\+0[12]:00)")));
    }
    if (row["function"] == "train") CHECK(row["agent"] == "gpu-h100");
    if (row["function"] == "infer") CHECK(row["agent"] == "gpu-a100");
    CHECK(row["drift"] == false);
  }
  auto table = fleet.Gantry({"status", "fleet"});
  INFO(table.out);
  CHECK(table.out.find("scaling: min_containers 1 kept warm") != std::string::npos);
  CHECK(std::regex_search(
      table.out, std::regex(R"(\n +schedule: next \d{4}-\d\d-\d\dT03:00:00\+0[12]:00\n)")));

  // An agent that goes down after a plan was saved: applying it is refused
  // before anything is pushed to the other one, and planning names it.
  std::string both = AppYaml("fourth");  // train on gpu-h100, infer on gpu-a100 change
  both.replace(both.find(R"(command: ["/bin/true"]
    gpu: ["H100:4")"),
               std::string(R"(command: ["/bin/true"])").size(),
               R"(command: ["/bin/true", "again"])");
  fleet.WriteSpec(both);
  fs::path saved = fleet.dir() / "down.plan.json";
  REQUIRE(fleet.Plan({"--out", saved.string()}).exit_code == 0);
  REQUIRE(fleet.a100().Kill(SIGKILL).ok());
  auto refused_down = fleet.Gantry({"apply", saved.string(), "--yes"});
  CHECK(refused_down.exit_code == 1);
  CHECK(refused_down.err.find("gpu-a100") != std::string::npos);
  CHECK(fleet.AppOn(fleet.h100())["functions"]["train"]["env"]["MODE"] == "first");
  CHECK(serial() == before_bad);
  auto unplanned = fleet.Plan();
  CHECK(unplanned.exit_code == 1);
  CHECK(unplanned.err.find("cannot refresh agent gpu-a100, which runs part of app fleet") !=
        std::string::npos);
  // Forgetting it moves what it ran elsewhere (infer, which only fits there, is dropped).
  std::string without_infer = AppYaml("fourth");
  without_infer.erase(without_infer.find("  infer:"),
                      without_infer.find("  nightly:") - without_infer.find("  infer:"));
  fleet.WriteSpec(without_infer);
  // A saved plan would not carry it: refused.
  CHECK(fleet.Plan({"--forget-agent", "gpu-a100", "--out", (fleet.dir() / "f.json").string()})
            .exit_code == 2);
  auto forgotten = fleet.Apply({"--forget-agent", "gpu-a100"});
  INFO(forgotten.out << forgotten.err);
  REQUIRE(forgotten.exit_code == 0);
  CHECK(forgotten.err.find("forgetting agent gpu-a100") != std::string::npos);
  auto state = planner::ReadState(fleet.state_path());
  REQUIRE(state.ok());
  REQUIRE(state->has_value());
  CHECK((*state)->agents.size() == 1);
  CHECK((*state)->agents.count("gpu-h100") == 1);
  CHECK(fleet.AppOn(fleet.h100())["functions"].contains("nightly"));
  CHECK(fleet.AppOn(fleet.h100())["functions"].contains("site"));

  for (const std::string& text : {fleet.outputs()}) {
    CHECK(text.find(kSecretValue) == std::string::npos);
    CHECK(text.find(fleet.h100().token()) == std::string::npos);
  }
}

TEST_CASE("agents without the images pull them from where the plan pushed them", "[planner]") {
  if (!tests::ContainersOrSkip()) return;
  REQUIRE(tests::HasDockerRegistry());
  tests::TempDir registry_dir;
  auto registry = tests::DockerRegistry::Start(registry_dir.path());
  INFO((registry.ok() ? "" : registry.error().message));
  REQUIRE(registry.ok());
  Fleet fleet(/*agents_share_store=*/false);
  const std::string to = (*registry)->domain() + "/team";

  auto applied = fleet.Apply({"--push-to", to});
  INFO(applied.out << applied.err);
  REQUIRE(applied.exit_code == 0);
  json train = fleet.AppOn(fleet.h100())["functions"]["train"];
  CHECK(train["image"] ==
        json{{"digest", fleet.digest()}, {"reference", to + "/box@" + fleet.digest()}});
  // The agent pulled the image into its own store and runs the job from it.
  auto call = fleet.h100().Client().Post("/v1/apps/fleet/functions/train/calls?wait=true",
                                         R"({"env": {}, "args": []})", "application/json");
  REQUIRE(call);
  INFO(call->body);
  REQUIRE(call->status == 200);
  CHECK(json::parse(call->body)["stdout"] == "first \n");
  // Pushing the same images again changes nothing.
  auto plan = fleet.Plan({"--push-to", to});
  INFO(plan.out << plan.err);
  CHECK(plan.out.find("No changes.") != std::string::npos);
}

namespace {

// An HTTP proxy in front of one agent that, while `fail_pushes` is set,
// answers every push of a desired state with 503, as an agent whose disk or
// network failed mid-apply would: the fault a real agent cannot be told to
// have. Everything else reaches the agent untouched.
class FailingProxy {
 public:
  explicit FailingProxy(std::string agent_address) : agent_(std::move(agent_address)) {
    auto forward = [this](const httplib::Request& request, httplib::Response& response) {
      const bool push = request.method == "PUT" || request.method == "DELETE";
      if (push && fail_pushes) {
        response.status = 503;
        response.set_content(R"({"error":{"code":"unavailable","message":"disk failed"}})",
                             "application/json");
        return;
      }
      httplib::Client client(agent_);
      httplib::Headers headers;
      for (const char* name : {"Authorization", "Content-Type"})
        if (request.has_header(name)) headers.emplace(name, request.get_header_value(name));
      const std::string target = httplib::append_query_params(request.path, request.params);
      httplib::Result result = request.method == "GET" ? client.Get(target, headers)
                               : request.method == "PUT"
                                   ? client.Put(target, headers, request.body, "application/json")
                               : request.method == "POST"
                                   ? client.Post(target, headers, request.body, "application/json")
                                   : client.Delete(target, headers);
      if (!result) {
        response.status = 502;
        return;
      }
      response.status = result->status;
      response.set_content(result->body, result->get_header_value("Content-Type"));
    };
    server_.Get(".*", forward);
    server_.Put(".*", forward);
    server_.Post(".*", forward);
    server_.Delete(".*", forward);
    port_ = server_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~FailingProxy() {
    server_.stop();
    thread_.join();
  }

  std::string address() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::atomic<bool> fail_pushes{true};

 private:
  std::string agent_;
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

}  // namespace

TEST_CASE(
    "an agent failing in the middle of an apply leaves the others recorded and a rerun "
    "converges",
    "[planner]") {
  if (!tests::ContainersOrSkip()) return;
  Fleet fleet;
  FailingProxy proxy(fleet.a100().address());
  REQUIRE(fleet.Gantry({"agents", "rm", "gpu-a100"}).exit_code == 0);
  REQUIRE(fleet
              .Gantry({"agents", "add", "gpu-a100", proxy.address(), "--token-file",
                       (fleet.a100().data_dir() / "token").string()})
              .exit_code == 0);

  auto failed = fleet.Apply();
  INFO(failed.out << failed.err);
  CHECK(failed.exit_code == 1);
  CHECK(failed.err.find("apply failed on 1 of 2 agents") != std::string::npos);
  CHECK(failed.out.find("function.infer: create failed: gpu-a100: agent gpu-a100: disk failed") !=
        std::string::npos);
  // What reached gpu-h100 runs there and is recorded; nothing is recorded for gpu-a100.
  const json h100_app = fleet.AppOn(fleet.h100());
  CHECK(h100_app.is_object());
  CHECK(fleet.AppOn(fleet.a100()).is_null());
  auto state = planner::ReadState(fleet.state_path());
  REQUIRE(state.ok());
  REQUIRE(state->has_value());
  CHECK((*state)->agents.count("gpu-h100") == 1);
  CHECK((*state)->agents.count("gpu-a100") == 0);
  const std::int64_t h100_generation = (*state)->agents.at("gpu-h100").generation;

  // With the fault gone, the plan holds only gpu-a100's part, and applying it converges.
  proxy.fail_pushes = false;
  auto plan = fleet.Plan();
  INFO(plan.out << plan.err);
  REQUIRE(plan.exit_code == 0);
  CHECK(plan.out.find("function \"infer\"") != std::string::npos);  // placed on gpu-a100
  CHECK(plan.out.find("function \"train\"") == std::string::npos);  // on gpu-h100, done
  auto rerun = fleet.Apply();
  INFO(rerun.out << rerun.err);
  REQUIRE(rerun.exit_code == 0);
  CHECK(fleet.AppOn(fleet.a100()).is_object());
  CHECK(fleet.AppOn(fleet.h100()) == h100_app);
  state = planner::ReadState(fleet.state_path());
  REQUIRE(state.ok());
  REQUIRE(state->has_value());
  CHECK((*state)->agents.at("gpu-h100").generation == h100_generation);
  CHECK((*state)->agents.count("gpu-a100") == 1);
  CHECK(fleet.Plan().out.find("No changes.") != std::string::npos);
  CHECK(fleet
            .Gantry({"destroy", fleet.spec().string(), "--store", fleet.store().string(), "-q",
                     "--yes"})
            .exit_code == 0);
}
