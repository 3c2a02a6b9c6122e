#include "planner/plan.h"

#include <catch2/catch.hpp>

#include "planner/desired_app.h"

namespace {

using nlohmann::json;

spec::App TwoFunctions() {
  spec::App app;
  app.name = "demo";
  app.source = "/specs/demo/app.yaml";
  app.images["box"] = spec::Image{"box", spec::ScratchBase{}, {}};
  app.secrets["api"] = spec::Secret{"api", {"API_TOKEN"}, ""};
  app.volumes["data"] = spec::Volume{"data"};
  spec::Function web;
  web.name = "web";
  web.image = "box";
  web.web = spec::Web{};
  web.min_containers = 1;
  web.secrets = {"api"};
  app.functions["web"] = web;
  spec::Function job;
  job.name = "job";
  job.image = "box";
  job.gpu = {{"H100", 1}};
  job.volumes = {{"/data", "data"}};
  job.schedule = spec::Schedule{};
  job.schedule->cron = "0 3 * * *";
  app.functions["job"] = job;
  return app;
}

planner::AgentView Agent(const std::string& name, const std::string& gpu) {
  planner::AgentView view;
  view.name = name;
  view.url = "http://" + name + ":7070";
  view.token = "token-of-" + name;
  view.inventory.name = name;
  view.inventory.cpus = 16;
  view.inventory.memory_bytes = 64ull << 30;
  if (!gpu.empty()) view.inventory.gpus[gpu] = 4;
  return view;
}

struct Fixture {
  spec::App app = TwoFunctions();
  planner::PlanInputs inputs;

  Fixture() {
    inputs.app = &app;
    inputs.image_digests = {{"box", "sha256:" + std::string(64, 'a')}};
    inputs.secrets = {{"api", {{"API_TOKEN", "the-secret-value"}}}};
    inputs.agents = {Agent("cpu", ""), Agent("gpu", "H100")};
    inputs.rates = planner::RateCard::Defaults();
  }

  planner::Plan Plan() {
    auto plan = planner::MakePlan(inputs);
    INFO((plan.ok() ? "" : plan.error().message));
    REQUIRE(plan.ok());
    return std::move(*plan);
  }

  // The state and the agents' reports after `plan` was applied.
  void Apply(const planner::Plan& plan) {
    planner::DeployState state = inputs.state.value_or(planner::DeployState{});
    state.lineage = "lineage";
    ++state.serial;
    state.app = plan.app;
    state.images = plan.images;
    state.budget = plan.budget;
    state.placement = planner::PlacementToJson(plan.placement);
    for (const planner::AgentChange& change : plan.agents) {
      json reported = change.after;
      if (change.after.is_null()) {
        state.agents.erase(change.agent);
      } else {
        state.agents[change.agent] = {change.url, state.serial, change.after};
        for (auto& [secret, pairs] : reported["secrets"].items())
          for (auto& [key, value] : pairs.items()) value = "(sensitive)";
      }
      for (planner::AgentView& view : inputs.agents)
        if (view.name == change.agent) view.reported = reported;
    }
    inputs.state = state;
  }
};

std::vector<std::string> Changed(const planner::Plan& plan) {
  std::vector<std::string> lines;
  for (const auto& change : plan.resources)
    if (change.action != planner::Action::kNoOp)
      lines.push_back(std::string(planner::ActionName(change.action)) + " " + change.Address());
  return lines;
}

}  // namespace

