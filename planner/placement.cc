#include "planner/placement.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <optional>
#include <set>
#include <type_traits>
#include <utility>

#include "core/quantity.h"

namespace planner {
namespace {

using json = nlohmann::json;

/// Slack for comparing fractional cores, so that eight 0.125-core containers
/// fill one core exactly despite rounding.
constexpr double kCpuEpsilon = 1e-9;

// The agents' documents are read leniently: InventoryFromAgent cannot fail,
// and a member that is missing or of the wrong type counts as zero, so one
// odd agent shrinks what the planner sees instead of stopping a plan.
template <typename T>
T NumberOr(const json& object, const char* key, T fallback) {
  if (!object.is_object()) return fallback;
  auto found = object.find(key);
  if (found == object.end() || !found->is_number()) return fallback;
  if constexpr (std::is_unsigned_v<T>) {
    if (!found->is_number_unsigned()) return fallback;
  }
  return found->get<T>();
}

const json& Member(const json& object, const char* key) {
  static const json kNull;
  if (!object.is_object()) return kNull;
  auto found = object.find(key);
  return found == object.end() ? kNull : *found;
}

/// The GPU type `gpus` has most of, ties to the first name; "" without GPUs.
std::string MostPlentifulType(const std::map<std::string, int>& gpus) {
  std::string best;
  int best_count = 0;
  for (const auto& [type, count] : gpus) {
    if (count > best_count) {
      best = type;
      best_count = count;
    }
  }
  return best;
}

/// What one container of a function needs, with one concrete GPU type.
struct Need {
  std::string gpu_type;  // "" without a GPU
  int gpu_count = 0;
  double cpus = 0;
  std::uint64_t memory_bytes = 0;
};

/// An agent while functions are placed on it: its inventory plus what the
/// functions placed so far keep warm there.
struct AgentState {
  const AgentInventory* inventory = nullptr;
  double reserved_cpus = 0;
  std::uint64_t reserved_memory_bytes = 0;
  std::map<std::string, int> reserved_gpus;
  int gpu_total = 0;
  int reserved_gpu_total = 0;
  int functions_placed = 0;  // of this app, so that scale-to-zero functions spread too
  double share = 0;          // the largest share of cores, memory or GPUs reserved

  void UpdateShare() {
    share = 0;
    if (inventory->cpus > 0) share = std::max(share, reserved_cpus / inventory->cpus);
    if (inventory->memory_bytes > 0) {
      share = std::max(share, static_cast<double>(reserved_memory_bytes) /
                                  static_cast<double>(inventory->memory_bytes));
    }
    if (gpu_total > 0) share = std::max(share, static_cast<double>(reserved_gpu_total) / gpu_total);
  }

  int GpuCapacity(const std::string& type) const {
    auto found = inventory->gpus.find(type);
    return found == inventory->gpus.end() ? 0 : found->second;
  }
  int FreeGpus(const std::string& type) const {
    auto reserved = reserved_gpus.find(type);
    return GpuCapacity(type) - (reserved == reserved_gpus.end() ? 0 : reserved->second);
  }
  double FreeCpus() const { return inventory->cpus - reserved_cpus; }
  std::uint64_t FreeMemory() const {
    return inventory->memory_bytes > reserved_memory_bytes
               ? inventory->memory_bytes - reserved_memory_bytes
               : 0;
  }

  /// Whether the host could run one container at all, reservations aside.
  bool Eligible(const Need& need) const {
    return inventory->cpus + kCpuEpsilon >= need.cpus &&
           inventory->memory_bytes >= need.memory_bytes &&
           (need.gpu_count == 0 || GpuCapacity(need.gpu_type) >= need.gpu_count);
  }

  /// How many more warm containers fit in what is free, at most `limit`.
  int Room(const Need& need, int limit) const {
    double room = limit;
    if (need.cpus > 0) room = std::min(room, std::floor((FreeCpus() + kCpuEpsilon) / need.cpus));
    if (need.memory_bytes > 0) {
      room = std::min(room, static_cast<double>(FreeMemory() / need.memory_bytes));
    }
    if (need.gpu_count > 0) {
      room = std::min(room,
                      static_cast<double>(std::max(0, FreeGpus(need.gpu_type)) / need.gpu_count));
    }
    return std::max(0, static_cast<int>(room));
  }

