#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agents/desired_state.h"
#include "agents/usage_ledger.h"
#include "core/error.h"

namespace agents {

/// A period a budget caps, [start_ms, end_ms) in Unix epoch milliseconds.
struct BudgetPeriod {
  std::int64_t start_ms = 0;
  std::int64_t end_ms = 0;
};
/// The UTC day, and the UTC calendar month, that hold `now_ms`.
BudgetPeriod UtcDay(std::int64_t now_ms);
BudgetPeriod UtcMonth(std::int64_t now_ms);

/// What an app has spent in the UTC day and the UTC month of a moment.
struct BudgetSpend {
  double day_usd = 0;
  double month_usd = 0;
};
/// The spend of `records` in the UTC day and month of `now_ms`: each
/// record's share of the period (ShareInWindow: a record straddling
/// midnight counts in each day for its time there), running ones measured
/// to `now_ms`.
BudgetSpend SpendOf(const std::vector<UsageRecord>& records, std::int64_t now_ms);

/// An app's spend in the UTC day and month of now, kept without reading
/// the whole month each time. The records that ended more than a minute
/// before the last read are settled: their spend is summed once and kept;
/// each read takes from the ledger only the records since (those still
/// running and those that ended in the last minute or so). It reads the
/// whole month again when the UTC day rolls over, when the clock goes back,
/// and every 10 minutes, so that a record written late (a commit that
/// failed for a while) is counted then.
class SpendCounter {
 public:
  /// The spend of `app` at `now_ms`; what `ledger` has queued is committed first.
  core::Result<BudgetSpend> Read(UsageLedger& ledger, const std::string& app, std::int64_t now_ms);
  /// The spend the last Read returned, if any.
  const std::optional<BudgetSpend>& last() const { return last_; }
  /// How many records the last Read took from the ledger.
  std::size_t records_read() const { return records_read_; }

 private:
  std::int64_t day_start_ms_ = -1;      // the UTC day `settled_` is for
  std::int64_t settled_before_ms_ = 0;  // what ended before it is in `settled_`
  std::int64_t read_whole_ms_ = 0;      // when the month was last read whole
  BudgetSpend settled_;
  std::optional<BudgetSpend> last_;
  std::size_t records_read_ = 0;
};

/// A cap that `spend` has reached.
struct BudgetBreach {
  std::string cap;  // "daily_usd" or "monthly_usd"
  double cap_usd = 0;
  double spent_usd = 0;
  BudgetPeriod period;  // the day or month it caps
};
/// The first cap of `budget` (the daily one first) that `spend` has
/// reached (spent >= cap, and spent more than nothing: a cap of 0 is a
/// share of nothing, reached by the first spending) in the periods of
/// `now_ms`, if any.
std::optional<BudgetBreach> FindBreach(const BudgetState& budget, const BudgetSpend& spend,
                                       std::int64_t now_ms);

/// What a stopped app's calls and requests get: kBudgetExceeded, which the
/// API answers as HTTP 402 `budget-exceeded` (api_reply.h). The message names
/// the app, the cap, the period, when it rolls over and how to lift it.
core::Error BudgetExceeded(const std::string& app, const BudgetBreach& breach);

/// Where an app stands against its budget.
enum class BudgetCondition { kOk, kAlerted, kStopped };
const char* BudgetConditionName(BudgetCondition condition);

/// Keeps every app's budget on this agent, from the agent's own usage
/// ledger. Each `interval` (a second in the agent), and within a quarter of
/// a second after a container stops (Wake; stops that close together are
/// judged together, after their records have gone out with the ledger's
/// next commit), it reads what each app with a budget spent in the current
/// UTC day and UTC month (running containers measured to now; SpendCounter)
/// and compares it with the app's caps:
///
/// - `on_exceed: stop` at a cap: the app is stopped. Hooks::stop is called
///   at every evaluation while it lasts (the agent scales its web functions
///   to zero and stops its running and queued calls, those that slipped
///   past the check too), the warning logged once, and Refusal() gives the
///   error every new call, web request and scheduled run of the app gets. It stays stopped until
///   the period rolls over or a new budget (Set) no longer holds it: then Hooks::resume is called
///   once.
/// - `on_exceed: alert` at a cap: the app is alerted: a warning is logged
///   once per period and cap, and Status() says so.
///
/// What a stop lets through is bounded by one interval of the app's
/// running containers (plus their stop and the rounding of each to whole
/// seconds): agents/README.md, "Budgets".
class BudgetGuard {
 public:
  struct Hooks {
    /// `app` is stopped (again at each evaluation while it lasts); `why` is
    /// its Refusal().
    std::function<void(const std::string& app, const core::Error& why)> stop;
    /// `app` was stopped and no longer is.
    std::function<void(const std::string& app)> resume;
  };

