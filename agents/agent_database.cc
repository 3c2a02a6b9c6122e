#include "agents/agent_database.h"

#include <sqlite3.h>

#include <array>
#include <optional>

namespace agents {
namespace {

/// The schema, one migration per version: migration N (1-based) takes a
/// database at user_version N-1 to N. Never edit one that has shipped:
/// append the next. Version 1 is the schema of the agents that kept no
/// version (their agent.db is at 0 with some of these tables, hence IF NOT
/// EXISTS).
constexpr std::array<const char*, 4> kMigrations = {
    // 1: the desired state, job calls, schedule fires.
    R"sql(
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
)sql",
    // 2: the usage ledger (usage_ledger.h).
    R"sql(
CREATE TABLE usage (
  id TEXT PRIMARY KEY,
  agent TEXT NOT NULL,
  app TEXT NOT NULL,
  function TEXT NOT NULL,
  container TEXT NOT NULL,
  call TEXT NOT NULL,
  gpu_type TEXT NOT NULL,
  gpu_count INTEGER NOT NULL,
  cpu REAL NOT NULL,
  memory_bytes INTEGER NOT NULL,
  start_ms INTEGER NOT NULL,
  end_ms INTEGER,
  checkpoint_ms INTEGER NOT NULL,
  billable_seconds INTEGER NOT NULL,
  usd_per_second REAL NOT NULL,
  cost_usd REAL NOT NULL,
  closed_by TEXT NOT NULL
);
CREATE INDEX usage_by_start ON usage (start_ms);
CREATE INDEX usage_open ON usage (end_ms) WHERE end_ms IS NULL;
)sql",
    // 3: the usage records by end, open ones (NULL) first: what a window
    // that ends now needs (UsageLedger::Query, the budget guard's reads);
    // and the closed records' totals by function, kept by a trigger as each
    // record closes (UsageLedger::TotalsByFunction, GET /metrics).
    R"sql(
CREATE INDEX usage_by_end ON usage (end_ms);
DROP INDEX usage_open;
CREATE TABLE usage_closed_totals (
  app TEXT NOT NULL,
  function TEXT NOT NULL,
  billable_seconds INTEGER NOT NULL,
  cost_usd REAL NOT NULL,
  PRIMARY KEY (app, function)
);
INSERT INTO usage_closed_totals
  SELECT app, function, sum(billable_seconds), total(cost_usd) FROM usage
  WHERE end_ms IS NOT NULL GROUP BY app, function;
CREATE TRIGGER usage_closes AFTER UPDATE OF end_ms ON usage
  WHEN OLD.end_ms IS NULL AND NEW.end_ms IS NOT NULL
BEGIN
  INSERT INTO usage_closed_totals VALUES (NEW.app, NEW.function, NEW.billable_seconds, NEW.cost_usd)
    ON CONFLICT (app, function) DO UPDATE SET
      billable_seconds = billable_seconds + excluded.billable_seconds,
      cost_usd = cost_usd + excluded.cost_usd;
END;
)sql",
    // 4: ended calls by when they ended, what the hourly prune of expired
    // calls reads (AgentRecords::kCallsEndedBeforeSql), which scanned every
    // call before.
    R"sql(
CREATE INDEX calls_by_end ON calls (MAX(finished_ms, created_ms), id)
  WHERE state NOT IN ('queued', 'running');
)sql",
};

}  // namespace

core::Error DatabaseError(sqlite3* db, const std::string& what) {
  return core::Error{
      core::ErrorCode::kIo, what + ": " + (db ? sqlite3_errmsg(db) : "out of memory"), {}};
}

int AgentDatabase::SchemaVersion() {
  return static_cast<int>(kMigrations.size());
}

core::Result<std::shared_ptr<AgentDatabase>> AgentDatabase::Open(
    const std::filesystem::path& file) {
  sqlite3* db = nullptr;
  int opened =
      sqlite3_open_v2(file.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  std::shared_ptr<AgentDatabase> database(new AgentDatabase(db));
  if (opened != SQLITE_OK) return DatabaseError(db, "cannot open " + file.string());
  sqlite3_busy_timeout(db, 5000);
  std::lock_guard lock(database->mutex_);
  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL"}) {
    if (auto status = database->Execute(pragma); !status.ok()) return status.error();
  }
  if (auto migrated = database->Migrate(file); !migrated.ok()) return migrated.error();
  return database;
}

AgentDatabase::~AgentDatabase() {
  sqlite3_close_v2(db_);
}

