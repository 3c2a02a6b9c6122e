#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "spec/app.h"

namespace planner {

/// What one agent offers the app being planned: its host (GET /v1/node) less
/// what other apps already keep warm there (their `min_containers`, from
/// GET /v1/desired). Placement reads only this, so a benchmark can make a
/// hundred of them without a network.
struct AgentInventory {
  std::string name;
  double cpus = 0;
  std::uint64_t memory_bytes = 0;
  std::map<std::string, int> gpus;  // GPU type -> how many the host has
  double reserved_cpus = 0;         // held by other apps' warm containers
  std::uint64_t reserved_memory_bytes = 0;
  std::map<std::string, int> reserved_gpus;
};

/// The inventory of agent `name` from its node document and its desired
/// state, counting the warm containers of every app but `except_app`.
AgentInventory InventoryFromAgent(std::string name, const nlohmann::json& node,
                                  const nlohmann::json& desired, std::string_view except_app);

/// One agent's share of a function.
struct Replica {
  std::string agent;
  std::string gpu_type;  // the type chosen from the function's fallback list; "" without a GPU
  int gpu_count = 0;
  int min_containers = 0;
  int max_containers = 1;
  bool owns_schedule = false;  // a schedule fires on exactly one agent

  bool operator==(const Replica&) const = default;
};

/// Where each function of an app runs: function name -> its replicas,
/// ordered by agent name.
struct Placement {
  std::map<std::string, std::vector<Replica>> functions;

  bool operator==(const Placement&) const = default;
};

/// Places every function of `app` onto `agents`:
/// - an agent is eligible when it has at least the GPUs (the first type of
///   the fallback list that some agent can meet; "any" is any type), cores
///   and memory one container needs;
/// - warm containers (`min_containers`) must fit in what is free (capacity
///   less reservations of other apps and of functions placed before), and
///   are spread over up to `min_containers` eligible agents, the least
///   reserved first; `max_containers` is split over the same agents (each at
///   least 1 and at least its minimum); a function without warm containers,
///   and any function with a schedule, runs on one agent;
/// - where `previous` placed a function and it still fits there with the
///   same GPU type and counts, it stays: a plan with no change moves nothing.
/// When a function fits nowhere, the error (kConflict) lists every such
/// function with what it needs and what each agent has, one per line; the
/// result is deterministic for the same inputs.
core::Result<Placement> Place(const spec::App& app, const std::vector<AgentInventory>& agents,
                              const Placement& previous);

/// The placement as JSON ({FUNCTION: [{agent, gpu_type, gpu_count,
/// min_containers, max_containers, owns_schedule}]}) and back: the plan file
/// and the state keep it in this form.
nlohmann::json PlacementToJson(const Placement& placement);
core::Result<Placement> PlacementFromJson(const nlohmann::json& document);

}  // namespace planner
