#include "planner/placement.h"

#include <catch2/catch.hpp>

namespace planner {
namespace {

using json = nlohmann::json;

constexpr std::uint64_t kGiB = 1ull << 30;

AgentInventory MakeAgent(std::string name, double cpus, std::uint64_t memory_gib,
                         std::map<std::string, int> gpus = {}) {
  AgentInventory agent;
  agent.name = std::move(name);
  agent.cpus = cpus;
  agent.memory_bytes = memory_gib * kGiB;
  agent.gpus = std::move(gpus);
  return agent;
}

spec::Function MakeFunction(std::string name, std::vector<spec::GpuRequest> gpu = {},
                            int min_containers = 0, int max_containers = 10) {
  spec::Function function;
  function.name = std::move(name);
  function.gpu = std::move(gpu);
  function.cpu = 1;
  function.memory = 2 * kGiB;
  function.min_containers = min_containers;
  function.max_containers = max_containers;
  return function;
}

spec::App MakeApp(std::vector<spec::Function> functions) {
  spec::App app;
  app.name = "demo";
  for (spec::Function& function : functions) {
    std::string name = function.name;
    app.functions[name] = std::move(function);
  }
  return app;
}

std::vector<std::string> AgentsOf(const std::vector<Replica>& replicas) {
  std::vector<std::string> names;
  for (const Replica& replica : replicas) names.push_back(replica.agent);
  return names;
}

TEST_CASE("a GPU function lands on the agent that has its type") {
  auto app = MakeApp({MakeFunction("chat", {{"H100", 2}}, 1)});
  auto placed = Place(
      app, {MakeAgent("a", 16, 64, {{"A100", 8}}), MakeAgent("b", 16, 64, {{"H100", 4}})}, {});
  REQUIRE(placed.ok());
  const auto& replicas = placed->functions.at("chat");
  REQUIRE(replicas.size() == 1);
  CHECK(replicas[0] == Replica{"b", "H100", 2, 1, 10, false});
}

TEST_CASE("the second type of the fallback list is used when no agent has the first") {
  auto app = MakeApp({MakeFunction("train", {{"H100", 8}, {"A100-80GB", 4}})});
  auto placed = Place(app, {MakeAgent("a", 32, 256, {{"A100-80GB", 4}})}, {});
  REQUIRE(placed.ok());
  CHECK(placed->functions.at("train") == std::vector<Replica>{{"a", "A100-80GB", 4, 0, 10, false}});
}

TEST_CASE("the first type is used when an agent has it, even if another agent is idler") {
  std::vector<AgentInventory> agents = {MakeAgent("a", 32, 256, {{"A100", 8}}),
                                        MakeAgent("b", 32, 256, {{"H100", 8}})};
  agents[1].reserved_cpus = 16;
  auto placed = Place(MakeApp({MakeFunction("train", {{"H100", 1}, {"A100", 1}})}), agents, {});
  REQUIRE(placed.ok());
  CHECK(placed->functions.at("train")[0].agent == "b");
  CHECK(placed->functions.at("train")[0].gpu_type == "H100");
}

TEST_CASE("any takes a concrete type that an agent has, the same for every replica") {
  auto app = MakeApp({MakeFunction("embed", {{"any", 1}}, 2)});
  auto placed =
      Place(app, {MakeAgent("a", 8, 32, {{"L4", 1}}), MakeAgent("b", 8, 32, {{"T4", 4}})}, {});
  REQUIRE(placed.ok());
  // T4 is the type with the most GPUs free, and both warm containers need one.
  const auto& replicas = placed->functions.at("embed");
  REQUIRE(replicas.size() == 1);
  CHECK(replicas[0] == Replica{"b", "T4", 1, 2, 10, false});
}

TEST_CASE("a function too big for every agent is an error naming it and each agent") {
  auto big = MakeFunction("huge", {{"H100", 8}, {"A100-80GB", 8}});
  big.cpu = 8;
  big.memory = 64 * kGiB;
  auto small = MakeFunction("small");
  auto too_much_memory = MakeFunction("hog");
  too_much_memory.memory = 512 * kGiB;
  auto placed = Place(MakeApp({big, small, too_much_memory}),
                      {MakeAgent("a", 16, 64, {{"H100", 4}}), MakeAgent("b", 4, 32)}, {});
  REQUIRE_FALSE(placed.ok());
  CHECK(placed.error().code == core::ErrorCode::kConflict);
  const std::string& message = placed.error().message;
  CHECK(message ==
        "function huge fits on no agent: it needs H100:8 or A100-80GB:8, 8 cores, 64.0 GiB; free: "
        "a has 16 of 16 cores, 64.0 GiB of 64.0 GiB, H100:4 of 4; b has 4 of 4 cores"
        ", 32.0 GiB of 32.0 GiB, no GPUs\n"
        "function hog fits on no agent: it needs 1 core, 512.0 GiB; free: a has 16 of 16 cores"
        ", 64.0 GiB of 64.0 GiB, H100:4 of 4; b has 4 of 4 cores, 32.0 GiB of 32.0 "
        "GiB, no GPUs");
}

TEST_CASE("no agents at all is an error that says so") {
  auto placed = Place(MakeApp({MakeFunction("echo")}), {}, {});
  REQUIRE_FALSE(placed.ok());
  CHECK(placed.error().message ==
        "function echo fits on no agent: it needs 1 core, 2.0 GiB; there are no agents");
}

TEST_CASE("warm containers beyond the free capacity are an error") {
  std::vector<AgentInventory> agents = {MakeAgent("a", 4, 64), MakeAgent("b", 4, 64)};
  agents[1].reserved_cpus = 3;  // another app keeps 3 of b's cores warm
  auto placed = Place(MakeApp({MakeFunction("web", {}, 6)}), agents, {});
  REQUIRE_FALSE(placed.ok());
  CHECK(placed.error().code == core::ErrorCode::kConflict);
  CHECK(placed.error().message ==
        "function web fits on no agent: it needs 1 core, 2.0 GiB for each of 6 warm containers; "
        "free: a has 4 of 4 cores, 64.0 GiB of 64.0 GiB, no GPUs; b has 1 of 4 cores, "
        "64.0 GiB of 64.0 GiB, no GPUs");

  CHECK(Place(MakeApp({MakeFunction("web", {}, 5)}), agents, {}).ok());
}

TEST_CASE("warm containers spread over up to min_containers agents, max_containers split") {
  auto placed = Place(MakeApp({MakeFunction("web", {}, 3, 10)}),
                      {MakeAgent("a", 16, 64), MakeAgent("b", 16, 64)}, {});
  REQUIRE(placed.ok());
  CHECK(placed->functions.at("web") ==
        std::vector<Replica>{{"a", "", 0, 2, 5, false}, {"b", "", 0, 1, 5, false}});

  SECTION("a maximum smaller than an even split keeps every minimum") {
    auto tight = Place(MakeApp({MakeFunction("web", {}, 3, 3)}),
                       {MakeAgent("a", 16, 64), MakeAgent("b", 16, 64)}, {});
    REQUIRE(tight.ok());
    CHECK(tight->functions.at("web")[0].max_containers == 2);
    CHECK(tight->functions.at("web")[1].max_containers == 1);
  }
  SECTION("the least reserved agents are used, ties by name") {
    std::vector<AgentInventory> agents = {MakeAgent("a", 16, 64), MakeAgent("b", 16, 64),
                                          MakeAgent("c", 16, 64)};
    agents[0].reserved_memory_bytes = 32 * kGiB;
    auto spread = Place(MakeApp({MakeFunction("web", {}, 2, 5)}), agents, {});
    REQUIRE(spread.ok());
    CHECK(AgentsOf(spread->functions.at("web")) == std::vector<std::string>{"b", "c"});
    CHECK(spread->functions.at("web")[0].max_containers == 3);
    CHECK(spread->functions.at("web")[1].max_containers == 2);
  }
}

TEST_CASE("warm containers fill agents that have room when another is nearly full") {
  std::vector<AgentInventory> agents = {MakeAgent("a", 1, 64), MakeAgent("b", 16, 64)};
  auto placed = Place(MakeApp({MakeFunction("web", {}, 4, 4)}), agents, {});
  REQUIRE(placed.ok());
  CHECK(placed->functions.at("web") ==
        std::vector<Replica>{{"a", "", 0, 1, 1, false}, {"b", "", 0, 3, 3, false}});
}

TEST_CASE("functions placed earlier reserve what later ones see") {
  auto app = MakeApp({MakeFunction("big", {{"H100", 4}}, 1),
                      MakeFunction("small", {{"H100", 1}}, 1), MakeFunction("tiny", {}, 1)});
  auto placed = Place(
      app, {MakeAgent("a", 16, 64, {{"H100", 4}}), MakeAgent("b", 16, 64, {{"H100", 4}})}, {});
  REQUIRE(placed.ok());
  CHECK(placed->functions.at("big")[0].agent == "a");
  CHECK(placed->functions.at("small")[0].agent == "b");
  CHECK(placed->functions.at("tiny")[0].agent == "b");  // a's GPUs are all reserved
}

TEST_CASE("scale-to-zero and scheduled functions run on one agent") {
  auto cron = MakeFunction("nightly", {}, 2, 4);
  cron.schedule = spec::Schedule{};
  cron.schedule->cron = "0 3 * * *";
  auto app = MakeApp({cron, MakeFunction("on-demand", {}, 0, 20)});
  std::vector<AgentInventory> agents = {MakeAgent("a", 16, 64), MakeAgent("b", 16, 64)};
  auto placed = Place(app, agents, {});
  REQUIRE(placed.ok());
  CHECK(placed->functions.at("nightly") == std::vector<Replica>{{"a", "", 0, 2, 4, true}});
  // a now holds the nightly job's warm containers, so b is less reserved.
  CHECK(placed->functions.at("on-demand") == std::vector<Replica>{{"b", "", 0, 0, 20, false}});
}

TEST_CASE("scale-to-zero functions take turns over equally reserved agents") {
  auto placed = Place(MakeApp({MakeFunction("f1"), MakeFunction("f2"), MakeFunction("f3")}),
                      {MakeAgent("a", 16, 64), MakeAgent("b", 16, 64)}, {});
  REQUIRE(placed.ok());
  CHECK(placed->functions.at("f1")[0].agent == "a");
  CHECK(placed->functions.at("f2")[0].agent == "b");
  CHECK(placed->functions.at("f3")[0].agent == "a");
}

TEST_CASE("a previous placement stays while it fits") {
  auto app = MakeApp({MakeFunction("web", {{"H100", 1}, {"A100", 1}}, 1)});
  std::vector<AgentInventory> agents = {MakeAgent("a", 16, 64, {{"H100", 2}}),
                                        MakeAgent("b", 16, 64, {{"A100", 2}})};
  Placement previous;
  previous.functions["web"] = {{"b", "A100", 1, 1, 10, false}};
  agents[1].reserved_cpus = 8;  // b is busier now than a

  auto placed = Place(app, agents, previous);
  REQUIRE(placed.ok());
  CHECK(*placed == previous);

  SECTION("dropped when its agent is gone") {
    auto moved = Place(app, {agents[0]}, previous);
    REQUIRE(moved.ok());
    CHECK(moved->functions.at("web") == std::vector<Replica>{{"a", "H100", 1, 1, 10, false}});
  }
  SECTION("dropped when it no longer fits there") {
    agents[1].reserved_gpus["A100"] = 2;
    auto moved = Place(app, agents, previous);
    REQUIRE(moved.ok());
    CHECK(moved->functions.at("web")[0].agent == "a");
  }
  SECTION("dropped when the warm count changed") {
    app.functions.at("web").min_containers = 2;
    auto moved = Place(app, agents, previous);
    REQUIRE(moved.ok());
    CHECK(AgentsOf(moved->functions.at("web")) == std::vector<std::string>{"a"});
  }
  SECTION("a new maximum is split over the agents it stays on") {
    app.functions.at("web").max_containers = 3;
    auto kept = Place(app, agents, previous);
    REQUIRE(kept.ok());
    CHECK(kept->functions.at("web") == std::vector<Replica>{{"b", "A100", 1, 1, 3, false}});
  }
}

TEST_CASE("a function that stays is placed before new ones take its room") {
  auto app =
      MakeApp({MakeFunction("old", {{"H100", 1}}, 1), MakeFunction("new", {{"H100", 2}}, 1)});
  Placement previous;
  previous.functions["old"] = {{"a", "H100", 1, 1, 10, false}};
  auto placed =
      Place(app, {MakeAgent("a", 16, 64, {{"H100", 2}}), MakeAgent("b", 16, 64, {{"H100", 2}})},
            previous);
  REQUIRE(placed.ok());
  CHECK(placed->functions.at("old")[0].agent == "a");
  CHECK(placed->functions.at("new")[0].agent == "b");
}

TEST_CASE("placement is the same for the same inputs") {
  std::vector<spec::Function> functions;
  for (int i = 0; i < 40; ++i) {
    functions.push_back(
        MakeFunction("f" + std::to_string(i), {{i % 2 ? "H100" : "any", 1 + i % 3}}, i % 4, 8));
  }
  std::vector<AgentInventory> agents;
  for (int i = 0; i < 10; ++i) {
    agents.push_back(MakeAgent("agent-" + std::to_string(i), 64, 512, {{"H100", 16}, {"L4", 8}}));
  }
  auto first = Place(MakeApp(functions), agents, {});
  auto second = Place(MakeApp(functions), agents, {});
  REQUIRE(first.ok());
  REQUIRE(second.ok());
  CHECK(*first == *second);
}

TEST_CASE("InventoryFromAgent counts other apps' warm containers, not the planned app's") {
  json node = {{"host_id", "0123"},
               {"cpus", 32},
               {"memory_bytes", 128 * kGiB},
               {"gpus",
                {{{"index", 0}, {"type", "H100"}},
                 {{"index", 1}, {"type", "H100"}},
                 {{"index", 2}, {"type", "L4"}}}}};
  json desired = {
      {"generation", 7},
      {"apps",
       {{"demo",
         {{"functions",
           {{"web", {{"cpu", 4}, {"memory_bytes", 8 * kGiB}, {"min_containers", 2}}}}}}},
        {"other",
         {{"functions",
           {{"infer",
             {{"cpu", 2},
              {"memory_bytes", 4 * kGiB},
              {"min_containers", 2},
              {"gpu", {{"type", "any"}, {"count", 1}}}}},
            {"batch",
             {{"cpu", 8},
              {"memory_bytes", 16 * kGiB},
              {"min_containers", 0},
              {"gpu", {{"type", "L4"}, {"count", 1}}}}},
            {"light", {{"cpu", 0.5}, {"memory_bytes", 1 * kGiB}, {"min_containers", 1}}}}}}}}}};

  AgentInventory inventory = InventoryFromAgent("gpu-1", node, desired, "demo");
  CHECK(inventory.name == "gpu-1");
  CHECK(inventory.cpus == 32);
  CHECK(inventory.memory_bytes == 128 * kGiB);
  CHECK(inventory.gpus == std::map<std::string, int>{{"H100", 2}, {"L4", 1}});
  CHECK(inventory.reserved_cpus == 4.5);
  CHECK(inventory.reserved_memory_bytes == 9 * kGiB);
  // "any" counts against H100, the type the host has most of.
  CHECK(inventory.reserved_gpus == std::map<std::string, int>{{"H100", 2}});

  SECTION("empty or odd documents read as an empty host") {
    AgentInventory empty = InventoryFromAgent("x", json::object(), json(nullptr), "demo");
    CHECK(empty.cpus == 0);
    CHECK(empty.gpus.empty());
    AgentInventory odd = InventoryFromAgent("x", {{"cpus", "many"}, {"gpus", 3}},
                                            {{"apps", {{"other", {{"functions", 1}}}}}}, "demo");
    CHECK(odd.cpus == 0);
    CHECK(odd.reserved_cpus == 0);
  }
}

TEST_CASE("PlacementToJson and PlacementFromJson round trip") {
  Placement placement;
  placement.functions["chat"] = {{"a", "H100", 2, 1, 5, false}, {"b", "H100", 2, 1, 5, false}};
  placement.functions["nightly"] = {{"c", "", 0, 0, 1, true}};
  json document = PlacementToJson(placement);
  CHECK(document["chat"][1] == json{{"agent", "b"},
                                    {"gpu_type", "H100"},
                                    {"gpu_count", 2},
                                    {"min_containers", 1},
                                    {"max_containers", 5},
                                    {"owns_schedule", false}});
  auto read = PlacementFromJson(document);
  REQUIRE(read.ok());
  CHECK(*read == placement);
}

TEST_CASE("PlacementFromJson names what is wrong") {
  Placement placement;
  placement.functions["chat"] = {{"a", "", 0, 0, 1, false}};
  json good = PlacementToJson(placement);
  auto error_of = [](const json& document) {
    auto read = PlacementFromJson(document);
    REQUIRE_FALSE(read.ok());
    CHECK(read.error().code == core::ErrorCode::kInvalidArgument);
    return read.error().message;
  };
  CHECK(error_of(json::array()) == "placement: expected an object of functions");
  CHECK(error_of({{"chat", 1}}) == "placement.chat: expected an array of replicas");
  json bad = good;
  bad["chat"][0]["min_containers"] = -1;
  CHECK(error_of(bad) == "placement.chat[0].min_containers: expected an integer >= 0");
  bad = good;
  bad["chat"][0].erase("agent");
  CHECK(error_of(bad) == "placement.chat[0].agent: missing");
  bad = good;
  bad["chat"][0]["zone"] = "eu";
  CHECK(error_of(bad) == "placement.chat[0].zone: unknown member");
  bad = good;
  bad["chat"][0]["owns_schedule"] = "yes";
  CHECK(error_of(bad) == "placement.chat[0].owns_schedule: expected true or false");
}

}  // namespace
}  // namespace planner
