#include "agents/agent_records.h"

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <variant>

namespace agents {
namespace {

core::Error DatabaseError(sqlite3* db, const std::string& what) {
  return core::Error{
      core::ErrorCode::kIo, what + ": " + (db ? sqlite3_errmsg(db) : "out of memory"), {}};
}

constexpr std::array<const char*, 6> kCallStateNames = {"queued", "running",   "succeeded",
                                                        "failed", "timed_out", "interrupted"};

CallState CallStateFromName(const std::string& name) {
  for (size_t i = 0; i < kCallStateNames.size(); ++i) {
    if (name == kCallStateNames[i]) return static_cast<CallState>(i);
  }
  return CallState::kInterrupted;
}

/// One prepared statement, finalized when it goes. Values are bound in order.
class Statement {
 public:
  using Value = std::variant<std::int64_t, std::string, std::nullptr_t>;

  Statement(sqlite3* db, const char* sql, std::initializer_list<Value> values) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &statement_, nullptr) != SQLITE_OK) return;
    int index = 1;
    for (const Value& value : values) {
      if (const auto* number = std::get_if<std::int64_t>(&value)) {
        sqlite3_bind_int64(statement_, index, *number);
      } else if (const auto* text = std::get_if<std::string>(&value)) {
        sqlite3_bind_text(statement_, index, text->data(), static_cast<int>(text->size()),
                          SQLITE_TRANSIENT);
      } else {
        sqlite3_bind_null(statement_, index);
      }
      ++index;
    }
  }
  ~Statement() { sqlite3_finalize(statement_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  /// Runs a statement that returns no rows.
  core::Status Run(const std::string& what) {
    if (!statement_ || sqlite3_step(statement_) != SQLITE_DONE) return DatabaseError(db_, what);
    return core::Ok{};
  }
  /// Advances to the next row: true while there is one; an error ends with false and sets *error.
  bool Next(std::optional<core::Error>* error, const std::string& what) {
    int step = statement_ ? sqlite3_step(statement_) : SQLITE_ERROR;
    if (step == SQLITE_ROW) return true;
    if (step != SQLITE_DONE) *error = DatabaseError(db_, what);
    return false;
  }
  std::int64_t Integer(int column) { return sqlite3_column_int64(statement_, column); }
  bool IsNull(int column) { return sqlite3_column_type(statement_, column) == SQLITE_NULL; }
  std::string Text(int column) {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(statement_, column));
    return text ? std::string(text, sqlite3_column_bytes(statement_, column)) : std::string();
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* statement_ = nullptr;
};

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS desired (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  generation INTEGER NOT NULL,
  document TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS calls (
  id TEXT PRIMARY KEY,
  app TEXT NOT NULL,
  function TEXT NOT NULL,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  exit_code INTEGER,
  error TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  started_ms INTEGER NOT NULL,
  finished_ms INTEGER NOT NULL,
  request TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_by_state ON calls (state, created_ms);
CREATE TABLE IF NOT EXISTS schedule_fires (
  app TEXT NOT NULL,
  function TEXT NOT NULL,
  last_fire_ms INTEGER NOT NULL,
  last_call TEXT NOT NULL,
  PRIMARY KEY (app, function)
);
)sql";

constexpr char kCallColumns[] =
    "id, app, function, state, attempts, exit_code, error, created_ms, started_ms, finished_ms, "
    "request";

CallRecord ReadCall(Statement& row) {
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
  sqlite3* db = nullptr;
  int opened =
      sqlite3_open_v2(file.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  std::unique_ptr<AgentRecords> records(new AgentRecords(db));
  if (opened != SQLITE_OK) return DatabaseError(db, "cannot open " + file.string());
  sqlite3_busy_timeout(db, 5000);
  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL"}) {
    if (auto status = records->Execute(pragma); !status.ok()) return status.error();
  }
  if (auto status = records->Execute(kSchema); !status.ok()) return status.error();
  return records;
}

AgentRecords::~AgentRecords() {
  sqlite3_close_v2(db_);
}

core::Status AgentRecords::Execute(const std::string& sql) {
  char* message = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
    std::string text = message ? message : "unknown error";
    sqlite3_free(message);
    return core::Error{core::ErrorCode::kIo, "agent records: " + text, {}};
  }
  return core::Ok{};
}

core::Status AgentRecords::SaveDesired(const StoredDesired& desired) {
  std::lock_guard lock(mutex_);
  Statement statement(db_,
                      "INSERT OR REPLACE INTO desired (id, generation, document) VALUES (1, ?, ?)",
                      {desired.generation, desired.document});
  return statement.Run("cannot save the desired state");
}

core::Result<std::optional<StoredDesired>> AgentRecords::LoadDesired() {
  std::lock_guard lock(mutex_);
  Statement row(db_, "SELECT generation, document FROM desired WHERE id = 1", {});
  std::optional<core::Error> error;
  if (row.Next(&error, "cannot read the desired state")) {
    return std::optional<StoredDesired>(StoredDesired{row.Integer(0), row.Text(1)});
  }
  if (error) return *error;
  return std::optional<StoredDesired>();
}

core::Status AgentRecords::SaveCall(const CallRecord& call, const ScheduleFire* fire) {
  std::lock_guard lock(mutex_);
  if (fire) {
    if (auto begun = Execute("BEGIN IMMEDIATE"); !begun.ok()) return begun.error();
  }
  Statement::Value exit_code = nullptr;
  if (call.exit_code) exit_code = std::int64_t{*call.exit_code};
  Statement statement(
      db_,
      "INSERT OR REPLACE INTO calls (id, app, function, state, attempts, exit_code, error, "
      "created_ms, started_ms, finished_ms, request) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      {call.id, call.app, call.function, std::string(CallStateName(call.state)),
       std::int64_t{call.attempts}, exit_code, call.error, call.created_ms, call.started_ms,
       call.finished_ms, call.request});
  core::Status saved = statement.Run("cannot save call " + call.id);
  if (!fire) return saved;
  if (saved.ok()) saved = SaveFireLocked(*fire);
  if (!saved.ok()) {
    (void)Execute("ROLLBACK");
    return saved;
  }
  return Execute("COMMIT");
}

