#include "agents/usage_ledger.h"

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <algorithm>

#include "core/random.h"
#include "core/wall_clock.h"

namespace agents {
namespace {

/// How long queued writes wait for another transaction of agent.db to ride
/// along with before the committer thread commits them itself.
constexpr std::chrono::milliseconds kRideWindow{200};

/// BillableSeconds in SQL, for a record ending at `end` (a column or a parameter).
std::string BilledSql(const std::string& end) {
  return "max(1, (" + end + " - start_ms + 999) / 1000)";
}

constexpr char kRecordColumns[] =
    "id, agent, app, function, container, call, gpu_type, gpu_count, cpu, memory_bytes, "
    "start_ms, end_ms, checkpoint_ms, billable_seconds, usd_per_second, cost_usd, closed_by";

UsageRecord ReadRecord(SqlStatement& row) {
  UsageRecord record;
  record.id = row.Text(0);
  record.agent = row.Text(1);
  record.app = row.Text(2);
  record.function = row.Text(3);
  record.container = row.Text(4);
  record.call = row.Text(5);
  record.gpu_type = row.Text(6);
  record.gpu_count = static_cast<int>(row.Integer(7));
  record.cpu = row.Real(8);
  record.memory_bytes = static_cast<std::uint64_t>(row.Integer(9));
  record.start_ms = row.Integer(10);
  record.end_ms = row.IsNull(11) ? 0 : row.Integer(11);
  record.checkpoint_ms = row.Integer(12);
  record.billable_seconds = row.Integer(13);
  record.usd_per_second = row.Real(14);
  record.cost_usd = row.Real(15);
  record.closed_by = row.Text(16);
  return record;
}

}  // namespace

std::int64_t BillableSeconds(std::int64_t start_ms, std::int64_t end_ms) {
  if (end_ms <= start_ms) return 1;
  return std::max<std::int64_t>(1, (end_ms - start_ms + 999) / 1000);
}

UsageShare ShareInWindow(const UsageRecord& record, std::int64_t since_ms, std::int64_t until_ms,
                         std::int64_t now_ms) {
  bool running = record.closed_by.empty();
  std::int64_t end_ms = running ? std::max(now_ms, record.start_ms) : record.end_ms;
  std::int64_t billable =
      running ? BillableSeconds(record.start_ms, end_ms) : record.billable_seconds;
  double cost = running ? static_cast<double>(billable) * record.usd_per_second : record.cost_usd;
  if (record.start_ms >= since_ms && end_ms <= until_ms) {
    return {static_cast<double>(billable), cost};
  }
  std::int64_t inside =
      std::max<std::int64_t>(0, std::min(end_ms, until_ms) - std::max(record.start_ms, since_ms));
  double fraction = static_cast<double>(inside) /
                    static_cast<double>(std::max<std::int64_t>(1, end_ms - record.start_ms));
  return {static_cast<double>(billable) * fraction, cost * fraction};
}

std::vector<UsageShare> ShareBySteps(const std::vector<UsageRecord>& records, std::int64_t since_ms,
                                     std::int64_t until_ms, std::int64_t step_ms,
                                     std::int64_t now_ms) {
  std::vector<UsageShare> steps;
  for (std::int64_t start = since_ms; start < until_ms; start += step_ms) {
    UsageShare total;
    for (const UsageRecord& record : records) {
      UsageShare share = ShareInWindow(record, start, std::min(start + step_ms, until_ms), now_ms);
      total.seconds += share.seconds;
      total.cost_usd += share.cost_usd;
    }
    steps.push_back(total);
  }
  return steps;
}

core::Result<std::unique_ptr<UsageLedger>> UsageLedger::Open(
    std::shared_ptr<AgentDatabase> database, core::RateCard rates, std::string agent,
    std::chrono::milliseconds checkpoint_interval) {
  std::unique_ptr<UsageLedger> ledger(new UsageLedger(std::move(database), std::move(rates),
                                                      std::move(agent), checkpoint_interval));
  ledger->committer_ = std::thread([raw = ledger.get()] { raw->CommitLoop(); });
  ledger->database_->SetRider(ledger.get());
  return ledger;
}

UsageLedger::UsageLedger(std::shared_ptr<AgentDatabase> database, core::RateCard rates,
                         std::string agent, std::chrono::milliseconds checkpoint_interval)
    : database_(std::move(database)),
      rates_(std::move(rates)),
      agent_(std::move(agent)),
      checkpoint_interval_(checkpoint_interval) {}

UsageLedger::~UsageLedger() {
  database_->SetRider(nullptr);  // no transaction is riding once it returns
  {
    std::lock_guard lock(queue_mutex_);
    stopping_ = true;
  }
  queue_changed_.notify_all();
  committer_.join();
  if (auto committed = Commit(); !committed.ok()) {
    spdlog::warn("agent: usage ledger: {}", committed.error().message);
  }
}

void UsageLedger::CommitLoop() {
  using Clock = std::chrono::steady_clock;
  auto next_checkpoint = Clock::now() + checkpoint_interval_;
  std::unique_lock lock(queue_mutex_);
  while (true) {
    queue_changed_.wait_until(lock, next_checkpoint, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    // Writes queued meanwhile get the ride window to go out with another
    // transaction (a call's save) before they cost a commit of their own.
    queue_changed_.wait_until(lock, std::min(next_checkpoint, Clock::now() + kRideWindow),
                              [&] { return stopping_ || queue_.empty(); });
    if (stopping_) return;
    std::optional<std::int64_t> checkpoint_ms;
    if (Clock::now() >= next_checkpoint) {
      checkpoint_ms = core::NowMs();
      next_checkpoint = Clock::now() + checkpoint_interval_;
    }
    lock.unlock();
    auto committed = Commit(checkpoint_ms);
    lock.lock();
    if (!committed.ok()) {
      // What failed stays queued: the next try is in a second.
      spdlog::warn("agent: usage ledger: {}", committed.error().message);
      queue_changed_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_; });
    }
  }
}

