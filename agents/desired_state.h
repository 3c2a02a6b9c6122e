#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace agents {

/// Where a function's image comes from: its manifest digest, looked up in the
/// agent's content store; `reference` names a registry to pull it from when
/// the store lacks it.
struct ImageRef {
  std::string digest;     // "sha256:…" of the image manifest
  std::string reference;  // optional "registry/name:tag"
};

struct GpuClaim {
  std::string type;  // gantry's type name ("H100"), or "any"
  int count = 1;
};

/// One function as this host must run it. A job function (no `web`) runs one
/// container per call.
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
  int min_containers = 0;
  int max_containers = 10;                     // calls running at once; the rest queue in order
  std::vector<std::string> secrets;            // names of the app's secrets, injected as env
  std::map<std::string, std::string> volumes;  // mount path -> volume name
};

struct AppState {
  std::string name;
  std::map<std::string, FunctionState> functions;
  /// Secret name -> its KEY=VALUE pairs. Plain text here only in memory and
  /// in the PUT body; sealed on disk, never in status, logs or errors.
  std::map<std::string, std::map<std::string, std::string>> secrets;
  std::vector<std::string> volumes;
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
