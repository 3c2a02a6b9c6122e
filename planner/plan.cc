#include "planner/plan.h"

#include <algorithm>
#include <filesystem>
#include <set>
#include <utility>

#include "core/sha256.h"
#include "planner/desired_app.h"
#include "spec/canonical.h"

namespace planner {
namespace {

using nlohmann::json;
using Attributes = std::map<std::string, json>;

// Attributes whose change makes the resource new rather than changed: a
// function on another image or another kind of GPU is a new container.
const std::set<std::string> kForcesReplacement = {"image.digest", "gpu.type", "digest"};

struct Resource {
  std::string type;
  std::string name;
  Attributes attributes;
  std::vector<std::string> agents;  // where it is; none for images and the budget
};

// One function's, schedule's, secret's or volume's part of each agent's
// document, before they are merged into one resource. Parts point into the
// documents, which outlive them: a plan of 10,000 functions copies nothing
// it does not change.
struct Parts {
  std::string type;
  std::string name;
  std::vector<std::pair<std::string, const json*>> by_agent;  // agents in order; null: a volume

  bool operator==(const Parts& other) const {
    if (by_agent.size() != other.by_agent.size()) return false;
    for (std::size_t i = 0; i < by_agent.size(); ++i) {
      if (by_agent[i].first != other.by_agent[i].first) return false;
      const json* mine = by_agent[i].second;
      const json* theirs = other.by_agent[i].second;
      if ((mine == nullptr) != (theirs == nullptr) || (mine && *mine != *theirs)) return false;
    }
    return true;
  }
};

// `object[key]`, or an empty object or array when it has none; never a
// temporary, so it can be iterated over.
const json& Member(const json& object, const char* key, const json& empty) {
  auto found = object.find(key);
  return found == object.end() ? empty : *found;
}
const json kNoObject = json::object();
const json kNoArray = json::array();

// Members of a function's document that are not attributes of the function
// resource: its share of containers is `placement.AGENT.*`, its schedule a
// resource of its own.
bool OwnAttribute(const std::string& key) {
  return key != "schedule" && key != "min_containers" && key != "max_containers";
}

void Flatten(const json& value, const std::string& prefix, Attributes& out) {
  if (value.is_object() && !value.empty()) {
    for (const auto& [key, member] : value.items())
      Flatten(member, prefix.empty() ? key : prefix + "." + key, out);
    return;
  }
  out[prefix] = value;
}

std::string Address(const std::string& type, const std::string& name) {
  return name.empty() ? type : type + "." + name;
}

// The parts of every resource found in the agents' documents, by address.
std::map<std::string, Parts> Split(const std::map<std::string, json>& documents) {
  std::map<std::string, Parts> parts;
  auto add = [&](const char* type, const std::string& name, const std::string& agent,
                 const json* part) {
    Parts& entry = parts[Address(type, name)];
    entry.type = type;
    entry.name = name;
    entry.by_agent.emplace_back(agent, part);
  };
  for (const auto& [agent, document] : documents) {
    if (!document.is_object()) continue;
    for (const auto& [name, function] : Member(document, "functions", kNoObject).items()) {
      add("function", name, agent, &function);
      if (auto schedule = function.find("schedule"); schedule != function.end())
        add("schedule", name, agent, &*schedule);
    }
    for (const auto& [name, pairs] : Member(document, "secrets", kNoObject).items())
      add("secret", name, agent, &pairs);
    for (const auto& volume : Member(document, "volumes", kNoArray))
      add("volume", volume.get<std::string>(), agent, nullptr);
    // The app key's hash, as a secret of its own: secret names are lower case,
    // so this one cannot be a user's.
    if (auto key = document.find("web_key_sha256"); key != document.end())
      add("secret", "GANTRY_APP_KEY", agent, &*key);
  }
  return parts;
}

// One resource from its parts: attributes every agent agrees on as they are,
// the others as {agent: value}. A function adds each agent's share of its
// containers, `placement.AGENT.*`; the others the agents they are on.
Resource Merge(const Parts& parts) {
  Resource resource{parts.type, parts.name, {}, {}};
  std::map<std::string, std::vector<std::pair<std::string, json>>> values;
  std::vector<std::string> agents;
  for (const auto& [agent, part] : parts.by_agent) {
    agents.push_back(agent);
    if (!part) continue;
    Attributes flat;
    if (parts.type == "function") {
      for (const auto& [key, value] : part->items()) {
        if (OwnAttribute(key)) Flatten(value, key, flat);
      }
      resource.attributes["placement." + agent + ".min_containers"] =
          part->value("min_containers", json());
      resource.attributes["placement." + agent + ".max_containers"] =
          part->value("max_containers", json());
    } else {
      Flatten(*part, parts.type == "secret" ? "value" : "", flat);
    }
    for (auto& [key, value] : flat) values[key].emplace_back(agent, std::move(value));
  }
  for (auto& [key, by_agent] : values) {
    bool agree = by_agent.size() == parts.by_agent.size() &&
                 std::all_of(by_agent.begin(), by_agent.end(),
                             [&](const auto& entry) { return entry.second == by_agent[0].second; });
    if (agree) {
      resource.attributes[key] = std::move(by_agent[0].second);
    } else {
      json per_agent = json::object();
      for (auto& [agent, value] : by_agent) per_agent[agent] = std::move(value);
      resource.attributes[key] = std::move(per_agent);
    }
  }
  if (parts.type != "function") resource.attributes["agents"] = agents;
  resource.agents = std::move(agents);
  return resource;
}

bool Sensitive(const std::string& type, const std::string& attribute) {
  return type == "secret" && (attribute == "value" || attribute.rfind("value.", 0) == 0);
}

// `value` as it is on `agent`: a value the agents disagree on is {agent: value}.
json ValueOn(const json& value, const std::string& agent) {
  return value.is_object() && !value.empty() ? value.value(agent, json()) : value;
}

// Whether an attribute that forces replacement changes where it matters: on
// an agent that has the resource before and after. A function that spreads
// to a second agent with another GPU type is not replaced on the first.
bool ForcesReplacement(const std::string& key, const json& before, const json& after,
                       const Resource& old_resource, const Resource& new_resource) {
  if (kForcesReplacement.count(key) == 0) return false;
  if (old_resource.agents.empty() && new_resource.agents.empty()) return true;
  for (const std::string& agent : old_resource.agents) {
    bool stays = std::find(new_resource.agents.begin(), new_resource.agents.end(), agent) !=
                 new_resource.agents.end();
    if (stays && ValueOn(before, agent) != ValueOn(after, agent)) return true;
  }
  return false;
}

// The change from `before` to `after` (either may be absent).
ResourceChange Diff(const std::string& type, const std::string& name, const Resource* before,
                    const Resource* after) {
  ResourceChange change{type, name, Action::kNoOp, {}, {}};
  static const Attributes kNone;
  const Attributes& old_attributes = before ? before->attributes : kNone;
  const Attributes& new_attributes = after ? after->attributes : kNone;
  std::set<std::string> keys;
  for (const auto& [key, value] : old_attributes) keys.insert(key);
  for (const auto& [key, value] : new_attributes) keys.insert(key);
  bool replace = false;
  for (const std::string& key : keys) {
    auto old_value = old_attributes.find(key);
    auto new_value = new_attributes.find(key);
    json old_json = old_value == old_attributes.end() ? json() : old_value->second;
    json new_json = new_value == new_attributes.end() ? json() : new_value->second;
    if (before && after && old_json == new_json) continue;
    bool forces = before && after && ForcesReplacement(key, old_json, new_json, *before, *after);
    replace = replace || forces;
    change.changes.push_back(
        {key, std::move(old_json), std::move(new_json), Sensitive(type, key), forces});
  }
  if (!before && after) {
    change.action = Action::kCreate;
  } else if (before && !after) {
    change.action = Action::kDelete;
  } else if (!change.changes.empty()) {
    change.action = replace ? Action::kReplace : Action::kUpdate;
  }
  return change;
}

// Resource changes from `before` to `after`; resources whose documents are
// equal on every agent are no-ops without being flattened.
std::vector<ResourceChange> DiffDocuments(const std::map<std::string, json>& before,
                                          const std::map<std::string, json>& after,
                                          bool keep_no_ops) {
  std::map<std::string, Parts> old_parts = Split(before);
  std::map<std::string, Parts> new_parts = Split(after);
  std::set<std::string> addresses;
  for (const auto& [address, parts] : old_parts) addresses.insert(address);
  for (const auto& [address, parts] : new_parts) addresses.insert(address);
  std::vector<ResourceChange> changes;
  for (const std::string& address : addresses) {
    auto old_entry = old_parts.find(address);
    auto new_entry = new_parts.find(address);
    const Parts* old_part = old_entry == old_parts.end() ? nullptr : &old_entry->second;
    const Parts* new_part = new_entry == new_parts.end() ? nullptr : &new_entry->second;
    const Parts& any = old_part ? *old_part : *new_part;
    std::set<std::string> agents;
    for (const Parts* part : {old_part, new_part})
      if (part)
        for (const auto& [agent, document] : part->by_agent) agents.insert(agent);
    if (old_part && new_part && *old_part == *new_part) {
      if (keep_no_ops)
        changes.push_back({any.type, any.name, Action::kNoOp, {}, {agents.begin(), agents.end()}});
      continue;
    }
    std::optional<Resource> old_resource, new_resource;
    if (old_part) old_resource = Merge(*old_part);
    if (new_part) new_resource = Merge(*new_part);
    ResourceChange change = Diff(any.type, any.name, old_resource ? &*old_resource : nullptr,
                                 new_resource ? &*new_resource : nullptr);
    change.agents.assign(agents.begin(), agents.end());
    if (keep_no_ops || change.action != Action::kNoOp) changes.push_back(std::move(change));
  }
  return changes;
}

// Resources only the state knows (images, the budget): recorded vs wanted.
void DiffRecorded(const std::string& type, const std::string& name, const json& before,
                  const json& after, std::vector<ResourceChange>& changes) {
  if (before.is_null() && after.is_null()) return;
  std::optional<Resource> old_resource, new_resource;
  if (!before.is_null()) {
    old_resource = Resource{type, name, {}, {}};
    Flatten(before, "", old_resource->attributes);
  }
  if (!after.is_null()) {
    new_resource = Resource{type, name, {}, {}};
    Flatten(after, "", new_resource->attributes);
  }
  changes.push_back(Diff(type, name, old_resource ? &*old_resource : nullptr,
                         new_resource ? &*new_resource : nullptr));
}

// What the agent reports, with what it hides filled in from the state: the
// agent shows each secret value as "(sensitive)"; where the state holds a
// hash for the same secret and key, that hash stands for it. A key the state
// does not know stays "(sensitive)", which no wanted hash equals.
json Refreshed(const json& reported, const DeployState* state, const std::string& agent) {
  if (reported.is_null() || !state) return reported;
  auto record = state->agents.find(agent);
  if (record == state->agents.end()) return reported;
  json refreshed = reported;
  const json& recorded_secrets = Member(record->second.app, "secrets", kNoObject);
  for (const auto& [secret, pairs] : Member(reported, "secrets", kNoObject).items()) {
    for (const auto& [key, value] : pairs.items()) {
      auto recorded = recorded_secrets.find(secret);
      if (recorded != recorded_secrets.end() && recorded->contains(key))
        refreshed["secrets"][secret][key] = (*recorded)[key];
    }
  }
  return refreshed;
}

std::string DocumentDigest(const json& document) {
  return document.is_null() ? "" : core::Sha256Digest(document.dump());
}

const char* kTypeOrder[] = {"image", "secret", "volume", "function", "schedule", "budget"};

int TypeRank(const std::string& type) {
  for (int rank = 0; rank < 6; ++rank)
    if (type == kTypeOrder[rank]) return rank;
  return 6;
}

void SortChanges(std::vector<ResourceChange>& changes) {
  std::sort(changes.begin(), changes.end(), [](const ResourceChange& a, const ResourceChange& b) {
    return std::pair(TypeRank(a.type), a.name) < std::pair(TypeRank(b.type), b.name);
  });
}

// kUnavailable when the state names an agent that is not among the inputs'
// (not registered, or not reachable): a plan never forgets what runs somewhere.
core::Status CheckStateAgents(const PlanInputs& inputs) {
  if (!inputs.state) return core::Ok{};
  std::string missing;
  for (const auto& [agent, record] : inputs.state->agents) {
    bool refreshed = std::any_of(inputs.agents.begin(), inputs.agents.end(),
                                 [&](const AgentView& view) { return view.name == agent; });
    if (!refreshed) missing += (missing.empty() ? "" : ", ") + agent;
  }
  if (missing.empty()) return core::Ok{};
  return core::Error{core::ErrorCode::kUnavailable,
                     "app " + inputs.app->name + " runs on agent(s) " + missing +
                         " that cannot be refreshed (not registered or not reachable); "
                         "register them again or bring them back before planning",
                     {}};
}

}  // namespace

const char* ActionName(Action action) {
  switch (action) {
    case Action::kNoOp:
      return "no-op";
    case Action::kCreate:
      return "create";
    case Action::kUpdate:
      return "update";
    case Action::kReplace:
      return "replace";
    case Action::kDelete:
      return "delete";
  }
  return "no-op";
}

std::string ResourceChange::Address() const {
  return planner::Address(type, name);
}

bool Plan::HasChanges() const {
  Summary summary = Count();
  return summary.add + summary.change + summary.destroy > 0 ||
         std::any_of(agents.begin(), agents.end(), [](const AgentChange& c) { return c.push; });
}

Plan::Summary Plan::Count() const {
  Summary summary;
  for (const ResourceChange& change : resources) {
    if (change.action == Action::kCreate || change.action == Action::kReplace) ++summary.add;
    if (change.action == Action::kUpdate) ++summary.change;
    if (change.action == Action::kDelete || change.action == Action::kReplace) ++summary.destroy;
  }
  return summary;
}

core::Result<Placement> PlaceApp(const PlanInputs& inputs) {
  if (auto known = CheckStateAgents(inputs); !known.ok()) return known.error();
  std::vector<AgentInventory> inventories;
  for (const AgentView& view : inputs.agents) inventories.push_back(view.inventory);
  Placement previous;
  if (inputs.state && !inputs.state->placement.is_null()) {
    auto recorded = PlacementFromJson(inputs.state->placement);
    if (recorded) previous = std::move(*recorded);
  }
  return Place(*inputs.app, inventories, previous);
}

core::Result<Plan> MakePlan(const PlanInputs& inputs) {
  Plan plan;
  plan.app = inputs.app->name;
  plan.source = std::filesystem::absolute(inputs.app->source).string();
  plan.destroy = inputs.destroy;
  const DeployState* state = inputs.state ? &*inputs.state : nullptr;
  if (state) {
    plan.lineage = state->lineage;
    plan.serial = state->serial;
  }
  std::map<std::string, const AgentView*> views;
  for (const AgentView& view : inputs.agents) views[view.name] = &view;
  if (auto known = CheckStateAgents(inputs); !known.ok()) return known.error();

  std::map<std::string, json> wanted;  // agent -> app document, secret values hashed
  if (!inputs.destroy) {
    auto placement = PlaceApp(inputs);
    if (!placement) return placement.error();
    plan.placement = std::move(*placement);
    plan.images = inputs.image_digests;
    if (inputs.app->budget) plan.budget = spec::BudgetToJson(*inputs.app->budget);
    plan.cost = EstimateCost(*inputs.app, plan.placement, inputs.rates);
    AppDocumentInputs document_inputs;
    document_inputs.app = inputs.app;
    document_inputs.image_digests = inputs.image_digests;
    document_inputs.image_references = inputs.image_references;
    document_inputs.placement = &plan.placement;
    document_inputs.secrets = &inputs.secrets;
    document_inputs.web_key_sha256 = inputs.web_key_sha256;
    document_inputs.budget = plan.cost.budget;
    for (auto& [agent, document] : AppDocuments(document_inputs))
      wanted[agent] = HashSecretValues(std::move(document), views.at(agent)->token);
  }

  std::map<std::string, json> refreshed;  // agent -> what it runs, hashes from the state
  std::map<std::string, json> recorded;   // agent -> what the last apply pushed
  for (const AgentView& view : inputs.agents) {
    if (!view.reported.is_null()) refreshed[view.name] = Refreshed(view.reported, state, view.name);
  }
  if (state) {
    for (const auto& [agent, record] : state->agents) recorded[agent] = record.app;
  }

  plan.resources = DiffDocuments(refreshed, wanted, true);
  DiffRecorded("budget", "", state ? state->budget : json(), plan.budget, plan.resources);
  std::set<std::string> image_names;
  if (state)
    for (const auto& [name, digest] : state->images) image_names.insert(name);
  for (const auto& [name, digest] : plan.images) image_names.insert(name);
  for (const std::string& name : image_names) {
    auto digest = [&](const std::map<std::string, std::string>& images) {
      auto found = images.find(name);
      return found == images.end() ? json() : json{{"digest", found->second}};
    };
    DiffRecorded("image", name, state ? digest(state->images) : json(), digest(plan.images),
                 plan.resources);
  }
  SortChanges(plan.resources);
  plan.drift = DiffDocuments(recorded, refreshed, false);
  SortChanges(plan.drift);

  // Volumes the app no longer has anywhere lose their files on the agents that had them.
  std::set<std::string> kept_volumes;
  for (const auto& [agent, document] : wanted)
    for (const auto& volume : document["volumes"]) kept_volumes.insert(volume.get<std::string>());
  std::set<std::string> agents;
  for (const auto& [agent, document] : wanted) agents.insert(agent);
  for (const auto& [agent, document] : refreshed) agents.insert(agent);
  for (const auto& [agent, document] : recorded) agents.insert(agent);
  static const json kNone;
  auto find = [](const std::map<std::string, json>& documents,
                 const std::string& agent) -> const json& {
    auto found = documents.find(agent);
    return found == documents.end() ? kNone : found->second;
  };
  for (const std::string& agent : agents) {
    const json& after = find(wanted, agent);
    const json& before = find(refreshed, agent);
    // An agent already running what the spec wants, which the state records
    // otherwise (the app vanished from it, a push whose answer was lost):
    // apply only records it, so drift and the state converge too.
    bool push = after != before;
    if (!push && find(recorded, agent) == after) continue;
    AgentChange change{
        agent, views.at(agent)->url, DocumentDigest(views.at(agent)->reported), after, {}, push};
    for (const auto& volume : Member(before, "volumes", kNoArray))
      if (kept_volumes.count(volume.get<std::string>()) == 0)
        change.delete_volumes.push_back(volume.get<std::string>());
    plan.agents.push_back(std::move(change));
  }
  return plan;
}

}  // namespace planner