core::Result<int> UsageLedger::CloseLeftOpen() {
  std::lock_guard lock(database_->mutex());
  SqlStatement statement(
      database_->handle(),
      ("UPDATE usage SET end_ms = checkpoint_ms, billable_seconds = " + BilledSql("checkpoint_ms") +
       ", cost_usd = " + BilledSql("checkpoint_ms") +
       " * usd_per_second, closed_by = 'recovery' WHERE end_ms IS NULL")
          .c_str(),
      {});
  if (auto closed = statement.Run("cannot close the usage records left open"); !closed.ok()) {
    return closed.error();
  }
  return sqlite3_changes(database_->handle());
}

std::string UsageLedger::Start(const MeteredContainer& container, std::int64_t start_ms) {
  Pending pending;
  pending.start = true;
  UsageRecord& record = pending.record;
  auto unique = core::RandomHex(12);
  record.id = "usage-" + (unique ? *unique : container.container + "-" + std::to_string(start_ms));
  record.agent = agent_;
  record.app = container.app;
  record.function = container.function;
  record.container = container.container;
  record.call = container.call;
  record.gpu_count = static_cast<int>(container.gpus.size());
  record.usd_per_second = rates_.PerSecond("", 0, container.cpu, container.memory_bytes);
  for (const std::string& type : container.gpus) {
    record.usd_per_second += rates_.PerSecond(type, 1, 0, 0);
    if (("," + record.gpu_type + ",").find("," + type + ",") == std::string::npos) {
      record.gpu_type += (record.gpu_type.empty() ? "" : ",") + type;
    }
  }
  record.cpu = container.cpu;
  record.memory_bytes = container.memory_bytes;
  record.start_ms = start_ms;
  record.checkpoint_ms = start_ms;
  record.billable_seconds = 1;
  record.cost_usd = record.usd_per_second;
  std::string id = record.id;
  {
    std::lock_guard lock(queue_mutex_);
    queue_.push_back(std::move(pending));
  }
  queue_changed_.notify_one();
  return id;
}

void UsageLedger::Stop(const std::string& id, std::int64_t end_ms) {
  Pending pending;
  pending.record.id = id;
  pending.record.end_ms = end_ms;
  {
    std::lock_guard lock(queue_mutex_);
    queue_.push_back(std::move(pending));
  }
  queue_changed_.notify_one();
  if (stop_listener_) stop_listener_();
}

core::Status UsageLedger::Apply(const Pending& pending) {
  const UsageRecord& record = pending.record;
  if (pending.start) {
    SqlStatement statement(
        database_->handle(),
        (std::string("INSERT INTO usage (") + kRecordColumns +
         ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, '') "
         "ON CONFLICT (id) DO NOTHING")
            .c_str(),
        {record.id, record.agent, record.app, record.function, record.container, record.call,
         record.gpu_type, std::int64_t{record.gpu_count}, record.cpu,
         static_cast<std::int64_t>(record.memory_bytes), record.start_ms, record.checkpoint_ms,
         record.billable_seconds, record.usd_per_second, record.cost_usd});
    return statement.Run("cannot record the start of " + record.container);
  }
  SqlStatement statement(database_->handle(),
                         ("UPDATE usage SET end_ms = ?2, checkpoint_ms = max(checkpoint_ms, ?2), "
                          "billable_seconds = " +
                          BilledSql("?2") + ", cost_usd = " + BilledSql("?2") +
                          " * usd_per_second, closed_by = 'exit' WHERE id = ?1 AND end_ms IS NULL")
                             .c_str(),
                         {record.id, record.end_ms});
  return statement.Run("cannot record the end of " + record.id);
}

