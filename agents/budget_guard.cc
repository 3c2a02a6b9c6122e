#include "agents/budget_guard.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/rate_card.h"
#include "core/wall_clock.h"

namespace agents {
namespace {

using nlohmann::json;

/// "2026-12-02T00:00:00+00:00".
std::string UtcTimestamp(std::int64_t ms) {
  return core::FormatTimestamp(
      std::chrono::sys_time<std::chrono::milliseconds>(std::chrono::milliseconds(ms)), nullptr);
}

}  // namespace

BudgetPeriod UtcDay(std::int64_t now_ms) {
  using namespace std::chrono;
  sys_days day = floor<days>(sys_time<milliseconds>(milliseconds(now_ms)));
  auto start = duration_cast<milliseconds>(day.time_since_epoch()).count();
  return {start, start + duration_cast<milliseconds>(days(1)).count()};
}

BudgetPeriod UtcMonth(std::int64_t now_ms) {
  using namespace std::chrono;
  year_month_day date(floor<days>(sys_time<milliseconds>(milliseconds(now_ms))));
  year_month month = date.year() / date.month();
  auto start_of = [](year_month first) {
    return duration_cast<milliseconds>(sys_days(first / 1).time_since_epoch()).count();
  };
  return {start_of(month), start_of(month + months(1))};
}

BudgetSpend SpendOf(const std::vector<UsageRecord>& records, std::int64_t now_ms) {
  BudgetPeriod day = UtcDay(now_ms);
  BudgetPeriod month = UtcMonth(now_ms);
  BudgetSpend spend;
  for (const UsageRecord& record : records) {
    spend.day_usd += ShareInWindow(record, day.start_ms, day.end_ms, now_ms).cost_usd;
    spend.month_usd += ShareInWindow(record, month.start_ms, month.end_ms, now_ms).cost_usd;
  }
  return spend;
}

namespace {

/// A record that ended this long before a read is settled by it.
constexpr std::int64_t kSettleLagMs = 60'000;
/// The whole month is read again at least this often.
constexpr std::int64_t kRereadMs = 10 * 60'000;

BudgetSpend operator+(const BudgetSpend& a, const BudgetSpend& b) {
  return {a.day_usd + b.day_usd, a.month_usd + b.month_usd};
}

}  // namespace

core::Result<BudgetSpend> SpendCounter::Read(UsageLedger& ledger, const std::string& app,
                                             std::int64_t now_ms) {
  const std::int64_t day_start = UtcDay(now_ms).start_ms;
  if (day_start != day_start_ms_ || now_ms < settled_before_ms_ ||
      now_ms - read_whole_ms_ >= kRereadMs) {
    // The day (and so maybe the month) is another, or it is time: settle
    // nothing yet and read the month whole.
    day_start_ms_ = -1;
    settled_ = {};
    settled_before_ms_ = UtcMonth(now_ms).start_ms;
  }
  auto records = ledger.Query(settled_before_ms_, now_ms + 1, app);
  if (!records) return records.error();
  if (day_start_ms_ == -1) {
    day_start_ms_ = day_start;
    read_whole_ms_ = now_ms;
  }
  records_read_ = records->size();
  // Those that ended before the new mark are settled: their share of the
  // day and month will not change. The rest are counted as of now.
  const std::int64_t mark = std::max(settled_before_ms_, now_ms - kSettleLagMs);
  std::vector<UsageRecord> settling, open;
  for (UsageRecord& record : *records)
    (record.end_ms > 0 && record.end_ms < mark ? settling : open).push_back(std::move(record));
  settled_ = settled_ + SpendOf(settling, now_ms);
  settled_before_ms_ = mark;
  last_ = settled_ + SpendOf(open, now_ms);
  return *last_;
}

std::optional<BudgetBreach> FindBreach(const BudgetState& budget, const BudgetSpend& spend,
                                       std::int64_t now_ms) {
  // Reached by spending: a cap of 0 (a share of nothing) is not reached at 0.
  if (budget.daily_usd && spend.day_usd >= *budget.daily_usd && spend.day_usd > 0)
    return BudgetBreach{"daily_usd", *budget.daily_usd, spend.day_usd, UtcDay(now_ms)};
  if (budget.monthly_usd && spend.month_usd >= *budget.monthly_usd && spend.month_usd > 0)
    return BudgetBreach{"monthly_usd", *budget.monthly_usd, spend.month_usd, UtcMonth(now_ms)};
  return std::nullopt;
}

core::Error BudgetExceeded(const std::string& app, const BudgetBreach& breach) {
  const bool daily = breach.cap == "daily_usd";
  return core::Error{core::ErrorCode::kBudgetExceeded,
                     "app " + app + " has spent " + core::FormatUsdFine(breach.spent_usd) +
                         " of its " + (daily ? "daily" : "monthly") + " budget of " +
                         core::FormatUsdFine(breach.cap_usd) + " on this agent (budget." +
                         breach.cap + ", the UTC " + (daily ? "day" : "month") + " from " +
                         UtcTimestamp(breach.period.start_ms) + "): it is stopped until " +
                         UtcTimestamp(breach.period.end_ms) + "; raise budget." + breach.cap +
                         " in its spec and apply it to lift the stop sooner",
                     {}};
}

const char* BudgetConditionName(BudgetCondition condition) {
  switch (condition) {
    case BudgetCondition::kOk:
      return "ok";
    case BudgetCondition::kAlerted:
      return "alerted";
    case BudgetCondition::kStopped:
      return "stopped";
  }
  return "ok";
}

BudgetGuard::BudgetGuard(UsageLedger* ledger, Hooks hooks, std::chrono::milliseconds interval,
                         std::function<std::int64_t()> now_ms)
    : ledger_(ledger), hooks_(std::move(hooks)), interval_(interval), now_ms_(std::move(now_ms)) {}

BudgetGuard::~BudgetGuard() {
  Stop();
}

void BudgetGuard::Start() {
  thread_ = std::thread([this] {
    using Clock = std::chrono::steady_clock;
    // At a fixed rate: an evaluation that takes long does not push the next
    // one back. A wake brings the next one to within kWakeDelay at most.
    auto next = Clock::now() + interval_;
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      wake_.wait_until(lock, next, [&] { return stopping_ || woken_; });
      if (stopping_) return;
      if (woken_) {
        woken_ = false;
        next = std::min(next, Clock::now() + kWakeDelay);
        continue;
      }
      lock.unlock();
      Evaluate();
      lock.lock();
      next = std::max(next + interval_, Clock::now());
    }
  });
}