TEST_CASE("a first plan creates every resource and places by GPU", "[plan]") {
  Fixture fixture;
  planner::Plan plan = fixture.Plan();
  CHECK(Changed(plan) == std::vector<std::string>{"create image.box", "create secret.api",
                                                  "create volume.data", "create function.job",
                                                  "create function.web", "create schedule.job"});
  auto summary = plan.Count();
  CHECK(summary.add == 6);
  CHECK(summary.change == 0);
  REQUIRE(plan.agents.size() == 2);
  // The job and its schedule and volume on the GPU agent; the secret only where the web function
  // is.
  const json& gpu = plan.agents[1].after;
  CHECK(plan.agents[1].agent == "gpu");
  CHECK(gpu["functions"]["job"]["gpu"] == json{{"type", "H100"}, {"count", 1}});
  CHECK(gpu["functions"]["job"]["schedule"]["cron"] == "0 3 * * *");
  CHECK(gpu["volumes"] == json{"data"});
  CHECK(gpu["secrets"].empty());
  // Secret values are keyed hashes, never the value.
  std::string hashed = plan.ToJson().dump();
  CHECK(hashed.find("the-secret-value") == std::string::npos);
  CHECK(hashed.find("token-of-") == std::string::npos);
  const json& web_agent = plan.agents[0].after;
  CHECK(web_agent["secrets"]["api"]["API_TOKEN"] ==
        planner::SecretValueHash(fixture.inputs.agents[plan.agents[0].agent == "cpu" ? 0 : 1].token,
                                 "api", "API_TOKEN", "the-secret-value"));
  // The resource change shows the value as sensitive.
  for (const auto& change : plan.resources) {
    if (change.Address() != "secret.api") continue;
    REQUIRE(change.changes.size() == 2);
    CHECK(change.changes[0].attribute == "agents");
    CHECK_FALSE(change.changes[0].sensitive);
    CHECK(change.changes[1].attribute == "value.API_TOKEN");
    CHECK(change.changes[1].sensitive);
  }
  CHECK(planner::RenderPlan(plan, false).find("Plan: 6 to add, 0 to change, 0 to destroy.") !=
        std::string::npos);
}

