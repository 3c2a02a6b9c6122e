#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agents/agent_database.h"
#include "core/result.h"

namespace agents {

/// Where a job call is in its life.
enum class CallState { kQueued, kRunning, kSucceeded, kFailed, kTimedOut, kInterrupted };
const char* CallStateName(CallState state);
bool IsFinished(CallState state);

/// One job call, as `GET /v1/calls/{id}` reports it. Its output lives in
/// files (DATA_DIR/calls/ID/stdout and stderr, of the last attempt).
struct CallRecord {
  std::string id;
  std::string app;
  std::string function;
  CallState state = CallState::kQueued;
  int attempts = 0;
  std::optional<int> exit_code;
  std::string error;            // why it failed, when not its own exit code
  std::int64_t created_ms = 0;  // Unix epoch milliseconds
  std::int64_t started_ms = 0;
  std::int64_t finished_ms = 0;
  std::string request;  // the call's JSON body (args, stdin, env)
};

/// The desired state as last accepted, secrets sealed.
struct StoredDesired {
  std::int64_t generation = 0;
  std::string document;
};

/// Where one schedule has got to: the newest due time it has dealt with (run
/// or skipped) and the call of its last run. Saved with that call, in one
/// transaction, so that a restart neither repeats a run nor loses one.
struct ScheduleFire {
  std::string app;
  std::string function;
  std::int64_t last_fire_ms = 0;  // Unix epoch milliseconds
  std::string last_call;          // "" before its first run
};

/// The agent's durable records, in its database (agent_database.h:
/// DATA_DIR/agent.db, WAL mode with synchronous=FULL, so that a record
/// written before a crash, kill -9 or power loss, is there after it). It
/// holds the desired state and every job call, and where each schedule has
/// got to. Safe to use from several threads. The schema is in
/// agents/README.md.
class AgentRecords {
 public:
  /// Opens (and migrates) the database `file` for these records alone.
  static core::Result<std::unique_ptr<AgentRecords>> Open(const std::filesystem::path& file);
  explicit AgentRecords(std::shared_ptr<AgentDatabase> database) : database_(std::move(database)) {}
  AgentRecords(const AgentRecords&) = delete;
  AgentRecords& operator=(const AgentRecords&) = delete;

  core::Status SaveDesired(const StoredDesired& desired);
  core::Result<std::optional<StoredDesired>> LoadDesired();

  /// Inserts the call, or replaces the record of the same id; with `fire`,
  /// saves that too, in the same transaction.
  core::Status SaveCall(const CallRecord& call, const ScheduleFire* fire = nullptr);
  core::Status SaveScheduleFire(const ScheduleFire& fire);
  /// Deletes the schedule state of every function not in `kept` (app, function).
  core::Status RetainScheduleFires(const std::vector<std::pair<std::string, std::string>>& kept);
  core::Result<std::optional<ScheduleFire>> FindScheduleFire(const std::string& app,
                                                             const std::string& function);
  core::Result<std::optional<CallRecord>> FindCall(const std::string& id);
  /// Calls not finished (queued or running), oldest first.
  core::Result<std::vector<CallRecord>> UnfinishedCalls();
  /// The newest `limit` calls of `app` ("": every app), newest first.
  core::Result<std::vector<CallRecord>> RecentCalls(const std::string& app, int limit);
  /// The ids of at most `limit` calls that ended before `ended_before_ms`
  /// (Unix epoch ms; a call without an end time counts from its creation),
  /// oldest first: those a retention period lets go. Queued and running
  /// calls are never among them.
  core::Result<std::vector<std::string>> CallsEndedBefore(std::int64_t ended_before_ms, int limit);
  /// Its query, read through the index calls_by_end (agent_database.cc;
  /// agent_records_test.cc checks the plan).
  static constexpr const char* kCallsEndedBeforeSql =
      "SELECT id FROM calls WHERE state NOT IN ('queued', 'running') AND "
      "MAX(finished_ms, created_ms) < ? ORDER BY MAX(finished_ms, created_ms), id LIMIT ?";
  /// Deletes the records of the calls `ids` that have ended (a queued or
  /// running one is kept), in one transaction.
  core::Status DeleteEndedCalls(const std::vector<std::string>& ids);

  /// The database the records are kept in, for the other users of agent.db.
  const std::shared_ptr<AgentDatabase>& database() const { return database_; }

 private:
  core::Status SaveFireLocked(const ScheduleFire& fire);  // the database's mutex held
  /// The calls `SELECT … FROM calls CLAUSES` finds, `values` bound to its parameters.
  core::Result<std::vector<CallRecord>> ReadCalls(
      const std::string& clauses, std::initializer_list<SqlStatement::Value> values);

  std::shared_ptr<AgentDatabase> database_;
};

}  // namespace agents