void BudgetGuard::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void BudgetGuard::Wake() {
  {
    std::lock_guard lock(mutex_);
    woken_ = true;
  }
  wake_.notify_all();
}

void BudgetGuard::Set(std::map<std::string, BudgetState> budgets) {
  {
    std::lock_guard lock(mutex_);
    for (auto entry = entries_.begin(); entry != entries_.end();) {
      if (budgets.count(entry->first)) {
        ++entry;
        continue;
      }
      if (entry->second.notified_stopped) lifted_.push_back(entry->first);
      entry = entries_.erase(entry);
    }
    const std::int64_t now_ms = now_ms_();
    for (auto& [app, budget] : budgets) {
      Entry& entry = entries_[app];
      if (entry.budget == budget) continue;
      entry.budget = budget;
      // With its spend known, judged again now; a new one by the thread.
      if (entry.evaluated) Decide(app, entry, entry.spend, now_ms);
    }
  }
  Wake();  // the thread reads what is new and calls the hooks
}

void BudgetGuard::Evaluate() {
  {
    std::lock_guard evaluating(evaluate_mutex_);
    std::map<std::string, BudgetState> budgets;
    {
      std::lock_guard lock(mutex_);
      for (const auto& [app, entry] : entries_) budgets.emplace(app, entry.budget);
    }
    // The counters of apps whose budget went go too.
    std::erase_if(counters_, [&](const auto& counter) { return !budgets.count(counter.first); });
    for (const auto& [app, budget] : budgets) Judge(app, budget);
  }
  Notify();
}

