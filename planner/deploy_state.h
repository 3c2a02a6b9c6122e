#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/result.h"

namespace planner {

/// What gantry pushed to one agent for an app.
struct AgentRecord {
  std::string url;
  std::int64_t generation = 0;  // the agent's generation after the push
  /// The app's member of the agent's desired state as pushed, every secret
  /// value replaced by its SecretValueHash (the state never holds one).
  nlohmann::json app;
};

/// The state of one app: what the last apply left where, Terraform's state
/// file. `lineage` (random, made by the first apply) tells two apps' states
/// apart; `serial` grows by one on every write, so a saved plan knows when it
/// is stale. Format in planner/README.md.
struct DeployState {
  static constexpr int kVersion = 1;

  std::string lineage;
  std::int64_t serial = 0;
  std::string app;
  std::map<std::string, std::string> images;  // image name -> manifest digest
  nlohmann::json budget;                      // the spec's budget as canonical JSON, null for none
  nlohmann::json placement;                   // PlacementToJson of the last apply
  std::map<std::string, AgentRecord> agents;  // by agent name

  nlohmann::json ToJson() const;
  /// Strict: unknown version, missing or mistyped members are kInvalidArgument
  /// naming the member.
  static core::Result<DeployState> FromJson(const nlohmann::json& document);
};

/// `.gantry/state/APP.json` beside the spec: where an app's state lives
/// unless `--state` says otherwise.
std::filesystem::path DefaultStatePath(const std::filesystem::path& spec_file,
                                       const std::string& app);

/// The state at `path`, or nullopt when there is none yet (the first apply).
core::Result<std::optional<DeployState>> ReadState(const std::filesystem::path& path);

/// Writes `state` at `path` atomically (core::WriteFileAtomically, mode
/// 0600), making its folder if needed.
core::Status WriteState(const std::filesystem::path& path, const DeployState& state);

/// Holds `PATH.lock` (flock) so that only one apply or destroy changes an
/// app's state at a time. The holder writes who it is (operation, pid, host,
/// user, since) into the lock file; a second one waits up to `wait`, then
/// fails (kConflict) with "state PATH is locked by apply (pid 4242 on host
/// build-1, user ana, since 2026-12-01T12:00:00Z)". A holder that died
/// released its flock, so a stale lock file never blocks anyone.
class StateLock {
 public:
  static core::Result<StateLock> Acquire(const std::filesystem::path& state_path,
                                         const std::string& operation,
                                         std::chrono::milliseconds wait);
  StateLock(StateLock&& other) noexcept;
  StateLock& operator=(StateLock&& other) noexcept;
  StateLock(const StateLock&) = delete;
  StateLock& operator=(const StateLock&) = delete;
  ~StateLock();

 private:
  explicit StateLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace planner
