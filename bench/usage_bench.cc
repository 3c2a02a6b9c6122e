// usage_bench: what metering costs (issue 10: "ledger throughput, records/s
// with fsync batching, and the overhead of metering on job-call latency,
// goal under 1 ms per call, side by side with the same run without
// metering").
//
//  1. Ledger throughput: container records (a start and a stop each) written
//     to a UsageLedger over a fresh agent.db (SQLite, WAL, synchronous=FULL)
//     in the bench's scratch folder, three ways: one writer committing each
//     record before the next (one fsync'd transaction per record); 32
//     writers doing the same at once (their writes share transactions: group
//     commit); and as the agent writes, without waiting (the ledger's
//     committer thread batches what is queued). GANTRY_BENCH_RECORDS records
//     each (default 2000).
//  2. The metering on a call's path: UsageMeter made and destroyed (what
//     CallRunner::Attempt adds around `runc run`), timed in a loop.
//  3. Job-call latency with and without metering: the same CallRunner
//     code, in process, over the same image, layers and runc, once with the
//     ledger in its ContainerParts and once without; calls of `/bin/true`
//     alternate between the two, GANTRY_BENCH_CALLS timed (default 100)
//     after GANTRY_BENCH_WARMUP (default 5) of each. Needs root, runc and
//     /bin/busybox; skipped without them.
//  4. A budget's evaluation (what the budget guard does every second for
//     each app with a budget): an app with GANTRY_BENCH_MONTH_RECORDS
//     (default 100,000) records this month and 10 running, its spend read
//     by the SpendCounter (the records since its last read) side by side
//     with a whole read of the month (the guard's way before it), in the
//     same run, over the same ledger.
//
// Run it with `ctest --test-dir build -L bench -R usage_bench -V`, or
// build/bench/usage_bench. It fails only when something it runs fails,
// never on a figure.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "agents/agent_records.h"
#include "agents/budget_guard.h"
#include "agents/call_runner.h"
#include "agents/usage_ledger.h"
#include "bench/latency_sample.h"
#include "bench/machine_load.h"
#include "builder/content_store.h"
#include "core/wall_clock.h"
#include "tests/busybox_image.h"
#include "tests/temp_dir.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

core::Error BenchError(const std::string& message) {
  return core::Error{core::ErrorCode::kInternal, message, {}};
}

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

agents::MeteredContainer Container(int writer, int record) {
  return {"bench",   "train",  "c-" + std::to_string(writer) + "-" + std::to_string(record),
          "",        {"H100"}, 2,
          4ull << 30};
}

/// A usage ledger over a fresh agent.db in `dir` (made), with the default rates.
core::Result<std::unique_ptr<agents::UsageLedger>> OpenLedger(
    const fs::path& dir, std::chrono::milliseconds checkpoint_interval) {
  fs::create_directories(dir);
  auto database = agents::AgentDatabase::Open(dir / "agent.db");
  if (!database) return database.error();
  return agents::UsageLedger::Open(*database, core::RateCard::Defaults(), "bench",
                                   checkpoint_interval);
}

struct Throughput {
  double records_per_second = 0;
  double records_per_commit = 0;
};

