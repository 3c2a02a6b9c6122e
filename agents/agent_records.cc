#include "agents/agent_records.h"

#include <algorithm>
#include <array>

namespace agents {
namespace {

constexpr std::array<const char*, 6> kCallStateNames = {"queued", "running",   "succeeded",
                                                        "failed", "timed_out", "interrupted"};

CallState CallStateFromName(const std::string& name) {
  for (size_t i = 0; i < kCallStateNames.size(); ++i) {
    if (name == kCallStateNames[i]) return static_cast<CallState>(i);
  }
  return CallState::kInterrupted;
}

constexpr char kCallColumns[] =
    "id, app, function, state, attempts, exit_code, error, created_ms, started_ms, finished_ms, "
    "request";

CallRecord ReadCall(SqlStatement& row) {
  CallRecord call;
  call.id = row.Text(0);
  call.app = row.Text(1);
  call.function = row.Text(2);
  call.state = CallStateFromName(row.Text(3));
  call.attempts = static_cast<int>(row.Integer(4));
  if (!row.IsNull(5)) call.exit_code = static_cast<int>(row.Integer(5));
  call.error = row.Text(6);
  call.created_ms = row.Integer(7);
  call.started_ms = row.Integer(8);
  call.finished_ms = row.Integer(9);
  call.request = row.Text(10);
  return call;
}

}  // namespace

const char* CallStateName(CallState state) {
  return kCallStateNames[static_cast<size_t>(state)];
}

bool IsFinished(CallState state) {
  return state != CallState::kQueued && state != CallState::kRunning;
}

core::Result<std::unique_ptr<AgentRecords>> AgentRecords::Open(const std::filesystem::path& file) {
  auto database = AgentDatabase::Open(file);
  if (!database) return database.error();
  return std::make_unique<AgentRecords>(std::move(database).value());
}

core::Status AgentRecords::SaveDesired(const StoredDesired& desired) {
  std::lock_guard lock(database_->mutex());
  SqlStatement statement(
      database_->handle(),
      "INSERT OR REPLACE INTO desired (id, generation, document) VALUES (1, ?, ?)",
      {desired.generation, desired.document});
  return statement.Run("cannot save the desired state");
}

core::Result<std::optional<StoredDesired>> AgentRecords::LoadDesired() {
  std::lock_guard lock(database_->mutex());
  SqlStatement row(database_->handle(), "SELECT generation, document FROM desired WHERE id = 1",
                   {});
  std::optional<core::Error> error;
  if (row.Next(&error, "cannot read the desired state")) {
    return std::optional<StoredDesired>(StoredDesired{row.Integer(0), row.Text(1)});
  }
  if (error) return *error;
  return std::optional<StoredDesired>();
}

core::Status AgentRecords::SaveCall(const CallRecord& call, const ScheduleFire* fire) {
  std::lock_guard lock(database_->mutex());
  auto save = [&]() -> core::Status {
    SqlStatement::Value exit_code = nullptr;
    if (call.exit_code) exit_code = std::int64_t{*call.exit_code};
    SqlStatement statement(
        database_->handle(),
        "INSERT OR REPLACE INTO calls (id, app, function, state, attempts, exit_code, error, "
        "created_ms, started_ms, finished_ms, request) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        {call.id, call.app, call.function, std::string(CallStateName(call.state)),
         std::int64_t{call.attempts}, exit_code, call.error, call.created_ms, call.started_ms,
         call.finished_ms, call.request});
    core::Status saved = statement.Run("cannot save call " + call.id);
    if (saved.ok() && fire) saved = SaveFireLocked(*fire);
    return saved;
  };
  // A transaction even for one statement: the usage ledger's queued
  // records ride along with it (agent_database.h), at no fsync of their own.
  return database_->Transaction(save);
}

core::Status AgentRecords::SaveFireLocked(const ScheduleFire& fire) {
  SqlStatement statement(database_->handle(),
                         "INSERT OR REPLACE INTO schedule_fires (app, function, last_fire_ms, "
                         "last_call) VALUES (?, ?, ?, ?)",
                         {fire.app, fire.function, fire.last_fire_ms, fire.last_call});
  return statement.Run("cannot save the schedule of " + fire.app + "/" + fire.function);
}

core::Status AgentRecords::SaveScheduleFire(const ScheduleFire& fire) {
  std::lock_guard lock(database_->mutex());
  return SaveFireLocked(fire);
}