  void Reserve(const Need& need, int containers) {
    ++functions_placed;
    if (containers == 0) return;
    reserved_cpus += need.cpus * containers;
    reserved_memory_bytes += need.memory_bytes * static_cast<std::uint64_t>(containers);
    if (need.gpu_count > 0) {
      reserved_gpus[need.gpu_type] += need.gpu_count * containers;
      reserved_gpu_total += need.gpu_count * containers;
    }
    UpdateShare();
  }
};

/// The least reserved agent first, then the one running fewer of this app's
/// functions, then by name: the order warm containers and single replicas
/// take agents in.
bool LessLoaded(const AgentState* a, const AgentState* b) {
  if (a->share != b->share) return a->share < b->share;
  if (a->functions_placed != b->functions_placed) return a->functions_placed < b->functions_placed;
  return a->inventory->name < b->inventory->name;
}

/// Whether a function runs on exactly one agent.
bool RunsOnOneAgent(const spec::Function& function) {
  return function.min_containers <= 0 || function.schedule.has_value();
}

/// Splits `total` containers over `replicas` (in the order given, the least
/// loaded first) as evenly as their minimums allow: every replica gets at
/// least max(its minimum, 1), the smallest shares are raised to a common
/// level, and what is left over goes one each to the first replicas at it.
void SplitMaxContainers(std::vector<Replica>& replicas, int total) {
  auto floor_of = [](const Replica& replica) { return std::max(replica.min_containers, 1); };
  auto filled = [&](long level) {
    long sum = 0;
    for (const Replica& replica : replicas) sum += std::max<long>(floor_of(replica), level);
    return sum;
  };
  long low = 0;
  long high = std::max(total, 0);
  while (low < high) {  // the highest level whose fill stays within total
    long middle = (low + high + 1) / 2;
    if (filled(middle) <= total) {
      low = middle;
    } else {
      high = middle - 1;
    }
  }
  long spare = total - filled(low);
  for (Replica& replica : replicas) {
    replica.max_containers = static_cast<int>(std::max<long>(floor_of(replica), low));
    if (spare > 0 && replica.max_containers == low) {
      ++replica.max_containers;
      --spare;
    }
  }
}

void SortByAgent(std::vector<Replica>& replicas) {
  std::sort(replicas.begin(), replicas.end(),
            [](const Replica& a, const Replica& b) { return a.agent < b.agent; });
}

std::string FormatNumber(double number) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", number);
  return text;
}

std::string FormatCores(double cores) {
  return FormatNumber(cores) + (cores == 1 ? " core" : " cores");
}

class Placer {
 public:
  explicit Placer(const std::vector<AgentInventory>& agents) {
    states_.reserve(agents.size());
    for (const AgentInventory& agent : agents) {
      AgentState state;
      state.inventory = &agent;
      state.reserved_cpus = agent.reserved_cpus;
      state.reserved_memory_bytes = agent.reserved_memory_bytes;
      state.reserved_gpus = agent.reserved_gpus;
      for (const auto& [type, count] : agent.gpus) {
        state.gpu_total += count;
        free_gpus_by_type_[type] += count;
      }
      for (const auto& [type, count] : agent.reserved_gpus) {
        state.reserved_gpu_total += count;
        free_gpus_by_type_[type] -= count;
      }
      state.UpdateShare();
      states_.push_back(std::move(state));
    }
    for (AgentState& state : states_) by_name_[state.inventory->name] = &state;
  }

  /// Keeps `function` where `previous` put it when that still fits; false
  /// when it must be placed afresh.
  bool KeepPrevious(const spec::Function& function, const std::vector<Replica>& previous,
                    std::vector<Replica>& placed) {
    if (previous.empty()) return false;
    if (RunsOnOneAgent(function) && previous.size() != 1) return false;
    if (!RunsOnOneAgent(function) &&
        static_cast<int>(previous.size()) > std::max(function.min_containers, 1)) {
      return false;
    }
    const Replica& first = previous.front();
    if (!AcceptsGpu(function, first.gpu_type, first.gpu_count)) return false;
    Need need = NeedOf(function, first.gpu_type, first.gpu_count);
    int warm = 0;
    std::set<std::string> seen;
    for (const Replica& replica : previous) {
      auto agent = by_name_.find(replica.agent);
      if (agent == by_name_.end() || !seen.insert(replica.agent).second) return false;
      if (replica.gpu_type != first.gpu_type || replica.gpu_count != first.gpu_count) return false;
      if (replica.min_containers < 0 || !agent->second->Eligible(need) ||
          agent->second->Room(need, replica.min_containers) < replica.min_containers) {
        return false;
      }
      warm += replica.min_containers;
    }
    if (warm != std::max(function.min_containers, 0)) return false;

    placed = previous;
    for (Replica& replica : placed) {
      replica.owns_schedule = function.schedule.has_value();
      by_name_.at(replica.agent)->Reserve(need, replica.min_containers);
    }
    int total_max = 0;
    bool floors_kept = true;
    for (const Replica& replica : placed) {
      total_max += replica.max_containers;
      floors_kept = floors_kept && replica.max_containers >= std::max(replica.min_containers, 1);
    }
    if (!floors_kept || total_max != TotalMax(function)) {
      SplitMaxContainers(placed, TotalMax(function));
    }
    CountGpus(need, warm);
    return true;
  }