/// `writers` threads write `records` container records in all to a fresh
/// ledger; with `wait`, each Commit()s every record before the next.
core::Result<Throughput> WriteRecords(const fs::path& dir, int writers, int records, bool wait) {
  fs::remove_all(dir);
  auto ledger = OpenLedger(dir, std::chrono::seconds(5));
  if (!ledger) return ledger.error();
  auto start = Clock::now();
  std::vector<std::thread> threads;
  std::atomic<bool> failed = false;
  for (int writer = 0; writer < writers; ++writer) {
    threads.emplace_back([&, writer] {
      for (int i = writer; i < records; i += writers) {
        std::string id = (*ledger)->Start(Container(writer, i), 1'800'000'000'000 + i);
        (*ledger)->Stop(id, 1'800'000'001'500 + i);
        if (wait && !(*ledger)->Commit().ok()) failed = true;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  if (auto committed = (*ledger)->Commit(); !committed.ok()) return committed.error();
  double seconds = SecondsSince(start);
  if (failed) return BenchError("a commit failed");
  auto [commits, writes] = (*ledger)->CommitCounts();
  if (writes != 2u * static_cast<unsigned>(records)) return BenchError("records went missing");
  return Throughput{records / seconds,
                    static_cast<double>(records) / std::max<std::uint64_t>(1, commits)};
}

core::Status LedgerThroughput(const fs::path& scratch) {
  const int records = static_cast<int>(bench::EnvNumber("GANTRY_BENCH_RECORDS", 2000));
  std::printf(
      "\nLedger throughput: %d container records (a start and a stop each), SQLite WAL, "
      "synchronous=FULL, in %s\n",
      records, scratch.c_str());
  std::printf("  %-52s %12s %12s\n", "", "records/s", "per commit");
  struct Way {
    const char* name;
    int writers;
    bool wait;
  };
  for (const Way& way : {Way{"1 writer, each record committed (fsync) before the next", 1, true},
                         Way{"32 writers, each committing (group commit)", 32, true},
                         Way{"as the agent writes: queued, committer thread batches", 1, false}}) {
    auto figures = WriteRecords(scratch / "ledger", way.writers, records, way.wait);
    if (!figures) return figures.error();
    std::printf("  %-52s %12.0f %12.1f\n", way.name, figures->records_per_second,
                figures->records_per_commit);
  }
  return core::Ok{};
}

core::Status MeterCost(const fs::path& scratch) {
  auto ledger = OpenLedger(scratch / "meter", std::chrono::seconds(5));
  if (!ledger) return ledger.error();
  const int rounds = 20'000;
  bench::LatencySample sample;
  for (int i = 0; i < rounds; ++i) {
    auto start = Clock::now();
    { agents::UsageMeter meter(ledger->get(), Container(0, i)); }
    sample.ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  std::printf(
      "\nMetering on a call's path (UsageMeter made and destroyed: a start and a stop "
      "queued), %d rounds\n  p50 %.4f ms, p99 %.4f ms, max %.3f ms\n",
      rounds, sample.Percentile(0.5), sample.Percentile(0.99), sample.Max());
  return core::Ok{};
}

core::Status CallLatency(const fs::path& scratch) {
  if (!tests::CanRunContainers()) {
    std::printf("\nJob-call latency: skipped (needs root, /usr/sbin/runc and /bin/busybox)\n");
    return core::Ok{};
  }
  const int calls = static_cast<int>(bench::EnvNumber("GANTRY_BENCH_CALLS", 100));
  const int warmups = static_cast<int>(bench::EnvNumber("GANTRY_BENCH_WARMUP", 5));
  const fs::path store_dir = scratch / "store";
  std::printf("\nbuilding the busybox image with gantry build ...\n");
  auto digest = tests::BuildBusyboxImage(GANTRY_BINARY, scratch / "image", store_dir);
  if (!digest) return digest.error();
  auto store = builder::ContentStore::Open(store_dir);
  if (!store) return store.error();
  for (const char* dir : {"layers", "runc", "containers", "calls", "logs"})
    fs::create_directories(scratch / dir);
  agents::ImageLayers layers(std::move(store).value(), scratch / "layers");
  agents::RuncRuntime runtime("runc", scratch / "runc");
  auto database = agents::AgentDatabase::Open(scratch / "agent.db");
  if (!database) return database.error();
  agents::AgentRecords records(*database);
  auto ledger = agents::UsageLedger::Open(*database, core::RateCard::Defaults(), "bench",
                                          std::chrono::seconds(5));
  if (!ledger) return ledger.error();
  agents::GpuPool gpus({});
  agents::FunctionLogs logs(scratch / "logs");
  agents::ContainerParts parts{&layers,
                               &runtime,
                               &records,
                               &gpus,
                               &logs,
                               nullptr,
                               false,
                               agents::DetectHostLimits(),
                               scratch / "containers",
                               scratch / "calls"};
  agents::CallRunner unmetered(parts);
  parts.ledger = ledger->get();
  agents::CallRunner metered(parts);

  agents::PreparedFunction job;
  job.app = "bench";
  job.function.name = "true";
  job.function.image.digest = *digest;
  job.function.command = {"/bin/true"};
  auto time_call = [&](agents::CallRunner& runner) -> core::Result<double> {
    auto start = Clock::now();
    auto call = runner.Submit(job.app, job.function.name, {});
    if (!call) return call.error();
    agents::CallRecord done = runner.Run(*call, job, {});
    if (done.state != agents::CallState::kSucceeded)
      return BenchError("a call failed: " + done.error);
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  };
  std::printf("load average before: %s\n", bench::LoadAverage().c_str());
  bench::LatencySample with, without;
  for (int i = -warmups; i < calls; ++i) {
    auto plain = time_call(unmetered);
    if (!plain) return plain.error();
    auto counted = time_call(metered);
    if (!counted) return counted.error();
    if (i < 0) continue;
    without.ms.push_back(*plain);
    with.ms.push_back(*counted);
  }
  std::printf("load average after: %s\n", bench::LoadAverage().c_str());
  std::printf(
      "\nJob-call latency: /bin/true in busybox through CallRunner in process (%d calls "
      "each, alternating, after %d warm-up)\n",
      calls, warmups);
  std::printf("  %-28s %8s %8s %8s %8s\n", "ms", "p50", "p90", "p99", "mean");
  auto row = [](const char* name, const bench::LatencySample& sample) {
    std::printf("  %-28s %8.2f %8.2f %8.2f %8.2f\n", name, sample.Percentile(0.5),
                sample.Percentile(0.9), sample.Percentile(0.99), sample.Mean());
  };
  row("without metering", without);
  row("with metering", with);
  std::printf("  %-28s %8.2f %8.2f %8.2f %8.2f\n", "metering - without",
              with.Percentile(0.5) - without.Percentile(0.5),
              with.Percentile(0.9) - without.Percentile(0.9),
              with.Percentile(0.99) - without.Percentile(0.99), with.Mean() - without.Mean());
  return core::Ok{};
}

core::Status BudgetEvaluation(const fs::path& scratch) {
  const int records = static_cast<int>(bench::EnvNumber("GANTRY_BENCH_MONTH_RECORDS", 100'000));
  auto opened = OpenLedger(scratch / "budget", std::chrono::hours(1));
  if (!opened) return opened.error();
  agents::UsageLedger& ledger = **opened;
  // The month so far: `records` containers of 20 s spread over 20 days,
  // then 10 running.
  const std::int64_t now = agents::UtcMonth(core::NowMs()).start_ms + 20ll * 86'400'000;
  const std::int64_t spacing = 20ll * 86'400'000 / records;
  for (int i = 0; i < records; ++i) {
    std::int64_t start = now - 20ll * 86'400'000 + i * spacing;
    ledger.Stop(ledger.Start(Container(0, i), start), start + 20'000);
  }
  for (int i = 0; i < 10; ++i) ledger.Start(Container(1, i), now - 30'000);
  if (auto committed = ledger.Commit(); !committed.ok()) return committed.error();

  const int rounds = 50;
  bench::LatencySample counted, whole;
  agents::SpendCounter counter;
  if (auto first = counter.Read(ledger, "bench", now); !first) return first.error();
  double counted_usd = 0, whole_usd = 0;
  for (int i = 1; i <= rounds; ++i) {
    const std::int64_t at = now + i * 1'000;  // a read a second, as the guard does
    auto start = Clock::now();
    auto spend = counter.Read(ledger, "bench", at);
    if (!spend) return spend.error();
    counted.ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    counted_usd = spend->month_usd;
    start = Clock::now();
    auto month = ledger.Query(agents::UtcMonth(at).start_ms, at + 1, "bench");
    if (!month) return month.error();
    whole_usd = agents::SpendOf(*month, at).month_usd;
    whole.ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  std::printf(
      "\nA budget's evaluation: an app with %d records this month and 10 running, %d reads "
      "a second apart (month's spend $%.2f both ways: %s)\n",
      records, rounds, counted_usd, std::abs(counted_usd - whole_usd) < 1e-6 ? "equal" : "DIFFER");
  std::printf("  %-40s %8s %8s %8s %10s\n", "ms", "p50", "p90", "mean", "records");
  std::printf("  %-40s %8.3f %8.3f %8.3f %10zu\n", "SpendCounter (records since last read)",
              counted.Percentile(0.5), counted.Percentile(0.9), counted.Mean(),
              counter.records_read());
  std::printf("  %-40s %8.3f %8.3f %8.3f %10d\n", "whole month read (before)",
              whole.Percentile(0.5), whole.Percentile(0.9), whole.Mean(), records + 10);
  if (std::abs(counted_usd - whole_usd) >= 1e-6)
    return BenchError("the spend counter and the whole read differ");
  return core::Ok{};
}

core::Status Bench() {
  tests::TempDir scratch("gantry-usage-bench");
  std::printf("usage_bench: load average %s\n", bench::LoadAverage().c_str());
  if (auto done = LedgerThroughput(scratch.path()); !done.ok()) return done;
  if (auto done = MeterCost(scratch.path()); !done.ok()) return done;
  if (auto done = BudgetEvaluation(scratch.path()); !done.ok()) return done;
  return CallLatency(scratch.path());
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  try {
    auto benched = Bench();
    if (!benched.ok()) {
      std::fprintf(stderr, "usage_bench: %s\n", benched.error().message.c_str());
      return 1;
    }
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "usage_bench: %s\n", error.what());
    return 1;
  }
}