core::Status AgentDatabase::Migrate(const std::filesystem::path& file) {
  std::int64_t version = 0;
  {
    SqlStatement row(db_, "PRAGMA user_version", {});
    std::optional<core::Error> error;
    if (row.Next(&error, "cannot read the schema version of " + file.string())) {
      version = row.Integer(0);
    }
    if (error) return *error;
  }
  if (version > SchemaVersion()) {
    return core::Error{core::ErrorCode::kConflict,
                       file.string() + " is at schema version " + std::to_string(version) +
                           ", newer than this agent's " + std::to_string(SchemaVersion()) +
                           ": run a newer gantry",
                       {}};
  }
  for (auto next = version; next < SchemaVersion(); ++next) {
    auto migrated = Transaction([&]() -> core::Status {
      if (auto applied = Execute(kMigrations[next]); !applied.ok()) return applied;
      return Execute("PRAGMA user_version = " + std::to_string(next + 1));
    });
    if (!migrated.ok()) {
      return core::Error{migrated.error().code,
                         "cannot migrate " + file.string() + " to schema version " +
                             std::to_string(next + 1) + ": " + migrated.error().message,
                         {}};
    }
  }
  return core::Ok{};
}

core::Status AgentDatabase::Execute(const std::string& sql) {
  char* message = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
    std::string text = message ? message : "unknown error";
    sqlite3_free(message);
    return core::Error{core::ErrorCode::kIo, "agent database: " + text, {}};
  }
  return core::Ok{};
}

core::Status AgentDatabase::Transaction(const std::function<core::Status()>& body,
                                        bool with_rider) {
  if (auto begun = Execute("BEGIN IMMEDIATE"); !begun.ok()) return begun;
  core::Status done = body();
  // The rider's writes in a savepoint: their failure leaves the body's.
  std::optional<bool> rode;
  if (done.ok() && with_rider && rider_ && Execute("SAVEPOINT rider").ok()) {
    rode = rider_->Ride().ok();
    (void)Execute(*rode ? "RELEASE rider" : "ROLLBACK TO rider; RELEASE rider");
  }
  if (done.ok()) done = Execute("COMMIT");
  if (!done.ok()) (void)Execute("ROLLBACK");
  if (rode) rider_->Settle(*rode && done.ok());
  return done;
}

void AgentDatabase::SetRider(TransactionRider* rider) {
  std::lock_guard lock(mutex_);
  rider_ = rider;
}

SqlStatement::SqlStatement(sqlite3* db, const char* sql, std::initializer_list<Value> values)
    : db_(db) {
  if (sqlite3_prepare_v2(db, sql, -1, &statement_, nullptr) != SQLITE_OK) return;
  int index = 1;
  for (const Value& value : values) {
    if (const auto* number = std::get_if<std::int64_t>(&value)) {
      sqlite3_bind_int64(statement_, index, *number);
    } else if (const auto* real = std::get_if<double>(&value)) {
      sqlite3_bind_double(statement_, index, *real);
    } else if (const auto* text = std::get_if<std::string>(&value)) {
      sqlite3_bind_text(statement_, index, text->data(), static_cast<int>(text->size()),
                        SQLITE_TRANSIENT);
    } else {
      sqlite3_bind_null(statement_, index);
    }
    ++index;
  }
}

SqlStatement::~SqlStatement() {
  sqlite3_finalize(statement_);
}

core::Status SqlStatement::Run(const std::string& what) {
  if (!statement_ || sqlite3_step(statement_) != SQLITE_DONE) return DatabaseError(db_, what);
  return core::Ok{};
}

bool SqlStatement::Next(std::optional<core::Error>* error, const std::string& what) {
  int step = statement_ ? sqlite3_step(statement_) : SQLITE_ERROR;
  if (step == SQLITE_ROW) return true;
  if (step != SQLITE_DONE) *error = DatabaseError(db_, what);
  return false;
}

std::int64_t SqlStatement::Integer(int column) {
  return sqlite3_column_int64(statement_, column);
}

double SqlStatement::Real(int column) {
  return sqlite3_column_double(statement_, column);
}

bool SqlStatement::IsNull(int column) {
  return sqlite3_column_type(statement_, column) == SQLITE_NULL;
}

std::string SqlStatement::Text(int column) {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(statement_, column));
  return text ? std::string(text, sqlite3_column_bytes(statement_, column)) : std::string();
}

}  // namespace agents
