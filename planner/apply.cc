#include "planner/apply.h"

#include <algorithm>
#include <set>
#include <thread>

#include "core/random.h"
#include "core/sha256.h"
#include "planner/agent_client.h"

namespace planner {
namespace {

using nlohmann::json;

core::Error Stale(const std::string& why) {
  return core::Error{
      core::ErrorCode::kConflict, "the plan is stale: " + why + "; run gantry plan again", {}};
}

// The pushed document: the plan's, with each hashed secret value replaced by
// the value read now, which must hash the same.
core::Result<json> WithSecretValues(const json& hashed, const std::string& token,
                                    const std::map<std::string, SecretPairs>& secrets) {
  json document = hashed;
  if (!document.is_object() || !document.contains("secrets")) return document;
  for (auto& [secret, pairs] : document["secrets"].items()) {
    auto values = secrets.find(secret);
    for (auto& [key, value] : pairs.items()) {
      const SecretPairs* found = values == secrets.end() ? nullptr : &values->second;
      auto pair = found ? found->find(key) : SecretPairs::const_iterator();
      if (!found || pair == found->end() || !value.is_string() ||
          SecretValueHash(token, secret, key, pair->second) != value.get<std::string>()) {
        return Stale("secret " + secret + " (" + key +
                     ") is not what it was when the plan was made");
      }
      value = pair->second;
    }
  }
  return document;
}

std::int64_t GenerationOf(const json& desired) {
  return desired.value("generation", std::int64_t{0});
}

json AppOf(const json& desired, const std::string& app) {
  auto apps = desired.find("apps");
  if (apps == desired.end() || !apps->contains(app)) return json();
  return (*apps)[app];
}

// Empty when the app runs on the agent as `document` says; else what is
// still missing, for the progress line and the timeout's error.
std::string NotConverged(const json& status, const std::string& app, const json& document) {
  const json apps = status.value("apps", json::object());
  if (document.is_null()) return apps.contains(app) ? "the app is still there" : "";
  if (!apps.contains(app)) return "the app is not in its status";
  const json functions = apps[app].value("functions", json::object());
  const json wanted = document.value("functions", json::object());
  for (const auto& [name, function] : wanted.items()) {
    if (!functions.contains(name)) return "function " + name + " is not in its status";
    const json& reported = functions[name];
    const json errors = reported.value("errors", json::array());
    if (!errors.empty())
      return "function " + name + ": " +
             (errors[0].is_string() ? errors[0].get<std::string>() : errors[0].dump());
    if (function.contains("web")) {
      int ready = reported.value("containers", json::object()).value("ready", 0);
      int warm = function.value("min_containers", 0);
      if (ready < warm) {
        return "function " + name + ": " + std::to_string(ready) + " of " + std::to_string(warm) +
               " warm containers ready";
      }
    }
  }
  return "";
}

}  // namespace

bool ApplyResult::ok() const {
  return std::all_of(agents.begin(), agents.end(), [](const AgentOutcome& o) { return o.ok; });
}

core::Result<ApplyResult> ApplyPlan(const Plan& plan, const Fleet& fleet,
                                    const std::optional<DeployState>& state,
                                    const ApplyOptions& options) {
  auto progress = [&](const std::string& line) {
    if (options.progress) options.progress(line);
  };
  const std::string lineage = state ? state->lineage : "";
  const std::int64_t serial = state ? state->serial : 0;
  if (lineage != plan.lineage || serial != plan.serial) {
    return Stale("the state of app " + plan.app + " changed since it was made (serial " +
                 std::to_string(plan.serial) + ", now " + std::to_string(serial) + ")");
  }

  // Everything that can refuse the plan is checked before the first push.
  std::map<std::string, AgentClient> clients;
  std::map<std::string, json> documents;  // agent -> the document to push, values in
  for (const AgentChange& change : plan.agents) {
    const AgentEntry* entry = fleet.Find(change.agent);
    if (!entry) {
      return core::Error{
          core::ErrorCode::kNotFound, "agent " + change.agent + " is no longer registered", {}};
    }
    if (entry->url != change.url)
      return Stale("agent " + change.agent + " is registered at another URL now");
    auto client = AgentClient::Open(*entry);
    if (!client) return client.error();
    auto desired = client->Desired();
    if (!desired) return desired.error();
    json reported = AppOf(*desired, plan.app);
    std::string digest = reported.is_null() ? "" : core::Sha256Digest(reported.dump());
    if (digest != change.before_digest)
      return Stale("app " + plan.app + " changed on agent " + change.agent);
    auto token = ReadToken(*entry);
    if (!token) return token.error();
    if (!change.after.is_null()) {
      auto document = WithSecretValues(change.after, *token, options.secrets);
      if (!document) return document.error();
      documents[change.agent] = std::move(*document);
    }
    clients.emplace(change.agent, std::move(*client));
  }

  DeployState next = state.value_or(DeployState{});
  if (next.lineage.empty()) {
    auto lineage = core::RandomHex(16);
    if (!lineage) return lineage.error();
    next.lineage = std::move(*lineage);
  }
  next.app = plan.app;
  auto write = [&]() -> core::Status {
    ++next.serial;
    return WriteState(options.state_path, next);
  };

  ApplyResult result;
  // Agents that gain or keep something first, removals last: a function that
  // moves is started on its new agent before it stops on the old one.
  std::vector<const AgentChange*> order;
  for (const AgentChange& change : plan.agents)
    if (!change.after.is_null()) order.push_back(&change);
  for (const AgentChange& change : plan.agents)
    if (change.after.is_null()) order.push_back(&change);
  std::vector<const AgentChange*> pushed;
  for (const AgentChange* change : order) {
    AgentClient& client = clients.at(change->agent);
    AgentOutcome outcome{change->agent, false, ""};
    std::int64_t generation = 0;
    if (change->push) {
      core::Result<json> answer = core::Error{};
      // Another app's apply may move the agent's generation between our read
      // and our push: read it again and retry.
      for (int attempt = 0; attempt < 3; ++attempt) {
        auto desired = client.Desired();
        if (!desired) {
          answer = desired.error();
          break;
        }
        generation = GenerationOf(*desired) + 1;
        answer = change->after.is_null()
                     ? client.DeleteApp(plan.app, generation)
                     : client.PutApp(plan.app, generation, documents[change->agent]);
        if (answer || answer.error().code != core::ErrorCode::kConflict) break;
      }
      // An app already gone from the agent is what removing it wants.
      bool gone =
          !answer && change->after.is_null() && answer.error().code == core::ErrorCode::kNotFound;
      if (!answer && !gone) {
        outcome.message = answer.error().message;
        progress(change->agent + ": failed: " + outcome.message);
        result.agents.push_back(std::move(outcome));
        continue;
      }
      if (answer) generation = answer->value("generation", generation);
      outcome.message =
          (change->after.is_null() ? "removed the app, generation " : "pushed generation ") +
          std::to_string(generation);
    } else {
      auto recorded = next.agents.find(change->agent);
      generation = recorded == next.agents.end() ? 0 : recorded->second.generation;
      outcome.message = "already as planned; recorded in the state";
    }
    if (change->after.is_null()) {
      next.agents.erase(change->agent);
    } else {
      next.agents[change->agent] = AgentRecord{change->url, generation, change->after};
    }
    if (auto written = write(); !written.ok()) return written.error();
    outcome.ok = true;
    progress(change->agent + ": " + outcome.message);
    for (const std::string& volume : change->delete_volumes) {
      auto deleted = client.DeleteVolume(plan.app, volume);
      if (!deleted && deleted.error().code != core::ErrorCode::kNotFound) {
        outcome.ok = false;
        outcome.message = "volume " + volume + ": " + deleted.error().message;
        progress(change->agent + ": " + outcome.message);
      } else {
        progress(change->agent + ": deleted volume " + volume);
      }
    }
    if (outcome.ok && change->push) pushed.push_back(change);
    result.agents.push_back(std::move(outcome));
  }

  // What only the state holds follows the plan once every agent did; after a
  // failure the last apply's placement stays, so the next plan keeps
  // functions where they still run.
  if (result.ok()) {
    next.images = plan.images;
    next.budget = plan.budget;
    next.placement = plan.destroy ? json() : PlacementToJson(plan.placement);
  }
  if (auto written = write(); !written.ok()) return written.error();

  // Convergence: every pushed agent until it runs what it was given, all
  // watched together until the deadline.
  auto deadline = std::chrono::steady_clock::now() + options.converge_timeout;
  std::map<std::string, std::string> waiting;  // agent -> what it still lacks
  for (const AgentChange* change : pushed) waiting[change->agent] = "not asked yet";
  while (!waiting.empty()) {
    for (const AgentChange* change : pushed) {
      auto still = waiting.find(change->agent);
      if (still == waiting.end()) continue;
      auto status = clients.at(change->agent).Status();
      std::string lacking =
          status ? NotConverged(*status, plan.app, change->after) : status.error().message;
      if (lacking.empty()) {
        progress(change->agent + ": converged");
        waiting.erase(still);
      } else if (lacking != still->second) {
        progress(change->agent + ": waiting: " + lacking);
        still->second = lacking;
      }
    }
    if (waiting.empty() || std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  for (AgentOutcome& outcome : result.agents) {
    auto still = waiting.find(outcome.agent);
    if (still == waiting.end()) continue;
    outcome.ok = false;
    outcome.message = "pushed, but did not converge: " + still->second;
  }

  // A resource failed where an agent it is on (before or after) failed.
  std::map<std::string, const AgentOutcome*> by_agent;
  for (const AgentOutcome& outcome : result.agents) by_agent[outcome.agent] = &outcome;
  for (const ResourceChange& change : plan.resources) {
    if (change.action == Action::kNoOp) continue;
    ResourceOutcome outcome{change.Address(), change.action, true, ""};
    // Images and the budget live in the state only, which keeps the last
    // apply's until every agent succeeded.
    if (change.agents.empty() && !result.ok()) {
      outcome.ok = false;
      outcome.message = "not recorded: an agent failed";
    }
    for (const std::string& agent : change.agents) {
      auto agent_outcome = by_agent.find(agent);
      if (agent_outcome != by_agent.end() && !agent_outcome->second->ok) {
        outcome.ok = false;
        outcome.message = agent + ": " + agent_outcome->second->message;
      }
    }
    result.resources.push_back(std::move(outcome));
  }
  return result;
}

}  // namespace planner
