#include "agents/agent_records.h"

#include <catch2/catch.hpp>
#include <mutex>
#include <optional>
#include <string>

#include "tests/temp_dir.h"

namespace agents {
namespace {

TEST_CASE("the desired state is kept across reopening the database", "[agent_records]") {
  tests::TempDir dir("gantry-records-test");
  {
    auto records = AgentRecords::Open(dir.path() / "agent.db");
    REQUIRE(records.ok());
    auto empty = (*records)->LoadDesired();
    REQUIRE(empty.ok());
    CHECK_FALSE(empty->has_value());
    REQUIRE((*records)->SaveDesired({4, "{\"generation\":4}"}).ok());
    REQUIRE((*records)->SaveDesired({5, "{\"generation\":5}"}).ok());
  }
  auto reopened = AgentRecords::Open(dir.path() / "agent.db");
  REQUIRE(reopened.ok());
  auto desired = (*reopened)->LoadDesired();
  REQUIRE(desired.ok());
  REQUIRE(desired->has_value());
  CHECK((*desired)->generation == 5);
  CHECK((*desired)->document == "{\"generation\":5}");
}

TEST_CASE("calls are saved, updated and listed while unfinished", "[agent_records]") {
  tests::TempDir dir("gantry-records-test");
  auto records = AgentRecords::Open(dir.path() / "agent.db");
  REQUIRE(records.ok());
  CallRecord first{"c1", "hello", "echo", CallState::kQueued, 0, {}, "",
                   100,  0,       0,      "{\"args\":[]}"};
  CallRecord second = first;
  second.id = "c2";
  second.created_ms = 200;
  REQUIRE((*records)->SaveCall(first).ok());
  REQUIRE((*records)->SaveCall(second).ok());

  first.state = CallState::kSucceeded;
  first.attempts = 1;
  first.exit_code = 0;
  REQUIRE((*records)->SaveCall(first).ok());

  auto found = (*records)->FindCall("c1");
  REQUIRE(found.ok());
  REQUIRE(found->has_value());
  CHECK((*found)->state == CallState::kSucceeded);
  CHECK((*found)->exit_code == 0);
  CHECK((*found)->request == "{\"args\":[]}");
  auto missing = (*records)->FindCall("nope");
  REQUIRE(missing.ok());
  CHECK_FALSE(missing->has_value());

  auto unfinished = (*records)->UnfinishedCalls();
  REQUIRE(unfinished.ok());
  REQUIRE(unfinished->size() == 1);
  CHECK(unfinished->front().id == "c2");
  CHECK_FALSE(unfinished->front().exit_code.has_value());
}

TEST_CASE("recent calls come newest first, of one app or of all", "[agent_records]") {
  tests::TempDir dir("gantry-records-test");
  auto records = AgentRecords::Open(dir.path() / "agent.db");
  REQUIRE(records.ok());
  for (int i = 1; i <= 5; ++i) {
    CallRecord call{"c" + std::to_string(i),
                    i % 2 ? "odd" : "even",
                    "f",
                    CallState::kSucceeded,
                    1,
                    0,
                    "",
                    100 * i,
                    0,
                    0,
                    "{}"};
    REQUIRE((*records)->SaveCall(call).ok());
  }
  auto ids = [](const std::vector<CallRecord>& calls) {
    std::vector<std::string> found;
    for (const CallRecord& call : calls) found.push_back(call.id);
    return found;
  };
  auto newest = (*records)->RecentCalls("", 3);
  REQUIRE(newest.ok());
  CHECK(ids(*newest) == std::vector<std::string>{"c5", "c4", "c3"});
  auto odd = (*records)->RecentCalls("odd", 10);
  REQUIRE(odd.ok());
  CHECK(ids(*odd) == std::vector<std::string>{"c5", "c3", "c1"});
  auto none = (*records)->RecentCalls("other", 10);
  REQUIRE(none.ok());
  CHECK(none->empty());
}

TEST_CASE("calls that ended before a time are found and deleted, never unfinished ones",
          "[agent_records]") {
  tests::TempDir dir("gantry-records-test");
  auto records = AgentRecords::Open(dir.path() / "agent.db");
  REQUIRE(records.ok());
  // Back-dated: created at `created`, ended at `finished` (0: no end time).
  auto save = [&](const std::string& id, CallState state, std::int64_t created,
                  std::int64_t finished) {
    CallRecord call{id, "demo", "echo", state, 1, {}, "", created, created, finished, "{}"};
    REQUIRE((*records)->SaveCall(call).ok());
  };
  save("old-succeeded", CallState::kSucceeded, 1000, 2000);
  save("old-failed", CallState::kFailed, 500, 1500);
  save("old-interrupted-no-end", CallState::kInterrupted, 1200, 0);
  save("old-queued", CallState::kQueued, 100, 0);
  save("old-running", CallState::kRunning, 100, 0);
  save("ended-at-cutoff", CallState::kSucceeded, 1000, 5000);
  save("new", CallState::kTimedOut, 6000, 7000);

  auto expired = (*records)->CallsEndedBefore(5000, 10);
  REQUIRE(expired.ok());
  std::vector<std::string> ids = *expired;
  CHECK(ids == std::vector<std::string>{"old-interrupted-no-end", "old-failed", "old-succeeded"});
  // In batches: the oldest first.
  auto first = (*records)->CallsEndedBefore(5000, 2);
  REQUIRE(first.ok());
  CHECK(*first == std::vector<std::string>{"old-interrupted-no-end", "old-failed"});

  // Asked to delete an unfinished call too, it keeps it.
  ids.push_back("old-running");
  REQUIRE((*records)->DeleteEndedCalls(ids).ok());
  for (const char* gone : {"old-succeeded", "old-failed", "old-interrupted-no-end"}) {
    auto found = (*records)->FindCall(gone);
    REQUIRE(found.ok());
    CHECK_FALSE(found->has_value());
  }
  for (const char* kept : {"old-queued", "old-running", "ended-at-cutoff", "new"}) {
    auto found = (*records)->FindCall(kept);
    REQUIRE(found.ok());
    CHECK(found->has_value());
  }
  auto again = (*records)->CallsEndedBefore(5000, 10);
  REQUIRE(again.ok());
  CHECK(again->empty());
}

TEST_CASE("the prune of ended calls reads them through an index, not a scan of all calls",
          "[agent_records]") {
  tests::TempDir dir("gantry-records-test");
  auto records = AgentRecords::Open(dir.path() / "agent.db");
  REQUIRE(records.ok());
  AgentDatabase& database = *(*records)->database();
  std::lock_guard lock(database.mutex());
  SqlStatement plan(
      database.handle(),
      (std::string("EXPLAIN QUERY PLAN ") + AgentRecords::kCallsEndedBeforeSql).c_str(),
      {std::int64_t{5000}, std::int64_t{10}});
  std::string steps;
  std::optional<core::Error> error;
  while (plan.Next(&error, "cannot explain")) steps += plan.Text(3) + "\n";
  REQUIRE_FALSE(error);
  INFO(steps);
  CHECK(steps.find("USING INDEX calls_by_end") != std::string::npos);
  CHECK(steps.find("SCAN calls\n") == std::string::npos);
  CHECK(steps.find("TEMP B-TREE") == std::string::npos);  // no sort either: the index's order
}

TEST_CASE("a database that cannot be opened is a clear error", "[agent_records]") {
  auto records = AgentRecords::Open("/nonexistent-folder/agent.db");
  REQUIRE_FALSE(records.ok());
  CHECK(records.error().message.find("/nonexistent-folder/agent.db") != std::string::npos);
}

}  // namespace
}  // namespace agents