void BudgetGuard::Judge(const std::string& app, const BudgetState& budget) {
  const std::int64_t now_ms = now_ms_();
  auto spend = counters_[app].Read(*ledger_, app, now_ms);
  if (!spend) {
    // The state stands as it was; the next evaluation tries again.
    spdlog::warn("agent: budget of {}: {}", app, spend.error().message);
    return;
  }
  std::lock_guard lock(mutex_);
  auto found = entries_.find(app);
  if (found == entries_.end() || !(found->second.budget == budget)) return;  // set anew meanwhile
  Decide(app, found->second, *spend, now_ms);
}

void BudgetGuard::Decide(const std::string& app, Entry& entry, const BudgetSpend& spend,
                         std::int64_t now_ms) {
  std::optional<BudgetBreach> breach = FindBreach(entry.budget, spend, now_ms);
  entry.evaluated = true;
  entry.spend = spend;
  entry.evaluated_ms = now_ms;
  entry.refusal.reset();
  entry.reason.clear();
  entry.condition = BudgetCondition::kOk;
  if (!breach) return;
  core::Error exceeded = BudgetExceeded(app, *breach);
  entry.reason = exceeded.message;
  if (entry.budget.on_exceed == BudgetAction::kStop) {
    entry.condition = BudgetCondition::kStopped;
    entry.refusal = std::move(exceeded);
    return;
  }
  entry.condition = BudgetCondition::kAlerted;
  auto& alerted = entry.alerted[breach->cap];
  if (alerted == breach->period.start_ms) return;  // once per period
  alerted = breach->period.start_ms;
  spdlog::warn("agent: budget alert: app {} has spent {:.4f} USD of its {} of {:.4f} USD", app,
               breach->spent_usd, breach->cap, breach->cap_usd);
}

void BudgetGuard::Notify() {
  struct Change {
    std::string app;
    std::optional<core::Error> refusal;  // nullopt: lifted
    bool news = true;                    // else stopped still: said before
  };
  std::vector<Change> changes;
  {
    std::lock_guard lock(mutex_);
    for (std::string& app : lifted_) changes.push_back({std::move(app), std::nullopt});
    lifted_.clear();
    for (auto& [app, entry] : entries_) {
      bool stopped = entry.condition == BudgetCondition::kStopped;
      bool news = stopped != entry.notified_stopped;
      entry.notified_stopped = stopped;
      // While it is stopped, every evaluation stops the app again: a call
      // that passed the check just before the stop, or one queued before a
      // restart, ends within an evaluation.
      if (news || stopped) changes.push_back({app, entry.refusal, news});
    }
  }
  for (const auto& [app, refusal, news] : changes) {
    if (refusal) {
      if (news) spdlog::warn("agent: budget: {}", refusal->message);
      if (hooks_.stop) hooks_.stop(app, *refusal);
    } else {
      spdlog::info("agent: budget: app {} may run again", app);
      if (hooks_.resume) hooks_.resume(app);
    }
  }
}

std::optional<core::Error> BudgetGuard::Refusal(const std::string& app) const {
  std::lock_guard lock(mutex_);
  auto found = entries_.find(app);
  if (found == entries_.end()) return std::nullopt;
  return found->second.refusal;
}

json BudgetGuard::Status(const std::string& app) const {
  std::lock_guard lock(mutex_);
  auto found = entries_.find(app);
  if (found == entries_.end()) return nullptr;
  const Entry& entry = found->second;
  json status = {{"on_exceed", BudgetActionName(entry.budget.on_exceed)},
                 {"spent_today_usd", entry.spend.day_usd},
                 {"spent_month_usd", entry.spend.month_usd},
                 {"state", BudgetConditionName(entry.condition)},
                 {"evaluated_ms", entry.evaluated_ms}};
  if (entry.budget.daily_usd) status["daily_usd"] = *entry.budget.daily_usd;
  if (entry.budget.monthly_usd) status["monthly_usd"] = *entry.budget.monthly_usd;
  if (!entry.reason.empty()) status["reason"] = entry.reason;
  return status;
}

}  // namespace agents