namespace planner {
namespace {

json ChangesToJson(const std::vector<ResourceChange>& changes) {
  json written = json::array();
  for (const ResourceChange& change : changes) {
    json attributes = json::array();
    for (const AttributeChange& attribute : change.changes) {
      const json hidden = "(sensitive)";
      bool before_hidden = attribute.sensitive && !attribute.before.is_null();
      bool after_hidden = attribute.sensitive && !attribute.after.is_null();
      attributes.push_back({{"attribute", attribute.attribute},
                            {"before", before_hidden ? hidden : attribute.before},
                            {"after", after_hidden ? hidden : attribute.after},
                            {"sensitive", attribute.sensitive},
                            {"forces_replacement", attribute.forces_replacement}});
    }
    written.push_back({{"address", change.Address()},
                       {"type", change.type},
                       {"name", change.name},
                       {"action", ActionName(change.action)},
                       {"changes", std::move(attributes)},
                       {"agents", change.agents}});
  }
  return written;
}

core::Error Malformed(const std::string& member, const std::string& expected) {
  return core::Error{
      core::ErrorCode::kInvalidArgument, "plan file: " + member + ": expected " + expected, {}};
}

core::Result<std::vector<ResourceChange>> ChangesFromJson(const json& document,
                                                          const std::string& member) {
  if (!document.is_array()) return Malformed(member, "an array");
  std::vector<ResourceChange> changes;
  for (std::size_t i = 0; i < document.size(); ++i) {
    const json& entry = document[i];
    std::string path = member + "[" + std::to_string(i) + "]";
    if (!entry.is_object() || !entry.value("type", json()).is_string() ||
        !entry.value("name", json()).is_string() || !entry.value("action", json()).is_string() ||
        !entry.value("changes", json()).is_array() || !entry.value("agents", json()).is_array()) {
      return Malformed(path, "an object with type, name, action, changes and agents");
    }
    ResourceChange change{entry["type"], entry["name"], Action::kNoOp, {}, {}};
    for (const json& agent : entry["agents"]) {
      if (!agent.is_string()) return Malformed(path + ".agents", "agent names");
      change.agents.push_back(agent);
    }
    std::string action = entry["action"];
    bool known = false;
    for (Action candidate :
         {Action::kNoOp, Action::kCreate, Action::kUpdate, Action::kReplace, Action::kDelete}) {
      if (action == ActionName(candidate)) {
        change.action = candidate;
        known = true;
      }
    }
    if (!known) return Malformed(path + ".action", "create, update, replace, delete or no-op");
    for (const json& attribute : entry["changes"]) {
      if (!attribute.is_object() || !attribute.value("attribute", json()).is_string())
        return Malformed(path + ".changes", "objects with an attribute");
      change.changes.push_back({attribute["attribute"], attribute.value("before", json()),
                                attribute.value("after", json()),
                                attribute.value("sensitive", false),
                                attribute.value("forces_replacement", false)});
    }
    changes.push_back(std::move(change));
  }
  return changes;
}

}  // namespace

json Plan::ToJson() const {
  json agent_changes = json::array();
  for (const AgentChange& change : agents) {
    agent_changes.push_back({{"agent", change.agent},
                             {"url", change.url},
                             {"before_digest", change.before_digest},
                             {"after", change.after},
                             {"delete_volumes", change.delete_volumes},
                             {"push", change.push}});
  }
  Summary summary = Count();
  return {{"format_version", kFormatVersion},
          {"app", app},
          {"source", source},
          {"destroy", destroy},
          {"lineage", lineage},
          {"serial", serial},
          {"images", images},
          {"budget", budget},
          {"placement", PlacementToJson(placement)},
          {"cost", cost.ToJson()},
          {"resource_changes", ChangesToJson(resources)},
          {"drift", ChangesToJson(drift)},
          {"agent_changes", std::move(agent_changes)},
          {"summary",
           {{"add", summary.add}, {"change", summary.change}, {"destroy", summary.destroy}}}};
}

core::Result<Plan> Plan::FromJson(const json& document) {
  if (!document.is_object()) return Malformed("the document", "a JSON object");
  if (document.value("format_version", json()) != json(kFormatVersion))
    return Malformed("format_version", std::to_string(kFormatVersion));
  Plan plan;
  const json& app = document.value("app", json());
  if (!app.is_string() || app.get<std::string>().empty()) return Malformed("app", "an app name");
  plan.app = app;
  if (!document.value("source", json()).is_string()) return Malformed("source", "a path");
  plan.source = document["source"];
  if (!document.value("destroy", json()).is_boolean()) return Malformed("destroy", "a boolean");
  plan.destroy = document["destroy"];
  if (!document.value("lineage", json()).is_string()) return Malformed("lineage", "a string");
  plan.lineage = document["lineage"];
  if (!document.value("serial", json()).is_number_integer())
    return Malformed("serial", "an integer");
  plan.serial = document["serial"];
  const json& images = document.value("images", json());
  if (!images.is_object()) return Malformed("images", "an object");
  for (const auto& [name, digest] : images.items()) {
    if (!digest.is_string()) return Malformed("images." + name, "a digest");
    plan.images[name] = digest;
  }
  plan.budget = document.value("budget", json());
  auto placement = PlacementFromJson(document.value("placement", json::object()));
  if (!placement) return placement.error();
  plan.placement = std::move(*placement);
  auto resources = ChangesFromJson(document.value("resource_changes", json()), "resource_changes");
  if (!resources) return resources.error();
  plan.resources = std::move(*resources);
  auto drift = ChangesFromJson(document.value("drift", json()), "drift");
  if (!drift) return drift.error();
  plan.drift = std::move(*drift);
  const json& agent_changes = document.value("agent_changes", json());
  if (!agent_changes.is_array()) return Malformed("agent_changes", "an array");
  for (std::size_t i = 0; i < agent_changes.size(); ++i) {
    const json& entry = agent_changes[i];
    std::string path = "agent_changes[" + std::to_string(i) + "]";
    if (!entry.is_object() || !entry.value("agent", json()).is_string() ||
        !entry.value("url", json()).is_string() ||
        !entry.value("before_digest", json()).is_string() || !entry.contains("after") ||
        !(entry.value("after", json()).is_object() || entry.value("after", json()).is_null()) ||
        !entry.value("delete_volumes", json()).is_array()) {
      return Malformed(path, "an object with agent, url, before_digest, after and delete_volumes");
    }
    if (!entry.value("push", json()).is_boolean()) return Malformed(path + ".push", "a boolean");
    AgentChange change{entry["agent"],
                       entry["url"],
                       entry["before_digest"],
                       entry.value("after", json()),
                       {},
                       entry.value("push", true)};
    for (const json& volume : entry["delete_volumes"]) {
      if (!volume.is_string()) return Malformed(path + ".delete_volumes", "volume names");
      change.delete_volumes.push_back(volume);
    }
    plan.agents.push_back(std::move(change));
  }
  return plan;
}

}  // namespace planner