  /// Places `function` afresh: the first GPU request of its fallback list
  /// that fits. False when none does.
  bool PlaceNew(const spec::Function& function, std::vector<Replica>& placed) {
    for (const Need& need : Candidates(function)) {
      std::optional<std::vector<Replica>> replicas =
          RunsOnOneAgent(function) ? PlaceOnOneAgent(function, need) : SpreadWarm(function, need);
      if (!replicas) continue;
      for (const Replica& replica : *replicas) {
        by_name_.at(replica.agent)->Reserve(need, replica.min_containers);
      }
      CountGpus(need, std::max(function.min_containers, 0));
      SortByAgent(*replicas);
      placed = std::move(*replicas);
      return true;
    }
    return false;
  }

  /// One line saying what `function` needs and what each agent offers.
  std::string DescribeMisfit(const spec::Function& function) const {
    std::string line = "function " + function.name + " fits on no agent: it needs ";
    for (std::size_t i = 0; i < function.gpu.size(); ++i) {
      if (i > 0) line += " or ";
      line += function.gpu[i].type + ":" + std::to_string(function.gpu[i].count);
    }
    if (!function.gpu.empty()) line += ", ";
    line += FormatCores(function.cpu) + ", " + core::FormatSizeForPeople(function.memory);
    if (function.min_containers > 1) {
      line += " for each of " + std::to_string(function.min_containers) + " warm containers";
    } else if (function.min_containers == 1) {
      line += " for a warm container";
    }
    if (function.schedule && function.min_containers > 1) line += " on one agent";
    if (states_.empty()) return line + "; there are no agents";
    line += "; free:";
    for (const AgentState& state : states_) {
      line += " " + state.inventory->name + " has " +
              FormatNumber(std::max(0.0, state.FreeCpus())) + " of " +
              FormatCores(state.inventory->cpus) + ", " +
              core::FormatSizeForPeople(state.FreeMemory()) + " of " +
              core::FormatSizeForPeople(state.inventory->memory_bytes);
      if (state.inventory->gpus.empty()) line += ", no GPUs";
      for (const auto& [type, count] : state.inventory->gpus) {
        line += ", " + type + ":" + std::to_string(std::max(0, state.FreeGpus(type))) + " of " +
                std::to_string(count);
      }
      line += ";";
    }
    line.pop_back();
    return line;
  }

 private:
  static int TotalMax(const spec::Function& function) {
    return std::max({function.max_containers, function.min_containers, 1});
  }

  Need NeedOf(const spec::Function& function, std::string gpu_type, int gpu_count) const {
    return Need{std::move(gpu_type), gpu_count, function.cpu, function.memory};
  }

  /// Whether `function`'s fallback list allows `count` GPUs of `type`.
  static bool AcceptsGpu(const spec::Function& function, const std::string& type, int count) {
    if (function.gpu.empty()) return type.empty() && count == 0;
    return std::any_of(function.gpu.begin(), function.gpu.end(), [&](const spec::GpuRequest& g) {
      return g.count == count && !type.empty() && (g.type == type || g.type == "any");
    });
  }

  /// The concrete needs to try, in order: each request of the fallback list,
  /// "any" expanded to every type in the fleet, the most free first.
  std::vector<Need> Candidates(const spec::Function& function) const {
    std::vector<Need> needs;
    if (function.gpu.empty()) needs.push_back(NeedOf(function, "", 0));
    for (const spec::GpuRequest& request : function.gpu) {
      if (request.type != "any") {
        needs.push_back(NeedOf(function, request.type, request.count));
        continue;
      }
      std::vector<std::pair<std::string, int>> types(free_gpus_by_type_.begin(),
                                                     free_gpus_by_type_.end());
      std::stable_sort(types.begin(), types.end(),
                       [](const auto& a, const auto& b) { return a.second > b.second; });
      for (const auto& [type, free] : types) needs.push_back(NeedOf(function, type, request.count));
    }
    return needs;
  }

  Replica MakeReplica(const spec::Function& function, const AgentState& agent, const Need& need,
                      int warm) const {
    Replica replica;
    replica.agent = agent.inventory->name;
    replica.gpu_type = need.gpu_type;
    replica.gpu_count = need.gpu_count;
    replica.min_containers = warm;
    replica.owns_schedule = function.schedule.has_value();
    return replica;
  }