core::Status UsageLedger::Commit(std::optional<std::int64_t> checkpoint_ms) {
  std::lock_guard committing(commit_mutex_);
  std::vector<Pending> batch;
  {
    std::lock_guard lock(queue_mutex_);
    batch.swap(queue_);
  }
  if (batch.empty() && !checkpoint_ms) return core::Ok{};
  core::Status done = core::Ok{};
  {
    std::lock_guard lock(database_->mutex());
    done = database_->Transaction(
        [&]() -> core::Status {
          for (const Pending& pending : batch) {
            if (auto applied = Apply(pending); !applied.ok()) return applied;
          }
          if (!checkpoint_ms) return core::Ok{};
          SqlStatement statement(database_->handle(),
                                 ("UPDATE usage SET checkpoint_ms = ?1, billable_seconds = " +
                                  BilledSql("?1") + ", cost_usd = " + BilledSql("?1") +
                                  " * usd_per_second WHERE end_ms IS NULL AND checkpoint_ms < ?1")
                                     .c_str(),
                                 {*checkpoint_ms});
          return statement.Run("cannot checkpoint the running containers' usage");
        },
        /*with_rider=*/false);  // it is the rider, and holds commit_mutex_
  }
  std::lock_guard lock(queue_mutex_);
  if (!done.ok()) {
    queue_.insert(queue_.begin(), std::make_move_iterator(batch.begin()),
                  std::make_move_iterator(batch.end()));
    return done;
  }
  ++commits_;
  committed_writes_ += batch.size();
  return done;
}

core::Status UsageLedger::Ride() {
  std::unique_lock committing(commit_mutex_, std::try_to_lock);
  if (!committing) return core::Ok{};  // a commit is under way: it takes the queue
  riding_lock_ = std::move(committing);
  {
    std::lock_guard lock(queue_mutex_);
    riding_.swap(queue_);
  }
  for (const Pending& pending : riding_) {
    if (auto applied = Apply(pending); !applied.ok()) return applied;
  }
  return core::Ok{};
}

void UsageLedger::Settle(bool committed) {
  if (!riding_lock_.owns_lock()) return;
  {
    std::lock_guard lock(queue_mutex_);
    if (!committed) {
      queue_.insert(queue_.begin(), std::make_move_iterator(riding_.begin()),
                    std::make_move_iterator(riding_.end()));
    } else if (!riding_.empty()) {
      ++commits_;
      committed_writes_ += riding_.size();
    }
  }
  riding_.clear();
  riding_lock_.unlock();
}

core::Result<std::vector<UsageRecord>> UsageLedger::Query(std::int64_t since_ms,
                                                          std::int64_t until_ms,
                                                          const std::string& app) {
  if (auto committed = Commit(); !committed.ok()) return committed.error();
  std::lock_guard lock(database_->mutex());
  SqlStatement row(database_->handle(),
                   (std::string("SELECT ") + kRecordColumns +
                    // By end: the windows asked for end at or near now (the budget
                    // guard's, the dashboard's), where the records still open or ended
                    // since `since_ms` are few; by start it would walk all history.
                    " FROM usage INDEXED BY usage_by_end WHERE start_ms < ?1 AND "
                    "(end_ms IS NULL OR end_ms >= ?2) AND "
                    "(?3 = '' OR app = ?3) ORDER BY start_ms, id")
                       .c_str(),
                   {until_ms, since_ms, app});
  std::vector<UsageRecord> records;
  std::optional<core::Error> error;
  while (row.Next(&error, "cannot read the usage records")) records.push_back(ReadRecord(row));
  if (error) return *error;
  return records;
}

core::Result<std::vector<UsageRecord>> UsageLedger::Running() {
  if (auto committed = Commit(); !committed.ok()) return committed.error();
  std::lock_guard lock(database_->mutex());
  SqlStatement row(database_->handle(),
                   (std::string("SELECT ") + kRecordColumns +
                    " FROM usage WHERE end_ms IS NULL ORDER BY start_ms, id")
                       .c_str(),
                   {});
  std::vector<UsageRecord> records;
  std::optional<core::Error> error;
  while (row.Next(&error, "cannot read the running containers")) records.push_back(ReadRecord(row));
  if (error) return *error;
  return records;
}

core::Result<std::vector<UsageLedger::FunctionTotal>> UsageLedger::TotalsByFunction() {
  std::lock_guard lock(database_->mutex());
  SqlStatement row(database_->handle(),
                   // The closed records' totals are kept as they close (a trigger of
                   // agent.db); only the open ones are summed here.
                   "SELECT app, function, total(billable_seconds), total(cost_usd) FROM ("
                   "SELECT app, function, billable_seconds, cost_usd FROM usage_closed_totals "
                   "UNION ALL SELECT app, function, billable_seconds, cost_usd FROM usage "
                   "WHERE end_ms IS NULL) GROUP BY app, function ORDER BY app, function",
                   {});
  std::vector<FunctionTotal> totals;
  std::optional<core::Error> error;
  while (row.Next(&error, "cannot sum the usage records")) {
    totals.push_back({row.Text(0), row.Text(1), row.Real(2), row.Real(3)});
  }
  if (error) return *error;
  return totals;
}

std::pair<std::uint64_t, std::uint64_t> UsageLedger::CommitCounts() const {
  std::lock_guard lock(queue_mutex_);
  return {commits_, committed_writes_};
}

UsageMeter::UsageMeter(UsageLedger* ledger, const MeteredContainer& container) : ledger_(ledger) {
  if (ledger_) id_ = ledger_->Start(container, core::NowMs());
}

UsageMeter::~UsageMeter() {
  if (ledger_) ledger_->Stop(id_, core::NowMs());
}

}  // namespace agents