TEST_CASE("after apply: no change, updates, replacements, deletes and drift", "[plan]") {
  Fixture fixture;
  fixture.Apply(fixture.Plan());
  planner::Plan same = fixture.Plan();
  CHECK(Changed(same).empty());
  CHECK(same.agents.empty());
  CHECK_FALSE(same.HasChanges());
  CHECK(planner::RenderPlan(same, false).find("No changes.") != std::string::npos);

  SECTION("an env change is an update in place of that function only") {
    fixture.app.functions["web"].env["MODE"] = "fast";
    planner::Plan plan = fixture.Plan();
    CHECK(Changed(plan) == std::vector<std::string>{"update function.web"});
    REQUIRE(plan.agents.size() == 1);
    std::string text = planner::RenderPlan(plan, false);
    CHECK(text.find("~ env.MODE = null -> \"fast\"") == std::string::npos);
    CHECK(text.find("+ env.MODE") != std::string::npos);
  }
  SECTION("a new image digest replaces the image and every function on it") {
    fixture.inputs.image_digests["box"] = "sha256:" + std::string(64, 'b');
    planner::Plan plan = fixture.Plan();
    CHECK(Changed(plan) == std::vector<std::string>{"replace image.box", "replace function.job",
                                                    "replace function.web"});
    CHECK(plan.Count().add == 3);
    CHECK(plan.Count().destroy == 3);
    CHECK(planner::RenderPlan(plan, false).find("# forces replacement") != std::string::npos);
  }
  SECTION("the spec's web and schedule settings reach the agents") {
    fixture.app.functions["web"].web->queue_timeout = std::chrono::seconds(5);
    fixture.app.functions["web"].web->max_queued = 7;
    fixture.app.functions["job"].schedule->catch_up = 0;
    planner::Plan plan = fixture.Plan();
    CHECK(Changed(plan) == std::vector<std::string>{"update function.web", "update schedule.job"});
    for (const auto& change : plan.agents) {
      const json& functions = change.after["functions"];
      if (functions.contains("web")) {
        CHECK(functions["web"]["web"]["queue_timeout_ms"] == 5000);
        CHECK(functions["web"]["web"]["max_queued"] == 7);
      }
      if (functions.contains("job")) CHECK(functions["job"]["schedule"]["catch_up"] == 0);
    }
  }
  SECTION("target_inputs reaches the agents as the share of max_inputs to aim at") {
    fixture.app.functions["web"].max_inputs = 4;
    fixture.app.functions["web"].target_inputs = 3;
    planner::Plan plan = fixture.Plan();
    CHECK(Changed(plan) == std::vector<std::string>{"update function.web"});
    REQUIRE(plan.agents.size() == 1);
    const json& web = plan.agents[0].after["functions"]["web"];
    CHECK(web["max_inputs"] == 4);
    CHECK(web["target_utilisation"] == 0.75);
    CHECK(planner::RenderPlan(plan, false).find("~ target_utilisation = 1.0 -> 0.75") !=
          std::string::npos);
  }
  SECTION("a changed secret value is an update shown as sensitive") {
    fixture.inputs.secrets["api"]["API_TOKEN"] = "another-value";
    planner::Plan plan = fixture.Plan();
    CHECK(Changed(plan) == std::vector<std::string>{"update secret.api"});
    std::string text = planner::RenderPlan(plan, false);
    CHECK(text.find("value.API_TOKEN = (sensitive) -> (sensitive)") != std::string::npos);
    CHECK(text.find("another-value") == std::string::npos);
  }
  SECTION("a removed function and volume are deleted, the volume's files with them") {
    fixture.app.functions.erase("job");
    fixture.app.volumes.erase("data");
    planner::Plan plan = fixture.Plan();
    CHECK(Changed(plan) == std::vector<std::string>{"delete volume.data", "delete function.job",
                                                    "delete schedule.job"});
    REQUIRE(plan.agents.size() == 1);
    CHECK(plan.agents[0].after.is_null());
    CHECK(plan.agents[0].delete_volumes == std::vector<std::string>{"data"});
  }
  SECTION("an app gone from an agent is drift, and the plan creates it again") {
    for (auto& view : fixture.inputs.agents)
      if (view.name == "gpu") view.reported = json();
    planner::Plan plan = fixture.Plan();
    REQUIRE_FALSE(plan.drift.empty());
    CHECK(plan.drift[0].action == planner::Action::kDelete);
    CHECK(Changed(plan) == std::vector<std::string>{"create volume.data", "create function.job",
                                                    "create schedule.job"});
  }
  SECTION("what an agent runs as wanted but the state misses is only recorded") {
    // A push whose answer was lost: the agent has it, the state does not say so.
    fixture.inputs.state->agents.erase("gpu");
    planner::Plan plan = fixture.Plan();
    CHECK(Changed(plan).empty());
    CHECK_FALSE(plan.HasChanges());
    REQUIRE(plan.agents.size() == 1);
    CHECK(plan.agents[0].agent == "gpu");
    CHECK_FALSE(plan.agents[0].push);
    CHECK(plan.agents[0].after["functions"].contains("job"));
  }
  SECTION("the app key's hash is a sensitive resource of its own") {
    fixture.app.functions["web"].web->auth = core::WebAuth::kKey;
    fixture.inputs.web_key_sha256 = std::string(64, 'c');
    planner::Plan plan = fixture.Plan();
    CHECK(Changed(plan) ==
          std::vector<std::string>{"create secret.GANTRY_APP_KEY", "update function.web"});
    fixture.Apply(plan);
    fixture.inputs.web_key_sha256 = std::string(64, 'd');
    plan = fixture.Plan();
    CHECK(Changed(plan) == std::vector<std::string>{"update secret.GANTRY_APP_KEY"});
    std::string text = planner::RenderPlan(plan, false);
    CHECK(text.find("value = (sensitive) -> (sensitive)") != std::string::npos);
    CHECK(text.find(std::string(64, 'd')) == std::string::npos);
  }
  SECTION("destroy deletes everything the agents run") {
    fixture.inputs.destroy = true;
    planner::Plan plan = fixture.Plan();
    CHECK(plan.Count().destroy == 6);
    CHECK(plan.agents.size() == 2);
    for (const auto& change : plan.agents) CHECK(change.after.is_null());
  }
  SECTION("an agent the state names but that was not refreshed stops the plan") {
    fixture.inputs.agents.pop_back();
    auto plan = planner::MakePlan(fixture.inputs);
    REQUIRE_FALSE(plan.ok());
    CHECK(plan.error().code == core::ErrorCode::kUnavailable);
    CHECK(plan.error().message.find("gpu") != std::string::npos);
  }
}