  /// `now_ms` is the clock (Unix epoch ms), an argument so that tests set it.
  BudgetGuard(UsageLedger* ledger, Hooks hooks, std::chrono::milliseconds interval,
              std::function<std::int64_t()> now_ms);
  /// Stops the thread, if started.
  ~BudgetGuard();
  BudgetGuard(const BudgetGuard&) = delete;
  BudgetGuard& operator=(const BudgetGuard&) = delete;

  /// Evaluates every `interval`, and when woken, on a thread of its own.
  void Start();
  void Stop();

  /// The budgets of the desired state, by app (apps without one absent).
  /// It reads nothing and waits for no evaluation (the agent calls it under
  /// its own lock): an app whose budget changed is judged again at once from
  /// the spend last read, so that a raised budget lifts a stop for the next
  /// call at once; a new one is judged by the thread within kWakeDelay. The
  /// hooks of what changed are called by the thread (or the next Evaluate).
  void Set(std::map<std::string, BudgetState> budgets);
  /// Evaluates every app with a budget now, then calls the hooks of the
  /// apps stopped or resumed since the last call.
  void Evaluate();
  /// Makes the thread evaluate soon (a container stopped): within
  /// kWakeDelay, however many wakes come meanwhile.
  void Wake();
  static constexpr std::chrono::milliseconds kWakeDelay{250};

  /// The error a call, request or scheduled run of `app` gets while its
  /// budget stops it; nullopt when it may run.
  std::optional<core::Error> Refusal(const std::string& app) const;
  /// For GET /v1/status: the app's caps, what it spent today and this
  /// month, and its state (ok, alerted, stopped); null without a budget.
  nlohmann::json Status(const std::string& app) const;

 private:
  struct Entry {
    BudgetState budget;
    bool evaluated = false;
    BudgetSpend spend;
    std::int64_t evaluated_ms = 0;
    BudgetCondition condition = BudgetCondition::kOk;
    std::optional<core::Error> refusal;           // while stopped
    std::string reason;                           // why alerted or stopped
    bool notified_stopped = false;                // what the hooks were last told
    std::map<std::string, std::int64_t> alerted;  // cap -> start of the period last alerted
  };

  /// Reads the spend of `app` and judges its entry, if its budget is still
  /// `budget`. Under evaluate_mutex_.
  void Judge(const std::string& app, const BudgetState& budget);
  /// Sets `entry`'s condition from `spend` against its budget. Under mutex_.
  void Decide(const std::string& app, Entry& entry, const BudgetSpend& spend, std::int64_t now_ms);
  void Notify();

  UsageLedger* ledger_;
  Hooks hooks_;
  std::chrono::milliseconds interval_;
  std::function<std::int64_t()> now_ms_;

  std::mutex evaluate_mutex_;                     // one evaluation at a time; taken before mutex_
  std::map<std::string, SpendCounter> counters_;  // by app; under evaluate_mutex_
  mutable std::mutex mutex_;                      // guards the members below
  std::condition_variable wake_;
  std::map<std::string, Entry> entries_;  // apps with a budget
  std::vector<std::string> lifted_;       // stopped apps whose budget went: to resume
  bool woken_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace agents
