#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agents/agent_database.h"
#include "core/rate_card.h"
#include "core/result.h"

namespace agents {

/// What a metered container holds, which is what it costs.
struct MeteredContainer {
  std::string app;
  std::string function;
  std::string container;          // its runc id
  std::string call;               // the job call it runs; "" for a web container
  std::vector<std::string> gpus;  // the type of each GPU it holds
  double cpu = 0;                 // cores
  std::uint64_t memory_bytes = 0;
};

/// One row of the `usage` table: one container's life (agents/README.md
/// documents every column). Times are Unix epoch milliseconds.
struct UsageRecord {
  std::string id;     // unique: a replayed write of the same record changes nothing
  std::string agent;  // the host id of the agent that ran it
  std::string app;
  std::string function;
  std::string container;
  std::string call;
  std::string gpu_type;  // "" without GPUs; types joined by "," when they differ
  int gpu_count = 0;
  double cpu = 0;
  std::uint64_t memory_bytes = 0;
  std::int64_t start_ms = 0;
  std::int64_t end_ms = 0;         // 0 while it runs
  std::int64_t checkpoint_ms = 0;  // when it was last known to run
  std::int64_t billable_seconds = 0;
  double usd_per_second = 0;
  double cost_usd = 0;
  std::string closed_by;  // "" while it runs; "exit", or "recovery" (closed at its checkpoint)
};

/// Whole seconds billed for a container that ran from `start_ms` to
/// `end_ms`: rounded up, at least 1.
std::int64_t BillableSeconds(std::int64_t start_ms, std::int64_t end_ms);

/// The part of `record` inside [since_ms, until_ms): a record inside it
/// whole counts its billable seconds and cost; one that straddles an end
/// counts them in proportion to its time inside. A record still running is
/// measured to `now_ms`.
struct UsageShare {
  double seconds = 0;
  double cost_usd = 0;
};
UsageShare ShareInWindow(const UsageRecord& record, std::int64_t since_ms, std::int64_t until_ms,
                         std::int64_t now_ms);

/// The usage of `records` over time, for a chart: their shares in each
/// window of `step_ms` from `since_ms` on, the last one cut at `until_ms`.
std::vector<UsageShare> ShareBySteps(const std::vector<UsageRecord>& records, std::int64_t since_ms,
                                     std::int64_t until_ms, std::int64_t step_ms,
                                     std::int64_t now_ms);

/// The agent's usage ledger: every container's life, metered per second,
/// priced from the rate card, in the `usage` table of agent.db. It serves
/// GET /v1/usage (and `gantry usage`), and bounds what a crash can lose:
///
/// - Start() and Stop() only queue their write and return (metering adds
///   microseconds to a call, not an fsync). What is queued rides along with
///   the next transaction of agent.db (a call's save: TransactionRider), so
///   a short job's start and stop cost no fsync of their own. What no
///   transaction has taken within the ride window (200 ms: a web container,
///   a long job) the committer thread writes in one transaction of its own:
///   writes that arrive while a commit is syncing go together in the next
///   one, so a burst of containers costs a few fsyncs, not one each.
/// - Every `checkpoint_interval` (5 s in the agent) the same thread stamps
///   every running record with the time (its checkpoint), in one statement.
/// - After a crash (kill -9, power loss), CloseLeftOpen() closes each record
///   still open at its last checkpoint: its container died with the agent.
///   A container's usage is lost for at most the checkpoint interval plus
///   the ride window and one commit; none is counted twice, since a record is written under its
///   own id (a replayed start is ignored, a replayed stop finds it closed).
class UsageLedger : private TransactionRider {
 public:
  /// `agent` is the host id written in every record.
  static core::Result<std::unique_ptr<UsageLedger>> Open(
      std::shared_ptr<AgentDatabase> database, core::RateCard rates, std::string agent,
      std::chrono::milliseconds checkpoint_interval);
  /// Commits what is queued, then stops the committer. Records still open
  /// stay open (their containers are still running, as far as it knows).
  ~UsageLedger();
  UsageLedger(const UsageLedger&) = delete;
  UsageLedger& operator=(const UsageLedger&) = delete;

