#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <variant>

#include "core/result.h"

struct sqlite3;
struct sqlite3_stmt;

namespace agents {

/// Writes that ride along with the database's transactions, so that they
/// cost no commit (no fsync) of their own: the usage ledger's queued
/// records go out in the transaction that saves a call.
class TransactionRider {
 public:
  virtual ~TransactionRider() = default;
  /// Inside a transaction, after its body, the database's mutex held:
  /// writes what it has. When it fails, only its own writes are undone.
  virtual core::Status Ride() = 0;
  /// Once that transaction has ended: whether what Ride() wrote is committed.
  virtual void Settle(bool committed) = 0;
};

/// The agent's one SQLite database, DATA_DIR/agent.db, shared by its records
/// (agent_records.h: desired state, calls, schedules) and its usage ledger
/// (usage_ledger.h). It is in WAL mode with synchronous=FULL, so that a
/// transaction committed before a crash (kill -9 or power loss) is there
/// after it, and a torn write at the end of the WAL is dropped on open.
///
/// Opening applies the schema's migrations, each in a transaction of its
/// own that also sets `PRAGMA user_version` to its number (agents/README.md,
/// "agent.db"): a database of an older agent is brought up to date, one of a
/// newer agent is refused rather than misread. One connection serves every
/// thread: whoever runs statements holds mutex() for all of them, a
/// transaction included.
class AgentDatabase {
 public:
  static core::Result<std::shared_ptr<AgentDatabase>> Open(const std::filesystem::path& file);
  ~AgentDatabase();
  AgentDatabase(const AgentDatabase&) = delete;
  AgentDatabase& operator=(const AgentDatabase&) = delete;

  /// The schema version this agent writes (the number of migrations).
  static int SchemaVersion();

  sqlite3* handle() const { return db_; }
  std::mutex& mutex() { return mutex_; }

  /// Runs SQL without results (several statements may be given); mutex() held.
  core::Status Execute(const std::string& sql);
  /// Runs `body` in one transaction (BEGIN IMMEDIATE, then COMMIT, or
  /// ROLLBACK when it fails); mutex() held. The rider, if any and unless
  /// `with_rider` is false, writes after the body, in the same transaction.
  core::Status Transaction(const std::function<core::Status()>& body, bool with_rider = true);
  /// Lets `rider` (nullptr: none) ride along with every Transaction() from
  /// now on; mutex() not held. One rider at a time.
  void SetRider(TransactionRider* rider);

 private:
  explicit AgentDatabase(sqlite3* db) : db_(db) {}
  core::Status Migrate(const std::filesystem::path& file);

  sqlite3* db_;
  std::mutex mutex_;
  TransactionRider* rider_ = nullptr;  // guarded by mutex_
};

/// The error of the last failed SQLite call on `db`, after `what`.
core::Error DatabaseError(sqlite3* db, const std::string& what);

/// One prepared statement, finalized when it goes. Values are bound in order.
class SqlStatement {
 public:
  using Value = std::variant<std::int64_t, double, std::string, std::nullptr_t>;

  SqlStatement(sqlite3* db, const char* sql, std::initializer_list<Value> values);
  ~SqlStatement();
  SqlStatement(const SqlStatement&) = delete;
  SqlStatement& operator=(const SqlStatement&) = delete;

  /// Runs a statement that returns no rows.
  core::Status Run(const std::string& what);
  /// Advances to the next row: true while there is one; an error ends with false and sets *error.
  bool Next(std::optional<core::Error>* error, const std::string& what);
  std::int64_t Integer(int column);
  double Real(int column);
  bool IsNull(int column);
  std::string Text(int column);

 private:
  sqlite3* db_;
  sqlite3_stmt* statement_ = nullptr;
};

}  // namespace agents