  std::optional<std::vector<Replica>> PlaceOnOneAgent(const spec::Function& function,
                                                      const Need& need) const {
    int warm = std::max(function.min_containers, 0);
    const AgentState* best = nullptr;
    for (const AgentState& state : states_) {
      if (!state.Eligible(need) || state.Room(need, warm) < warm) continue;
      if (best == nullptr || LessLoaded(&state, best)) best = &state;
    }
    if (best == nullptr) return std::nullopt;
    std::vector<Replica> replicas = {MakeReplica(function, *best, need, warm)};
    replicas.front().max_containers = TotalMax(function);
    return replicas;
  }

  /// Warm containers round-robin over up to `min_containers` agents with
  /// room, the least loaded first.
  std::optional<std::vector<Replica>> SpreadWarm(const spec::Function& function,
                                                 const Need& need) const {
    int warm = function.min_containers;
    std::vector<std::pair<const AgentState*, int>> candidates;  // agent, room
    for (const AgentState& state : states_) {
      if (!state.Eligible(need)) continue;
      if (int room = state.Room(need, warm); room > 0) candidates.emplace_back(&state, room);
    }
    std::size_t used = std::min(candidates.size(), static_cast<std::size_t>(warm));
    std::partial_sort(candidates.begin(), candidates.begin() + used, candidates.end(),
                      [](const auto& a, const auto& b) { return LessLoaded(a.first, b.first); });
    candidates.resize(used);

    std::vector<Replica> replicas;
    for (const auto& [agent, room] : candidates) {
      replicas.push_back(MakeReplica(function, *agent, need, 0));
    }
    int left = warm;
    while (left > 0) {
      bool progressed = false;
      for (std::size_t i = 0; i < candidates.size() && left > 0; ++i) {
        if (replicas[i].min_containers < candidates[i].second) {
          ++replicas[i].min_containers;
          --left;
          progressed = true;
        }
      }
      if (!progressed) return std::nullopt;
    }
    SplitMaxContainers(replicas, TotalMax(function));
    return replicas;
  }

  void CountGpus(const Need& need, int warm) {
    if (need.gpu_count > 0) free_gpus_by_type_[need.gpu_type] -= need.gpu_count * warm;
  }

  std::vector<AgentState> states_;
  std::map<std::string, AgentState*> by_name_;
  std::map<std::string, int> free_gpus_by_type_;  // over the fleet, for "any"
};

/// What a function holds of the fleet per warm container (or per container
/// when none is warm): placing the hungriest first leaves the small ones the
/// gaps instead of the other way round.
int GpuDemand(const spec::Function& function) {
  int most = 0;
  for (const spec::GpuRequest& request : function.gpu) most = std::max(most, request.count);
  return most * std::max(function.min_containers, 1);
}

core::Error Malformed(const std::string& path, const std::string& what) {
  return core::Error{core::ErrorCode::kInvalidArgument, "placement" + path + ": " + what, {}};
}

}  // namespace

AgentInventory InventoryFromAgent(std::string name, const nlohmann::json& node,
                                  const nlohmann::json& desired, std::string_view except_app) {
  AgentInventory inventory;
  inventory.name = std::move(name);
  inventory.cpus = NumberOr<double>(node, "cpus", 0);
  inventory.memory_bytes = NumberOr<std::uint64_t>(node, "memory_bytes", 0);
  const json& gpus = Member(node, "gpus");
  if (gpus.is_array()) {
    for (const json& gpu : gpus) {
      const json& type = Member(gpu, "type");
      if (type.is_string()) ++inventory.gpus[type.get<std::string>()];
    }
  }
  // "any" claims whichever type the agent gives it; counting it against the
  // type the host has most of is the guess most likely to be right.
  const std::string plentiful = MostPlentifulType(inventory.gpus);
  const json& apps = Member(desired, "apps");
  if (!apps.is_object()) return inventory;
  for (const auto& [app_name, app] : apps.items()) {
    if (app_name == except_app) continue;
    const json& functions = Member(app, "functions");
    if (!functions.is_object()) continue;
    for (const auto& [function_name, function] : functions.items()) {
      int warm = NumberOr<int>(function, "min_containers", 0);
      if (warm <= 0) continue;
      inventory.reserved_cpus += warm * NumberOr<double>(function, "cpu", 0);
      inventory.reserved_memory_bytes +=
          static_cast<std::uint64_t>(warm) * NumberOr<std::uint64_t>(function, "memory_bytes", 0);
      const json& gpu = Member(function, "gpu");
      const json& type = Member(gpu, "type");
      int count = NumberOr<int>(gpu, "count", 0);
      if (!type.is_string() || count <= 0) continue;
      std::string reserved_type =
          type.get<std::string>() == "any" ? plentiful : type.get<std::string>();
      if (!reserved_type.empty()) inventory.reserved_gpus[reserved_type] += warm * count;
    }
  }
  return inventory;
}