  /// Closes every record a previous agent left open at its last checkpoint;
  /// how many there were. Call it before the first Start().
  core::Result<int> CloseLeftOpen();

  /// Starts metering `container` from `start_ms`; the record's id.
  std::string Start(const MeteredContainer& container, std::int64_t start_ms);
  /// Ends the record `id` at `end_ms`.
  void Stop(const std::string& id, std::int64_t end_ms);
  /// Called after each Stop() (the budget guard evaluates at once); set
  /// before the first container starts.
  void OnStop(std::function<void()> listener) { stop_listener_ = std::move(listener); }
  /// Commits what is queued (and with `checkpoint_ms`, stamps the running
  /// records) in the calling thread: once it returns ok, every Start and
  /// Stop made before the call is durable.
  core::Status Commit(std::optional<std::int64_t> checkpoint_ms = std::nullopt);

  /// Records of `app` ("": all) that ran at some time in [since_ms,
  /// until_ms), by start; what is queued is committed first.
  core::Result<std::vector<UsageRecord>> Query(std::int64_t since_ms, std::int64_t until_ms,
                                               const std::string& app);

  /// The records still open: the containers running now, by start; what
  /// is queued is committed first (GET /v1/status lists them).
  core::Result<std::vector<UsageRecord>> Running();

  /// Billable seconds and cost of every committed record, summed by app
  /// and function (running ones to their last checkpoint): the ledger's
  /// counters on GET /metrics.
  struct FunctionTotal {
    std::string app;
    std::string function;
    double seconds = 0;
    double cost_usd = 0;
  };
  core::Result<std::vector<FunctionTotal>> TotalsByFunction();

  /// Transactions committed and records written by them (starts and stops), for the benchmark.
  std::pair<std::uint64_t, std::uint64_t> CommitCounts() const;

 private:
  struct Pending {
    bool start = false;  // else a stop
    UsageRecord record;  // a stop uses id and end_ms only
  };

  UsageLedger(std::shared_ptr<AgentDatabase> database, core::RateCard rates, std::string agent,
              std::chrono::milliseconds checkpoint_interval);
  void CommitLoop();
  /// TransactionRider: writes the queue in another transaction of agent.db
  /// (unless a commit of the ledger is under way), and requeues it when that
  /// transaction is not committed.
  core::Status Ride() override;
  void Settle(bool committed) override;
  core::Status Apply(const Pending& pending);  // in a transaction

  std::shared_ptr<AgentDatabase> database_;
  core::RateCard rates_;
  std::string agent_;
  std::chrono::milliseconds checkpoint_interval_;
  std::function<void()> stop_listener_;

  std::mutex commit_mutex_;  // one commit at a time, in the order their writes came
  std::unique_lock<std::mutex> riding_lock_;  // commit_mutex_, from Ride() to Settle()
  std::vector<Pending> riding_;               // what Ride() wrote
  mutable std::mutex queue_mutex_;
  std::condition_variable queue_changed_;
  std::vector<Pending> queue_;
  bool stopping_ = false;
  std::uint64_t commits_ = 0;
  std::uint64_t committed_writes_ = 0;
  std::thread committer_;
};

/// Meters one container for as long as it lives: Start() when made,
/// Stop() (at the time it goes) when destroyed. Without a ledger it
/// meters nothing.
class UsageMeter {
 public:
  UsageMeter(UsageLedger* ledger, const MeteredContainer& container);
  UsageMeter(const UsageMeter&) = delete;
  UsageMeter& operator=(const UsageMeter&) = delete;
  ~UsageMeter();

 private:
  UsageLedger* ledger_;
  std::string id_;
};

}  // namespace agents
