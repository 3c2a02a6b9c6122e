#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/function_modes.h"
#include "core/result.h"

namespace agents {

/// Where a function's image comes from: its manifest digest, looked up in the
/// agent's content store; `reference` names a registry to pull it from when
/// the store lacks it.
struct ImageRef {
  std::string digest;     // "sha256:…" of the image manifest
  std::string reference;  // optional "registry/name:tag"

  bool operator==(const ImageRef&) const = default;
};

struct GpuClaim {
  std::string type;  // gantry's type name ("H100"), or "any"
  int count = 1;

  bool operator==(const GpuClaim&) const = default;
};

using core::WebAuth;
using core::WebAuthName;

/// How a web function's containers are reached and when one is ready.
struct WebState {
  std::string port_env = "PORT";  // the variable that tells the container its port
  std::string health_path;        // "": ready once the port accepts a connection
  WebAuth auth = WebAuth::kPublic;
  /// How long a request waits for a ready container before a 503.
  std::chrono::milliseconds queue_timeout{30'000};
  int max_queued = 1000;  // requests waiting at once; more get a 503 at once
  /// How long a new container has to become ready before it is stopped.
  std::chrono::milliseconds startup_timeout{60'000};

  bool operator==(const WebState&) const = default;
};

using core::Overlap;
using core::OverlapName;

/// When a job function fires on this host: a cron expression in an IANA
/// time zone, or a period (core/schedule_times.h says how each is read).
struct ScheduleState {
  std::string cron;  // 5 fields or a macro; "" when `every` is set
  std::string timezone = "UTC";
  std::optional<std::chrono::milliseconds> every;
  Overlap overlap = Overlap::kSkip;
  int catch_up = 1;  // missed runs made up after downtime, the most recent ones

  bool operator==(const ScheduleState&) const = default;
};

/// One function as this host must run it. A job function (no `web`) runs one
/// container per call; a web function runs long-lived servers that the
/// router sends requests to and the autoscaler starts and stops.
struct FunctionState {
  std::string name;
  ImageRef image;
  std::vector<std::string> command;  // empty: the image's entrypoint + cmd
  std::map<std::string, std::string> env;
  double cpu = 0.125;
  std::uint64_t memory_bytes = 128ull << 20;
  std::optional<GpuClaim> gpu;
  std::chrono::milliseconds timeout{300'000};
  int retries = 0;                                // further attempts after a failed first one
  std::chrono::milliseconds retry_backoff{1000};  // before the first retry, doubled after
  int min_containers = 0;                         // web: containers kept warm
  int max_containers = 10;    // calls (or web containers) at once; the rest queue
  int buffer_containers = 0;  // web: extra idle containers while in use
  std::chrono::milliseconds scaledown_window{60'000};  // web: idle time before scaling down
  int max_inputs = 1;                                  // web: concurrent requests per container
  double target_utilisation = 1.0;  // web: share of max_inputs the autoscaler aims at
  std::optional<WebState> web;
  std::optional<ScheduleState> schedule;       // job functions only
  std::vector<std::string> secrets;            // names of the app's secrets, injected as env
  std::map<std::string, std::string> volumes;  // mount path -> volume name

  bool operator==(const FunctionState&) const = default;
};

/// What an app may spend on this host, in USD per UTC day and per UTC
/// month (either or both), metered from the usage ledger and enforced by
/// the agent (budget_guard.h). These are this host's caps: the planner
/// gives each agent its share of the spec's budget (planner/README.md).
enum class BudgetAction { kStop, kAlert };
const char* BudgetActionName(BudgetAction action);

struct BudgetState {
  std::optional<double> daily_usd;
  std::optional<double> monthly_usd;
  BudgetAction on_exceed = BudgetAction::kStop;

  bool operator==(const BudgetState&) const = default;
};

struct AppState {
  std::string name;
  std::map<std::string, FunctionState> functions;
  /// Secret name -> its KEY=VALUE pairs. Plain text here only in memory and
  /// in the PUT body; sealed on disk, never in status, logs or errors.
  std::map<std::string, std::map<std::string, std::string>> secrets;
  std::vector<std::string> volumes;
  /// Hex sha256 of the key that `web.auth: key` functions accept; the key
  /// itself never reaches the agent.
  std::string web_key_sha256;
  std::optional<BudgetState> budget;  // none: no cap
};

/// What one agent must run: the planner's output for this host, pushed whole
/// with `PUT /v1/desired` (schemas/desired_state.schema.json). Generations
/// only grow: the same generation again is a no-op, an older one is refused.
struct DesiredState {
  std::int64_t generation = 0;
  std::map<std::string, AppState> apps;

  const FunctionState* FindFunction(std::string_view app, std::string_view function) const;
};

/// Reads a desired-state document strictly: unknown fields, wrong types,
/// missing required fields and out-of-range values are errors
/// (kInvalidArgument) naming the field's path, e.g.
/// "apps.hello.functions.echo.memory_bytes: expected an integer >= 0".
/// Names of apps, functions, secrets and volumes are [a-z0-9][a-z0-9-_]*
/// (they become folder names and container ids).
core::Result<DesiredState> ParseDesiredState(const nlohmann::json& document);
core::Result<DesiredState> ParseDesiredState(std::string_view text);

/// The document form, which ParseDesiredState reads back to the same state.
/// With `redact_secrets` every secret value is "(sensitive)".
nlohmann::json ToJson(const DesiredState& state, bool redact_secrets);

}  // namespace agents