TEST_CASE("a saved plan reads back as it was written", "[plan]") {
  Fixture fixture;
  planner::Plan plan = fixture.Plan();
  json written = plan.ToJson();
  auto read = planner::Plan::FromJson(json::parse(written.dump()));
  REQUIRE(read.ok());
  CHECK(read->app == "demo");
  CHECK(read->source == "/specs/demo/app.yaml");
  CHECK(read->placement == plan.placement);
  CHECK(read->agents.size() == plan.agents.size());
  CHECK(read->agents[0].after == plan.agents[0].after);
  CHECK(read->Count().add == plan.Count().add);
  // Everything but the cost round-trips.
  json again = read->ToJson();
  again.erase("cost");
  written.erase("cost");
  CHECK(again == written);

  json bad = written;
  bad["format_version"] = 2;
  CHECK(planner::Plan::FromJson(bad).error().message.find("format_version") != std::string::npos);
  bad = written;
  bad["agent_changes"][0].erase("before_digest");
  CHECK(planner::Plan::FromJson(bad).error().message.find("agent_changes[0]") != std::string::npos);
  bad = written;
  bad["resource_changes"][0]["action"] = "explode";
  CHECK(planner::Plan::FromJson(bad).error().message.find("resource_changes[0].action") !=
        std::string::npos);
}

TEST_CASE("a budget is split over the agents, shown by the cost, and changed in place", "[plan]") {
  Fixture fixture;
  fixture.app.budget = spec::Budget{};
  fixture.app.budget->daily_usd = 0.05;
  fixture.app.budget->monthly_usd = 20;
  planner::Plan plan = fixture.Plan();
  // web on one agent, the H100 job on the other: each gets the part of the
  // caps that its replicas' price at max_containers is of the whole.
  const spec::Function& web = fixture.app.functions.at("web");
  const spec::Function& job = fixture.app.functions.at("job");
  const double web_price = fixture.inputs.rates.PerSecond("", 0, web.cpu, web.memory);
  const double job_price = fixture.inputs.rates.PerSecond("H100", 1, job.cpu, job.memory);
  const std::map<std::string, double> shares = {{"cpu", web_price / (web_price + job_price)},
                                                {"gpu", job_price / (web_price + job_price)}};
  CHECK(shares.at("gpu") > 0.99);
  REQUIRE(plan.agents.size() == 2);
  double daily = 0, monthly = 0;
  for (const planner::AgentChange& change : plan.agents) {
    INFO(change.agent);
    const json& budget = change.after["budget"];
    CHECK(budget["on_exceed"] == "stop");
    CHECK(budget["daily_usd"].get<double>() == Approx(0.05 * shares.at(change.agent)).margin(1e-6));
    CHECK(budget["monthly_usd"].get<double>() == Approx(20 * shares.at(change.agent)).margin(1e-6));
    daily += budget["daily_usd"].get<double>();
    monthly += budget["monthly_usd"].get<double>();
  }
  CHECK(daily <= 0.05);
  CHECK(monthly <= 20);
  std::string text = planner::RenderPlan(plan, false);
  INFO(text);
  CHECK(text.find("  budget: $0.0500 a day, $20.00 a month, stopped at a cap") !=
        std::string::npos);
  CHECK(text.find("    gpu  99.8%  $0.0499 a day, $19.97 a month\n") != std::string::npos);
  CHECK(plan.ToJson()["cost"]["budget"].size() == 2);

  fixture.Apply(plan);
  fixture.app.budget->monthly_usd = 40;
  planner::Plan raised = fixture.Plan();
  CHECK(Changed(raised) == std::vector<std::string>{"update budget"});
  REQUIRE(raised.agents.size() == 2);
  for (const planner::AgentChange& change : raised.agents) {
    CHECK(change.push);
    CHECK(change.after["budget"]["monthly_usd"].get<double>() ==
          Approx(40 * shares.at(change.agent)).margin(1e-6));
  }
}