core::Status AgentRecords::SaveFireLocked(const ScheduleFire& fire) {
  Statement statement(db_,
                      "INSERT OR REPLACE INTO schedule_fires (app, function, last_fire_ms, "
                      "last_call) VALUES (?, ?, ?, ?)",
                      {fire.app, fire.function, fire.last_fire_ms, fire.last_call});
  return statement.Run("cannot save the schedule of " + fire.app + "/" + fire.function);
}

core::Status AgentRecords::SaveScheduleFire(const ScheduleFire& fire) {
  std::lock_guard lock(mutex_);
  return SaveFireLocked(fire);
}

core::Status AgentRecords::RetainScheduleFires(
    const std::vector<std::pair<std::string, std::string>>& kept) {
  std::lock_guard lock(mutex_);
  std::vector<std::pair<std::string, std::string>> stored;
  {
    Statement row(db_, "SELECT app, function FROM schedule_fires", {});
    std::optional<core::Error> error;
    while (row.Next(&error, "cannot read the schedules"))
      stored.emplace_back(row.Text(0), row.Text(1));
    if (error) return *error;
  }
  for (const auto& [app, function] : stored) {
    if (std::find(kept.begin(), kept.end(), std::pair{app, function}) != kept.end()) continue;
    Statement statement(db_, "DELETE FROM schedule_fires WHERE app = ? AND function = ?",
                        {app, function});
    if (auto deleted = statement.Run("cannot delete the schedule of " + app + "/" + function);
        !deleted.ok())
      return deleted;
  }
  return core::Ok{};
}

core::Result<std::optional<ScheduleFire>> AgentRecords::FindScheduleFire(
    const std::string& app, const std::string& function) {
  std::lock_guard lock(mutex_);
  Statement row(db_,
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
  std::lock_guard lock(mutex_);
  Statement row(db_, (std::string("SELECT ") + kCallColumns + " FROM calls WHERE id = ?").c_str(),
                {id});
  std::optional<core::Error> error;
  if (row.Next(&error, "cannot read call " + id)) return std::optional<CallRecord>(ReadCall(row));
  if (error) return *error;
  return std::optional<CallRecord>();
}

core::Result<std::vector<CallRecord>> AgentRecords::UnfinishedCalls() {
  std::lock_guard lock(mutex_);
  Statement row(db_,
                (std::string("SELECT ") + kCallColumns +
                 " FROM calls WHERE state IN ('queued', 'running') ORDER BY created_ms, id")
                    .c_str(),
                {});
  std::vector<CallRecord> calls;
  std::optional<core::Error> error;
  while (row.Next(&error, "cannot read calls")) calls.push_back(ReadCall(row));
  if (error) return *error;
  return calls;
}

}  // namespace agents
