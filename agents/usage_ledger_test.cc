#include "agents/usage_ledger.h"

#include <sqlite3.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <set>
#include <thread>

#include "tests/temp_dir.h"

namespace agents {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr std::int64_t kT0 = 1'800'000'000'000;  // some Unix time, in ms

/// The first column of the first row of `sql`.
std::string FirstValue(AgentDatabase& database, const std::string& sql) {
  std::lock_guard lock(database.mutex());
  SqlStatement row(database.handle(), sql.c_str(), {});
  std::optional<core::Error> error;
  REQUIRE(row.Next(&error, sql));
  return row.Text(0);
}

std::shared_ptr<AgentDatabase> OpenDatabase(const fs::path& file) {
  auto database = AgentDatabase::Open(file);
  INFO((database.ok() ? "" : database.error().message));
  REQUIRE(database.ok());
  return *database;
}

/// A ledger that checkpoints only when a test asks (Commit with a time).
// Empties the WAL into the database file, then opens a reader that holds
// its snapshot open, so that SQLite copies nothing more into the database
// file: from then on every commit stays in the WAL, as at a power cut.
std::shared_ptr<AgentDatabase> HoldWal(AgentDatabase& database, const fs::path& file) {
  {
    std::lock_guard lock(database.mutex());
    REQUIRE(database.Execute("PRAGMA wal_checkpoint(TRUNCATE)").ok());
  }
  auto reader = OpenDatabase(file);
  {
    std::lock_guard lock(reader->mutex());
    REQUIRE(reader->Execute("BEGIN; SELECT count(*) FROM usage;").ok());
  }
  return reader;
}

std::unique_ptr<UsageLedger> OpenLedger(std::shared_ptr<AgentDatabase> database) {
  auto ledger = UsageLedger::Open(std::move(database), core::RateCard::Defaults(), "host-1", 1h);
  REQUIRE(ledger.ok());
  return std::move(ledger).value();
}

MeteredContainer Container(const std::string& id, std::vector<std::string> gpus = {}) {
  return {"demo", "train", id, "call-" + id, std::move(gpus), 2, 4ull << 30};
}

std::vector<UsageRecord> All(UsageLedger& ledger) {
  auto records = ledger.Query(0, std::numeric_limits<std::int64_t>::max(), "");
  REQUIRE(records.ok());
  return *records;
}

TEST_CASE("queued records ride along with the next transaction of agent.db", "[usage_ledger]") {
  tests::TempDir dir("gantry-usage-test");
  auto database = OpenDatabase(dir.path() / "agent.db");
  auto ledger = OpenLedger(database);
  std::string id = ledger->Start(Container("rider"), kT0);
  ledger->Stop(id, kT0 + 1500);
  // Another writer's transaction (a call's save): the two writes go with it,
  // before the committer's ride window has passed.
  REQUIRE(database
              ->Transaction([&] {
                return database->Execute(
                    "CREATE TABLE other_writes (x); INSERT INTO other_writes "
                    "VALUES (1)");
              })
              .ok());
  CHECK(FirstValue(*database, "SELECT count(*) FROM usage WHERE end_ms IS NOT NULL") == "1");
  CHECK(FirstValue(*database, "SELECT billable_seconds FROM usage") == "2");
  CHECK(ledger->CommitCounts() == std::pair<std::uint64_t, std::uint64_t>{1, 2});

  // A transaction that fails takes nothing with it: the write stays queued.
  std::string second = ledger->Start(Container("second"), kT0 + 2000);
  CHECK_FALSE(
      database
          ->Transaction([&] { return database->Execute("INSERT INTO no_such_table VALUES (1)"); })
          .ok());
  CHECK(FirstValue(*database, "SELECT count(*) FROM usage") == "1");
  REQUIRE(ledger->Commit().ok());
  CHECK(FirstValue(*database, "SELECT count(*) FROM usage WHERE id = '" + second + "'") == "1");
}

TEST_CASE("billable seconds are rounded up, one at least", "[usage_ledger]") {
  CHECK(BillableSeconds(kT0, kT0) == 1);
  CHECK(BillableSeconds(kT0, kT0 + 1) == 1);
  CHECK(BillableSeconds(kT0, kT0 + 1000) == 1);
  CHECK(BillableSeconds(kT0, kT0 + 1001) == 2);
  CHECK(BillableSeconds(kT0, kT0 + 3000) == 3);
  CHECK(BillableSeconds(kT0, kT0 - 500) == 1);  // a clock stepped back
}

TEST_CASE("a container's life is one record, priced from the rate card", "[usage_ledger]") {
  tests::TempDir dir("gantry-usage-test");
  auto ledger = OpenLedger(OpenDatabase(dir.path() / "agent.db"));
  std::string id = ledger->Start(Container("c1", {"H100", "H100"}), kT0);
  ledger->Stop(id, kT0 + 3200);
  REQUIRE(ledger->Commit().ok());

  auto records = All(*ledger);
  REQUIRE(records.size() == 1);
  const UsageRecord& record = records[0];
  CHECK(record.id == id);
  CHECK(record.agent == "host-1");
  CHECK(record.app == "demo");
  CHECK(record.function == "train");
  CHECK(record.container == "c1");
  CHECK(record.call == "call-c1");
  CHECK(record.gpu_type == "H100");
  CHECK(record.gpu_count == 2);
  CHECK(record.start_ms == kT0);
  CHECK(record.end_ms == kT0 + 3200);
  CHECK(record.billable_seconds == 4);
  // By hand: 2 x 0.001097 + 2 x 0.0000131 + 4 x 0.00000222 = 0.00222908 USD a second.
  CHECK(record.usd_per_second == Approx(0.00222908));
  CHECK(record.cost_usd == Approx(4 * 0.00222908));
  CHECK(record.closed_by == "exit");

  SECTION("a replayed stop changes nothing") {
    ledger->Stop(id, kT0 + 60'000);
    REQUIRE(ledger->Commit().ok());
    auto again = All(*ledger);
    REQUIRE(again.size() == 1);
    CHECK(again[0].end_ms == kT0 + 3200);
    CHECK(again[0].billable_seconds == 4);
  }
  SECTION("GPUs of several types are each priced") {
    std::string mixed = ledger->Start(Container("c2", {"H100", "A100"}), kT0 + 10'000);
    ledger->Stop(mixed, kT0 + 10'500);
    REQUIRE(ledger->Commit().ok());
    auto both = All(*ledger);
    REQUIRE(both.size() == 2);
    CHECK(both[1].gpu_type == "H100,A100");
    CHECK(both[1].usd_per_second == Approx(0.001097 + 0.000583 + 2 * 0.0000131 + 4 * 0.00000222));
    CHECK(both[1].billable_seconds == 1);
  }
}

TEST_CASE("records left open by a crash are closed at their last checkpoint", "[usage_ledger]") {
  tests::TempDir dir("gantry-usage-test");
  std::string running, finished;
  {
    auto ledger = OpenLedger(OpenDatabase(dir.path() / "agent.db"));
    running = ledger->Start(Container("c1"), kT0);
    finished = ledger->Start(Container("c2"), kT0);
    ledger->Stop(finished, kT0 + 2000);
    REQUIRE(ledger->Commit(kT0 + 5000).ok());
    REQUIRE(ledger->Commit(kT0 + 10'000).ok());
    auto records = All(*ledger);
    REQUIRE(records.size() == 2);
    const UsageRecord& open = records[0].id == running ? records[0] : records[1];
    CHECK(open.closed_by.empty());
    CHECK(open.checkpoint_ms == kT0 + 10'000);
    CHECK(open.billable_seconds == 10);  // so far
    // The agent dies here: c1 is still running, as far as the ledger knows.
  }
  auto ledger = OpenLedger(OpenDatabase(dir.path() / "agent.db"));
  auto closed = ledger->CloseLeftOpen();
  REQUIRE(closed.ok());
  CHECK(*closed == 1);
  auto records = All(*ledger);
  REQUIRE(records.size() == 2);
  for (const UsageRecord& record : records) {
    if (record.id == running) {
      CHECK(record.end_ms == kT0 + 10'000);
      CHECK(record.billable_seconds == 10);
      CHECK(record.closed_by == "recovery");
    } else {
      CHECK(record.end_ms == kT0 + 2000);  // a checkpoint never moves a closed record
      CHECK(record.billable_seconds == 2);
      CHECK(record.closed_by == "exit");
    }
  }
  CHECK(*ledger->CloseLeftOpen() == 0);
  // A stop replayed after recovery does not count the container again.
  ledger->Stop(running, kT0 + 30'000);
  REQUIRE(ledger->Commit().ok());
  CHECK(All(*ledger)[0].billable_seconds + All(*ledger)[1].billable_seconds == 12);
}

TEST_CASE("a query takes the records of a window and an app, shared by time", "[usage_ledger]") {
  tests::TempDir dir("gantry-usage-test");
  auto ledger = OpenLedger(OpenDatabase(dir.path() / "agent.db"));
  std::string early = ledger->Start(Container("early"), kT0);
  ledger->Stop(early, kT0 + 10'000);
  std::string late = ledger->Start(Container("late"), kT0 + 20'000);
  ledger->Stop(late, kT0 + 22'000);
  MeteredContainer other = Container("other");
  other.app = "other";
  std::string running = ledger->Start(other, kT0 + 5000);

  auto window = ledger->Query(kT0 + 15'000, kT0 + 30'000, "");
  REQUIRE(window.ok());
  REQUIRE(window->size() == 2);  // late, and other (still running)
  CHECK((*window)[0].container == "other");
  CHECK((*window)[1].container == "late");
  auto demo = ledger->Query(0, kT0 + 30'000, "demo");
  REQUIRE(demo.ok());
  CHECK(demo->size() == 2);

  // early straddles [kT0 + 5000, kT0 + 30'000): half of its 10 s falls inside.
  UsageRecord record = (*demo)[0];
  UsageShare half = ShareInWindow(record, kT0 + 5000, kT0 + 30'000, kT0 + 40'000);
  CHECK(half.seconds == Approx(5));
  CHECK(half.cost_usd == Approx(record.cost_usd / 2));
  UsageShare whole = ShareInWindow(record, kT0, kT0 + 10'000, kT0 + 40'000);
  CHECK(whole.seconds == 10);
  CHECK(whole.cost_usd == Approx(record.cost_usd));
  // A running record is measured to now.
  auto open = ledger->Query(0, kT0 + 30'000, "other");
  REQUIRE(open.ok());
  UsageShare so_far = ShareInWindow((*open)[0], 0, kT0 + 30'000, kT0 + 8500);
  CHECK(so_far.seconds == 4);

  // By steps of 5 s from kT0: early's 10 s split over the first two, the
  // last step cut at the window's end.
  std::vector<UsageShare> steps = ShareBySteps({record}, kT0, kT0 + 12'000, 5000, kT0 + 40'000);
  REQUIRE(steps.size() == 3);
  CHECK(steps[0].seconds == Approx(5));
  CHECK(steps[1].seconds == Approx(5));
  CHECK(steps[2].seconds == Approx(0));
  CHECK(steps[0].cost_usd + steps[1].cost_usd == Approx(record.cost_usd));
}

TEST_CASE("a copy of agent.db taken mid-burst opens with every committed record",
          "[usage_ledger]") {
  tests::TempDir dir("gantry-usage-test");
  fs::path file = dir.path() / "agent.db";
  auto database = OpenDatabase(file);
  auto ledger = OpenLedger(database);
  // A reader holding an old snapshot keeps SQLite from copying the WAL into
  // the database file, so that the files copied below are what a power cut
  // would leave on disk at that moment: the database file as it was, and the
  // WAL up to where the burst had got (perhaps mid-frame).
  auto reader = HoldWal(*database, file);

  std::mutex committed_mutex;
  std::vector<std::string> committed;  // ids whose Commit returned ok
  std::atomic<bool> stop = false;
  std::vector<std::thread> writers;
  for (int writer = 0; writer < 4; ++writer) {
    writers.emplace_back([&, writer] {
      for (int i = 0; !stop; ++i) {
        std::string id = ledger->Start(
            Container("w" + std::to_string(writer) + "-" + std::to_string(i)), kT0 + i);
        ledger->Stop(id, kT0 + i + 1500);
        if (!ledger->Commit().ok()) return;
        std::lock_guard lock(committed_mutex);
        committed.push_back(id);
      }
    });
  }
  auto wait_for = [&](std::size_t count) {
    while (true) {
      {
        std::lock_guard lock(committed_mutex);
        if (committed.size() >= count) return std::vector<std::string>(committed);
      }
      std::this_thread::sleep_for(1ms);
    }
  };
  std::vector<std::string> before = wait_for(200);
  fs::path copy_dir = dir.path() / "copy";
  fs::create_directories(copy_dir);
  fs::copy_file(file, copy_dir / "agent.db");
  fs::copy_file(fs::path(file.string() + "-wal"), copy_dir / "agent.db-wal");
  stop = true;
  for (std::thread& writer : writers) writer.join();

  auto copy = OpenDatabase(copy_dir / "agent.db");
  CHECK(FirstValue(*copy, "PRAGMA integrity_check") == "ok");
  auto recovered = OpenLedger(copy);
  const std::set<std::string> committed_before(before.begin(), before.end());
  std::set<std::string> ids;
  for (const UsageRecord& record : All(*recovered)) {
    ids.insert(record.id);
    if (committed_before.count(record.id)) {
      CHECK(record.closed_by == "exit");
      CHECK(record.billable_seconds == 2);
    } else {
      // Committed during the copy: its start may be there without its stop.
      CHECK((record.closed_by.empty() || record.billable_seconds == 2));
    }
  }
  for (const std::string& id : before) CHECK(ids.count(id) == 1);
  INFO(before.size() << " committed before the copy, " << ids.size() << " in it");
  CHECK(ids.size() >= before.size());
}

TEST_CASE("a WAL torn mid-frame recovers to the last committed transaction", "[usage_ledger]") {
  tests::TempDir dir("gantry-usage-test");
  fs::path file = dir.path() / "agent.db";
  auto database = OpenDatabase(file);
  auto ledger = OpenLedger(database);
  auto reader = HoldWal(*database, file);
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) {  // one transaction each
    ids.push_back(ledger->Start(Container("c" + std::to_string(i)), kT0 + i));
    REQUIRE(ledger->Commit().ok());
  }
  fs::path copy_dir = dir.path() / "copy";
  fs::create_directories(copy_dir);
  fs::copy_file(file, copy_dir / "agent.db");
  fs::path wal = copy_dir / "agent.db-wal";
  fs::copy_file(fs::path(file.string() + "-wal"), wal);
  // The last frame (24-byte header + a page) holds the last commit: cut it in half.
  auto page_size = std::stoull(FirstValue(*database, "PRAGMA page_size"));
  fs::resize_file(wal, fs::file_size(wal) - (24 + page_size) / 2);

  auto torn = OpenDatabase(copy_dir / "agent.db");
  CHECK(FirstValue(*torn, "PRAGMA integrity_check") == "ok");
  auto recovered = OpenLedger(torn);
  auto records = All(*recovered);
  REQUIRE(records.size() == ids.size() - 1);
  for (std::size_t i = 0; i + 1 < ids.size(); ++i) CHECK(records[i].id == ids[i]);
}

TEST_CASE("the totals by function are the sum of every record, kept as records close",
          "[usage_ledger]") {
  tests::TempDir dir("gantry-usage-test");
  fs::path file = dir.path() / "agent.db";
  auto database = OpenDatabase(file);
  // What a whole sum of the table says: the reference.
  auto summed = [&](const std::string& function, const char* column) {
    return std::stod(FirstValue(*database, std::string("SELECT total(") + column +
                                               ") FROM usage WHERE function = '" + function + "'"));
  };
  auto check = [&](UsageLedger& ledger) {
    auto totals = ledger.TotalsByFunction();
    REQUIRE(totals.ok());
    REQUIRE(totals->size() == 2);
    for (const UsageLedger::FunctionTotal& total : *totals) {
      INFO(total.function);
      CHECK(total.app == "demo");
      CHECK(total.seconds == Approx(summed(total.function, "billable_seconds")));
      CHECK(total.cost_usd == Approx(summed(total.function, "cost_usd")));
    }
  };
  {
    auto ledger = OpenLedger(database);
    MeteredContainer serve = Container("serve-1");
    serve.function = "serve";
    for (int i = 0; i < 5; ++i) {
      std::string id = ledger->Start(Container("train-" + std::to_string(i), {"H100"}), kT0);
      ledger->Stop(id, kT0 + 1'000 * (i + 1));
      ledger->Stop(id, kT0 + 99'000);  // a replayed stop changes nothing
    }
    ledger->Start(serve, kT0);  // still running
    REQUIRE(ledger->Commit(kT0 + 4'000).ok());
    check(*ledger);
    CHECK(summed("train", "billable_seconds") == 15);
  }
  // The running one closed by recovery, at its checkpoint.
  auto ledger = OpenLedger(database);
  REQUIRE(*ledger->CloseLeftOpen() == 1);
  check(*ledger);
  CHECK(summed("serve", "billable_seconds") == 4);

  // An agent.db of schema version 2 (before the totals) gets them from its
  // records when it is migrated.
  ledger.reset();
  {
    std::lock_guard lock(database->mutex());
    REQUIRE(database
                ->Execute("DROP TRIGGER usage_closes; DROP TABLE usage_closed_totals; "
                          "DROP INDEX usage_by_end; CREATE INDEX usage_open ON usage (end_ms) "
                          "WHERE end_ms IS NULL; DROP INDEX calls_by_end; "
                          "PRAGMA user_version = 2")
                .ok());
  }
  database.reset();
  database = OpenDatabase(file);
  ledger = OpenLedger(database);
  check(*ledger);
}

TEST_CASE("an agent.db of an older agent is migrated, one of a newer refused", "[usage_ledger]") {
  tests::TempDir dir("gantry-usage-test");
  fs::path file = dir.path() / "agent.db";
  {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(file.c_str(), &db) == SQLITE_OK);
    // As the agents before versioned schemas left it: user_version 0.
    REQUIRE(sqlite3_exec(db,
                         "CREATE TABLE desired (id INTEGER PRIMARY KEY CHECK (id = 1), "
                         "generation INTEGER NOT NULL, document TEXT NOT NULL);"
                         "INSERT INTO desired VALUES (1, 7, '{}');",
                         nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(db);
  }
  {
    auto database = OpenDatabase(file);
    CHECK(FirstValue(*database, "PRAGMA user_version") ==
          std::to_string(AgentDatabase::SchemaVersion()));
    CHECK(FirstValue(*database, "SELECT generation FROM desired") == "7");
    CHECK(FirstValue(*database, "SELECT count(*) FROM usage") == "0");
    CHECK(FirstValue(*database,
                     "SELECT group_concat(name) FROM (SELECT name FROM sqlite_master "
                     "WHERE type = 'index' AND tbl_name = 'usage' AND name NOT LIKE "
                     "'sqlite_%' ORDER BY name)") == "usage_by_end,usage_by_start");
    CHECK(FirstValue(*database,
                     "SELECT group_concat(name) FROM (SELECT name FROM sqlite_master "
                     "WHERE type = 'index' AND tbl_name = 'calls' AND name NOT LIKE "
                     "'sqlite_%' ORDER BY name)") == "calls_by_end,calls_by_state");
    CHECK(FirstValue(*database, "PRAGMA journal_mode") == "wal");
    std::lock_guard lock(database->mutex());
    REQUIRE(database->Execute("PRAGMA user_version = 99").ok());
  }
  auto newer = AgentDatabase::Open(file);
  REQUIRE_FALSE(newer.ok());
  CHECK(newer.error().code == core::ErrorCode::kConflict);
  CHECK(newer.error().message.find("schema version 99") != std::string::npos);
}

}  // namespace
}  // namespace agents
