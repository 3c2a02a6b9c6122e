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
      if (!found || pair == found->end() ||
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
  for (const auto& [name, function] : document["functions"].items()) {
    if (!functions.contains(name)) return "function " + name + " is not in its status";
    const json& reported = functions[name];
    const json errors = reported.value("errors", json::array());
    if (!errors.empty()) return "function " + name + ": " + errors[0].get<std::string>();
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

struct Pushed {
  const AgentChange* change;
  std::string token;
};

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
  std::vector<const AgentChange*> pushed;
  for (const AgentChange& change : plan.agents) {
    AgentClient& client = clients.at(change.agent);
    AgentOutcome outcome{change.agent, false, ""};
    core::Result<json> answer = core::Error{};
    // Another app's apply may move the agent's generation between our read
    // and our push: read it again and retry.
    for (int attempt = 0; attempt < 3; ++attempt) {
      auto desired = client.Desired();
      if (!desired) {
        answer = desired.error();
        break;
      }
      std::int64_t generation = GenerationOf(*desired) + 1;
      answer = change.after.is_null()
                   ? client.DeleteApp(plan.app, generation)
                   : client.PutApp(plan.app, generation, documents[change.agent]);
      if (answer || answer.error().code != core::ErrorCode::kConflict) break;
    }
    if (!answer) {
      outcome.message = answer.error().message;
      progress(change.agent + ": failed: " + outcome.message);
      result.agents.push_back(std::move(outcome));
      continue;
    }
    std::int64_t generation = answer->value("generation", std::int64_t{0});
    if (change.after.is_null()) {
      next.agents.erase(change.agent);
    } else {
      next.agents[change.agent] = AgentRecord{change.url, generation, change.after};
    }
    if (auto written = write(); !written.ok()) return written.error();
    outcome.ok = true;
    outcome.message =
        (change.after.is_null() ? "removed the app, generation " : "pushed generation ") +
        std::to_string(generation);
    progress(change.agent + ": " + outcome.message);
    for (const std::string& volume : change.delete_volumes) {
      auto deleted = client.DeleteVolume(plan.app, volume);
      if (!deleted && deleted.error().code != core::ErrorCode::kNotFound) {
        outcome.ok = false;
        outcome.message = "volume " + volume + ": " + deleted.error().message;
        progress(change.agent + ": " + outcome.message);
      } else {
        progress(change.agent + ": deleted volume " + volume);
      }
    }
    if (outcome.ok) pushed.push_back(&change);
    result.agents.push_back(std::move(outcome));
  }

  next.images = plan.images;
  next.budget = plan.budget;
  next.placement = plan.destroy ? json() : PlacementToJson(plan.placement);
  if (auto written = write(); !written.ok()) return written.error();

  // Convergence: each pushed agent until it runs what it was given.
  auto deadline = std::chrono::steady_clock::now() + options.converge_timeout;
  for (const AgentChange* change : pushed) {
    AgentClient& client = clients.at(change->agent);
    std::string waiting_for;
    std::string last_reported;
    while (true) {
      auto status = client.Status();
      waiting_for =
          status ? NotConverged(*status, plan.app, change->after) : status.error().message;
      if (waiting_for.empty()) break;
      if (waiting_for != last_reported) progress(change->agent + ": waiting: " + waiting_for);
      last_reported = waiting_for;
      if (std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    auto outcome = std::find_if(result.agents.begin(), result.agents.end(),
                                [&](const AgentOutcome& o) { return o.agent == change->agent; });
    if (!waiting_for.empty()) {
      outcome->ok = false;
      outcome->message = "pushed, but did not converge: " + waiting_for;
    } else {
      progress(change->agent + ": converged");
    }
  }

  // A resource failed where any agent whose change touches it failed.
  std::map<std::string, const AgentOutcome*> by_agent;
  for (const AgentOutcome& outcome : result.agents) by_agent[outcome.agent] = &outcome;
  for (const ResourceChange& change : plan.resources) {
    if (change.action == Action::kNoOp) continue;
    ResourceOutcome outcome{change.Address(), change.action, true, ""};
    for (const AgentChange& agent_change : plan.agents) {
      const json& after = agent_change.after;
      bool touches = change.type == "image" || change.type == "budget" ||
                     change.action == Action::kDelete || after.is_null();
      if (!touches && (change.type == "function" || change.type == "schedule"))
        touches = after.value("functions", json::object()).contains(change.name);
      if (!touches && change.type == "secret")
        touches = after.value("secrets", json::object()).contains(change.name);
      if (!touches && change.type == "volume") {
        const json volumes = after.value("volumes", json::array());
        touches = std::find(volumes.begin(), volumes.end(), change.name) != volumes.end();
      }
      const AgentOutcome* agent_outcome = by_agent.at(agent_change.agent);
      if (touches && change.type != "image" && change.type != "budget" && !agent_outcome->ok) {
        outcome.ok = false;
        outcome.message = agent_change.agent + ": " + agent_outcome->message;
      }
    }
    result.resources.push_back(std::move(outcome));
  }
  return result;
}

}  // namespace planner