core::Result<Placement> Place(const spec::App& app, const std::vector<AgentInventory>& agents,
                              const Placement& previous) {
  std::vector<const spec::Function*> order;
  order.reserve(app.functions.size());
  for (const auto& [name, function] : app.functions) order.push_back(&function);
  std::stable_sort(order.begin(), order.end(),
                   [](const spec::Function* a, const spec::Function* b) {
                     return GpuDemand(*a) > GpuDemand(*b);  // app.functions is by name already
                   });

  Placer placer(agents);
  Placement placement;
  // Functions that stay where they were go first, so that a new function
  // cannot take the room an unchanged one had.
  std::vector<const spec::Function*> fresh;
  for (const spec::Function* function : order) {
    auto before = previous.functions.find(function->name);
    std::vector<Replica> placed;
    if (before != previous.functions.end() &&
        placer.KeepPrevious(*function, before->second, placed)) {
      placement.functions[function->name] = std::move(placed);
    } else {
      fresh.push_back(function);
    }
  }
  std::string misfits;
  for (const spec::Function* function : fresh) {
    std::vector<Replica> placed;
    if (placer.PlaceNew(*function, placed)) {
      placement.functions[function->name] = std::move(placed);
    } else {
      if (!misfits.empty()) misfits += "\n";
      misfits += placer.DescribeMisfit(*function);
    }
  }
  if (!misfits.empty()) return core::Error{core::ErrorCode::kConflict, misfits, {}};
  return placement;
}

nlohmann::json PlacementToJson(const Placement& placement) {
  json document = json::object();
  for (const auto& [function, replicas] : placement.functions) {
    json list = json::array();
    for (const Replica& replica : replicas) {
      list.push_back({{"agent", replica.agent},
                      {"gpu_type", replica.gpu_type},
                      {"gpu_count", replica.gpu_count},
                      {"min_containers", replica.min_containers},
                      {"max_containers", replica.max_containers},
                      {"owns_schedule", replica.owns_schedule}});
    }
    document[function] = std::move(list);
  }
  return document;
}

core::Result<Placement> PlacementFromJson(const nlohmann::json& document) {
  if (!document.is_object()) return Malformed("", "expected an object of functions");
  static const std::set<std::string> kMembers = {
      "agent", "gpu_type", "gpu_count", "min_containers", "max_containers", "owns_schedule"};
  Placement placement;
  for (const auto& [function, replicas] : document.items()) {
    std::string function_path = "." + function;
    if (!replicas.is_array()) return Malformed(function_path, "expected an array of replicas");
    std::vector<Replica>& placed = placement.functions[function];
    for (std::size_t i = 0; i < replicas.size(); ++i) {
      const json& item = replicas[i];
      std::string path = function_path + "[" + std::to_string(i) + "]";
      if (!item.is_object()) return Malformed(path, "expected an object");
      for (const auto& [key, value] : item.items()) {
        if (!kMembers.contains(key)) return Malformed(path + "." + key, "unknown member");
      }
      for (const std::string& key : kMembers) {
        if (!item.contains(key)) return Malformed(path + "." + key, "missing");
      }
      for (const char* key : {"agent", "gpu_type"}) {
        if (!item[key].is_string()) return Malformed(path + "." + key, "expected a string");
      }
      for (const char* key : {"gpu_count", "min_containers", "max_containers"}) {
        if (!item[key].is_number_integer() || item[key].get<long long>() < 0 ||
            item[key].get<long long>() > INT_MAX) {
          return Malformed(path + "." + key, "expected an integer >= 0");
        }
      }
      if (!item["owns_schedule"].is_boolean()) {
        return Malformed(path + ".owns_schedule", "expected true or false");
      }
      Replica replica;
      replica.agent = item["agent"].get<std::string>();
      replica.gpu_type = item["gpu_type"].get<std::string>();
      replica.gpu_count = item["gpu_count"].get<int>();
      replica.min_containers = item["min_containers"].get<int>();
      replica.max_containers = item["max_containers"].get<int>();
      replica.owns_schedule = item["owns_schedule"].get<bool>();
      placed.push_back(std::move(replica));
    }
    SortByAgent(placed);
  }
  return placement;
}

}  // namespace planner