core::Status AgentRecords::RetainScheduleFires(
    const std::vector<std::pair<std::string, std::string>>& kept) {
  std::lock_guard lock(database_->mutex());
  std::vector<std::pair<std::string, std::string>> stored;
  {
    SqlStatement row(database_->handle(), "SELECT app, function FROM schedule_fires", {});
    std::optional<core::Error> error;
    while (row.Next(&error, "cannot read the schedules"))
      stored.emplace_back(row.Text(0), row.Text(1));
    if (error) return *error;
  }
  for (const auto& [app, function] : stored) {
    if (std::find(kept.begin(), kept.end(), std::pair{app, function}) != kept.end()) continue;
    SqlStatement statement(database_->handle(),
                           "DELETE FROM schedule_fires WHERE app = ? AND function = ?",
                           {app, function});
    if (auto deleted = statement.Run("cannot delete the schedule of " + app + "/" + function);
        !deleted.ok())
      return deleted;
  }
  return core::Ok{};
}

core::Result<std::optional<ScheduleFire>> AgentRecords::FindScheduleFire(
    const std::string& app, const std::string& function) {
  std::lock_guard lock(database_->mutex());
  SqlStatement row(
      database_->handle(),
      "SELECT last_fire_ms, last_call FROM schedule_fires WHERE app = ? AND function = ?",
      {app, function});
  std::optional<core::Error> error;
  if (row.Next(&error, "cannot read the schedule of " + app + "/" + function)) {
    return std::optional<ScheduleFire>(ScheduleFire{app, function, row.Integer(0), row.Text(1)});
  }
  if (error) return *error;
  return std::optional<ScheduleFire>();
}

core::Result<std::optional<CallRecord>> AgentRecords::FindCall(const std::string& id) {
  std::lock_guard lock(database_->mutex());
  SqlStatement row(database_->handle(),
                   (std::string("SELECT ") + kCallColumns + " FROM calls WHERE id = ?").c_str(),
                   {id});
  std::optional<core::Error> error;
  if (row.Next(&error, "cannot read call " + id)) return std::optional<CallRecord>(ReadCall(row));
  if (error) return *error;
  return std::optional<CallRecord>();
}

core::Result<std::vector<CallRecord>> AgentRecords::UnfinishedCalls() {
  return ReadCalls("WHERE state IN ('queued', 'running') ORDER BY created_ms, id", {});
}

core::Result<std::vector<CallRecord>> AgentRecords::RecentCalls(const std::string& app, int limit) {
  if (app.empty()) {
    return ReadCalls("ORDER BY created_ms DESC, id DESC LIMIT ?", {std::int64_t{limit}});
  }
  return ReadCalls("WHERE app = ? ORDER BY created_ms DESC, id DESC LIMIT ?",
                   {app, std::int64_t{limit}});
}

core::Result<std::vector<std::string>> AgentRecords::CallsEndedBefore(std::int64_t ended_before_ms,
                                                                      int limit) {
  std::lock_guard lock(database_->mutex());
  SqlStatement row(database_->handle(), kCallsEndedBeforeSql,
                   {ended_before_ms, std::int64_t{limit}});
  std::vector<std::string> ids;
  std::optional<core::Error> error;
  while (row.Next(&error, "cannot read calls")) ids.push_back(row.Text(0));
  if (error) return *error;
  return ids;
}

core::Status AgentRecords::DeleteEndedCalls(const std::vector<std::string>& ids) {
  if (ids.empty()) return core::Ok{};
  std::lock_guard lock(database_->mutex());
  return database_->Transaction([&]() -> core::Status {
    for (const std::string& id : ids) {
      SqlStatement statement(
          database_->handle(),
          "DELETE FROM calls WHERE id = ? AND state NOT IN ('queued', 'running')", {id});
      if (auto deleted = statement.Run("cannot delete call " + id); !deleted.ok()) return deleted;
    }
    return core::Ok{};
  });
}

core::Result<std::vector<CallRecord>> AgentRecords::ReadCalls(
    const std::string& clauses, std::initializer_list<SqlStatement::Value> values) {
  std::lock_guard lock(database_->mutex());
  SqlStatement row(database_->handle(),
                   (std::string("SELECT ") + kCallColumns + " FROM calls " + clauses).c_str(),
                   values);
  std::vector<CallRecord> calls;
  std::optional<core::Error> error;
  while (row.Next(&error, "cannot read calls")) calls.push_back(ReadCall(row));
  if (error) return *error;
  return calls;
}

}  // namespace agents
