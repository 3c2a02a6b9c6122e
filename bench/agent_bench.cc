// agent_bench: job-call latency through `gantry agent`, side by side with
// bare `runc run` of the same bundle (issue: "p50/p99 over 200 calls ...
// the agent adds under 20 ms at p50 to bare runc").
//
//  1. A busybox image built by the real `gantry build` into a store of the
//     bench's own (tests/busybox_image.h).
//  2. The agent: `gantry agent --listen 127.0.0.1:0 --gpus none` on that
//     store, a desired state with one function `echo` whose command is
//     `/bin/echo hi` (every other setting the default), then calls
//     `POST /v1/apps/bench/functions/echo/calls?wait=true` on one
//     keep-alive connection, each timed from the request sent to the
//     response received. The image is cached: the PUT unpacks its layers.
//  3. The reference: a bundle made as the agent makes one, once: the
//     image's layers unpacked by agents::ImageLayers (into a folder of the
//     bench's own, not the agent's), an agents::ContainerRoot over them
//     (overlay where the host has it, as the agent's), and config.json
//     written by agents::WriteBundle from the ContainerSpec the agent builds
//     for `echo` (same args, env, hostname, cpu and memory limits). Then
//     `runc --root R run --bundle B ID`, its stdout captured, each timed
//     from start to exit. The root is reused: that is the agent's cost.
//     The function's cpu is its default (0.125: a CFS quota of 12.5 ms per
//     100 ms period) unless GANTRY_BENCH_CPU says otherwise (0: no limit),
//     for both alike. Agent and reference calls alternate, after GANTRY_BENCH_WARMUP
//     (default 10) untimed of each, so that load from elsewhere falls on
//     both alike; GANTRY_BENCH_CALLS (default 200) timed of each.
//  4. Where an agent call's time goes: the steps of CallRunner::Attempt
//     done in process with the same library calls, each timed, and the
//     records the agent writes for a call (AgentRecords, SQLite with
//     synchronous=FULL) in a database of the bench's own.
//
// Every output must be "hi\n" with exit code 0, else the bench fails. It
// needs root, runc and /bin/busybox. Run it with
// `ctest --test-dir build -L bench -R agent_bench --output-on-failure`, or
// `build/bench/agent_bench` directly. It is not a test: it fails only when
// something it runs fails, never on a figure.

#include <httplib.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "agents/agent_records.h"
#include "agents/container_root.h"
#include "agents/desired_state.h"
#include "agents/host_limits.h"
#include "agents/image_layers.h"
#include "agents/runc_runtime.h"
#include "agents/runtime_spec.h"
#include "bench/latency_sample.h"
#include "bench/machine_load.h"
#include "builder/content_store.h"
#include "builder/image_config.h"
#include "core/atomic_file.h"
#include "core/cpus.h"
#include "core/subprocess.h"
#include "tests/agent_process.h"
#include "tests/busybox_image.h"
#include "tests/temp_dir.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr double kGoalMs = 20.0;
constexpr char kApp[] = "bench";
constexpr char kFunction[] = "echo";
const std::vector<std::string> kCommand = {"/bin/echo", "hi"};
constexpr char kExpectedStdout[] = "hi\n";
// The PATH of every runc the bench starts, as the agent's RuncRuntime has it.
constexpr char kPath[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

core::Error BenchError(const std::string& message) {
  return core::Error{core::ErrorCode::kIo, message, {}};
}

/// GANTRY_BENCH_CPU: the function's cpu, for the agent and the reference
/// alike; unset: the default of a function that does not say.
std::optional<double> EnvCpu() {
  const char* text = std::getenv("GANTRY_BENCH_CPU");
  if (text == nullptr || *text == '\0') return std::nullopt;
  char* end = nullptr;
  double value = std::strtod(text, &end);
  if (*end != '\0' || value < 0) {
    std::fprintf(stderr, "agent_bench: GANTRY_BENCH_CPU must be a number >= 0\n");
    std::exit(2);
  }
  return value;
}

double MillisecondsSince(Clock::time_point started) {
  return std::chrono::duration<double, std::milli>(Clock::now() - started).count();
}

/// Unmounts (lazily) whatever is still mounted under `folder` when the
/// object goes: the root of a call that an agent left behind when it died
/// mid-call, so that the scratch folder can be removed after it.
class MountSweeper {
 public:
  explicit MountSweeper(fs::path folder) : prefix_(folder.string() + "/") {}
  ~MountSweeper() {
    std::ifstream mountinfo("/proc/self/mountinfo");
    std::vector<std::string> mounted;
    for (std::string line; std::getline(mountinfo, line);) {
      std::istringstream fields(line);
      std::string id, parent, device, root, mount_point;
      fields >> id >> parent >> device >> root >> mount_point;
      if (mount_point.starts_with(prefix_)) mounted.push_back(mount_point);
    }
    // Innermost first.
    for (auto it = mounted.rbegin(); it != mounted.rend(); ++it) {
      std::fprintf(stderr, "agent_bench: unmounting %s, left behind\n", it->c_str());
      umount2(it->c_str(), MNT_DETACH);
    }
  }
  MountSweeper(const MountSweeper&) = delete;
  MountSweeper& operator=(const MountSweeper&) = delete;

 private:
  std::string prefix_;
};

// --- The agent ----------------------------------------------------------------

core::Status PutDesired(httplib::Client& client, const std::string& digest,
                        std::optional<double> cpu) {
  json function = {{"image", {{"digest", digest}}}, {"command", kCommand}};
  if (cpu) function["cpu"] = *cpu;
  json desired = {{"generation", 1}, {"apps", {{kApp, {{"functions", {{kFunction, function}}}}}}}};
  auto result = client.Put("/v1/desired", desired.dump(), "application/json");
  if (!result) return BenchError("PUT /v1/desired: " + httplib::to_string(result.error()));
  if (result->status != 200)
    return BenchError("PUT /v1/desired: " + std::to_string(result->status) + " " + result->body);
  return core::Ok{};
}

/// One job call with ?wait=true: its latency in ms, once its output is checked.
core::Result<double> TimeAgentCall(httplib::Client& client) {
  const std::string path =
      std::string("/v1/apps/") + kApp + "/functions/" + kFunction + "/calls?wait=true";
  auto started = Clock::now();
  auto result = client.Post(path, "{}", "application/json");
  double ms = MillisecondsSince(started);
  if (!result) return BenchError("POST " + path + ": " + httplib::to_string(result.error()));
  if (result->status != 200)
    return BenchError("POST " + path + ": " + std::to_string(result->status) + " " + result->body);
  json call = json::parse(result->body, nullptr, /*allow_exceptions=*/false);
  if (!call.is_object() || call.value("stdout", "") != kExpectedStdout ||
      !call.contains("exit_code") || call["exit_code"] != 0) {
    return BenchError("unexpected call result: " + result->body);
  }
  return ms;
}

// --- The reference ------------------------------------------------------------

/// The ContainerSpec CallRunner::Attempt builds for a call of `function`
/// with no args, env or secrets, on `rootfs`.
agents::ContainerSpec SpecOf(const agents::FunctionState& function,
                             const builder::ImageSettings& settings, const std::string& id,
                             const fs::path& rootfs) {
  agents::ContainerSpec spec;
  spec.id = id;
  spec.rootfs = rootfs;
  spec.args = function.command;
  spec.env = {std::string("PATH=") + builder::kDefaultPath};
  for (const std::string& entry : settings.env) {
    std::string key = entry.substr(0, entry.find('='));
    auto same = std::find_if(spec.env.begin(), spec.env.end(), [&](const std::string& existing) {
      return existing.substr(0, existing.find('=')) == key;
    });
    if (same != spec.env.end()) {
      *same = entry;
    } else {
      spec.env.push_back(entry);
    }
  }
  spec.cwd = settings.workdir.empty() ? "/" : settings.workdir;
  spec.hostname = function.name;  // the image's user is root: uid and gid 0
  spec.memory_bytes = function.memory_bytes;
  spec.cpus = function.cpu;
  return spec;
}

/// The `echo` function as the desired state above makes it: defaults but
/// for its command (and its cpu, when `cpu` says).
agents::FunctionState EchoFunction(const std::string& digest, std::optional<double> cpu) {
  agents::FunctionState function;
  function.name = kFunction;
  function.image.digest = digest;
  function.command = kCommand;
  if (cpu) function.cpu = *cpu;
  return function;
}

/// `runc --root STATE run --bundle BUNDLE ID`, stdout captured: its latency
/// in ms, once its output is checked.
core::Result<double> TimeBareRunc(const fs::path& state_root, const fs::path& bundle,
                                  const std::string& id) {
  core::SubprocessOptions options;
  options.argv = {"runc", "--root", state_root.string(), "run", "--bundle", bundle.string(), id};
  options.env = {kPath};
  options.stdout_to = core::Output::Capture();
  options.stderr_to = core::Output::Capture();
  auto started = Clock::now();
  auto ran = core::RunSubprocess(std::move(options), 60s);
  double ms = MillisecondsSince(started);
  if (!ran) return ran.error();
  if (ran->exit.code != 0 || ran->stdout_text != kExpectedStdout) {
    return BenchError("runc run " + id + ": exit code " + std::to_string(ran->exit.code) +
                      ", stdout \"" + ran->stdout_text + "\", stderr: " + ran->stderr_text);
  }
  return ms;
}

/// A container root that is removed (unmounted) when the object goes, unless
/// Remove was called first: so that a bench that fails leaves no mount.
class RootGuard {
 public:
  explicit RootGuard(agents::ContainerRoot root) : root_(std::move(root)) {}
  ~RootGuard() {
    if (!removed_) (void)root_.Remove();
  }
  RootGuard(const RootGuard&) = delete;
  RootGuard& operator=(const RootGuard&) = delete;

  core::Status Remove() {
    removed_ = true;
    return root_.Remove();
  }

 private:
  agents::ContainerRoot root_;
  bool removed_ = false;
};

// --- Where the time goes --------------------------------------------------------

/// The steps of one agent call (CallRunner::Attempt and the records around
/// it), each timed over every run.
struct StepTimes {
  bench::LatencySample prepare, create, write_bundle, run, remove, records;
};

/// Does what CallRunner::Attempt does for one call, step by step, in this
/// process, timing each; plus the three record writes of a call (SaveCall
/// queued, running, finished).
class StepTimer {
 public:
  StepTimer(agents::ImageLayers& layers, agents::FunctionState function, agents::HostLimits limits,
            fs::path scratch)
      : layers_(layers),
        function_(std::move(function)),
        limits_(std::move(limits)),
        scratch_(std::move(scratch)),
        runtime_("runc", scratch_ / "runc") {}

  core::Status Open() {
    std::error_code error;
    fs::create_directories(scratch_ / "runc", error);
    fs::create_directories(scratch_ / "containers", error);
    if (error) return BenchError("cannot create " + scratch_.string() + ": " + error.message());
    auto records = agents::AgentRecords::Open(scratch_ / "agent.db");
    if (!records) return records.error();
    records_ = std::move(records).value();
    return core::Ok{};
  }

  /// One call's steps; `record` false: untimed (a warm-up).
  core::Status Time(int run, bool record) {
    StepTimes scratch_times;
    StepTimes* times = record ? &times_ : &scratch_times;
    const std::string id = "bench-step-" + std::to_string(run);
    const fs::path dir = scratch_ / "containers" / id;

    auto started = Clock::now();
    agents::CallRecord call;
    call.id = id;
    call.app = kApp;
    call.function = kFunction;
    call.request = R"({"args":[],"env":{},"stdin":""})";
    auto saved = records_->SaveCall(call);
    call.state = agents::CallState::kRunning;
    call.attempts = 1;
    if (saved) saved = records_->SaveCall(call);
    double records_ms = MillisecondsSince(started);
    if (!saved) return saved.error();

    started = Clock::now();
    auto image = layers_.Prepare(function_.image.digest);
    times->prepare.ms.push_back(MillisecondsSince(started));
    if (!image) return image.error();

    started = Clock::now();
    auto root = agents::ContainerRoot::Create(image->layers, dir, limits_.overlayfs);
    times->create.ms.push_back(MillisecondsSince(started));
    if (!root) return root.error();
    RootGuard guard(*root);

    started = Clock::now();
    auto written =
        agents::WriteBundle(dir, SpecOf(function_, image->settings, id, root->rootfs()), limits_);
    times->write_bundle.ms.push_back(MillisecondsSince(started));
    if (!written) return written.error();

    agents::RunOptions options;
    options.stdout_file = scratch_ / "containers" / (id + ".stdout");
    options.stderr_file = scratch_ / "containers" / (id + ".stderr");
    options.timeout = function_.timeout;
    options.grace = 2s;
    started = Clock::now();
    auto exit = runtime_.Run(dir, id, options);
    times->run.ms.push_back(MillisecondsSince(started));
    if (!exit) return exit.error();
    auto output = core::ReadFile(options.stdout_file);
    if (exit->exit_code != 0 || !output || *output != kExpectedStdout)
      return BenchError("container " + id + " did not say hi");

    started = Clock::now();
    auto removed = guard.Remove();
    times->remove.ms.push_back(MillisecondsSince(started));
    if (!removed) return removed.error();

    started = Clock::now();
    call.state = agents::CallState::kSucceeded;
    call.exit_code = 0;
    saved = records_->SaveCall(call);
    times->records.ms.push_back(records_ms + MillisecondsSince(started));
    if (!saved) return saved.error();
    return core::Ok{};
  }

  const StepTimes& times() const { return times_; }

 private:
  agents::ImageLayers& layers_;
  agents::FunctionState function_;
  agents::HostLimits limits_;
  fs::path scratch_;
  agents::RuncRuntime runtime_;
  std::unique_ptr<agents::AgentRecords> records_;
  StepTimes times_;
};

// --- Report -------------------------------------------------------------------

void PrintRow(const char* name, const bench::LatencySample& sample) {
  std::printf("  %-34s %8.2f %8.2f %8.2f %8.2f %8.2f\n", name, sample.Percentile(0.50),
              sample.Percentile(0.90), sample.Percentile(0.99), sample.Mean(), sample.Max());
}

void PrintStep(const char* name, const bench::LatencySample& sample) {
  std::printf("  %-52s %8.2f %8.2f\n", name, sample.Percentile(0.50), sample.Percentile(0.90));
}

core::Status Bench() {
  const int calls = static_cast<int>(bench::EnvNumber("GANTRY_BENCH_CALLS", 200));
  const int warmups = static_cast<int>(bench::EnvNumber("GANTRY_BENCH_WARMUP", 10));
  const std::optional<double> cpu = EnvCpu();
  if (!tests::CanRunContainers()) return BenchError("needs root, /usr/sbin/runc and /bin/busybox");

  tests::TempDir scratch("gantry-agent-bench");
  MountSweeper sweeper(scratch.path());  // destroyed before scratch, which it unblocks
  const fs::path store_dir = scratch.path() / "store";
  std::printf("building the busybox image with gantry build ...\n");
  auto digest = tests::BuildBusyboxImage(GANTRY_BINARY, scratch.path() / "image", store_dir);
  if (!digest) return digest.error();

  const agents::HostLimits limits = agents::DetectHostLimits();
  agents::RuncRuntime probe("runc", scratch.path() / "runc");
  auto runc_version = probe.Version();
  if (!runc_version) return runc_version.error();
  const unsigned cores = static_cast<unsigned>(core::UsableCpus());
  std::printf(
      "agent_bench: %u usable hardware threads (of %u); %s; cgroups %s (cpu limits %s, memory "
      "limits %s); overlayfs %s\n",
      cores, std::thread::hardware_concurrency(), runc_version->c_str(),
      agents::CgroupsName(limits.cgroups), limits.cpu_limits ? "yes" : "no",
      limits.memory_limits ? "yes" : "no", limits.overlayfs ? "yes" : "no");
  for (const std::string& line : limits.degraded) std::printf("  degraded: %s\n", line.c_str());

  // The reference bundle, made once.
  auto store = builder::ContentStore::Open(store_dir);
  if (!store) return store.error();
  agents::ImageLayers layers(std::move(store).value(), scratch.path() / "layers");
  fs::create_directories(scratch.path() / "layers");
  auto image = layers.Prepare(*digest);
  if (!image) return image.error();
  const fs::path bundle = scratch.path() / "bundle";
  auto root = agents::ContainerRoot::Create(image->layers, bundle, limits.overlayfs);
  if (!root) return root.error();
  RootGuard root_guard(*root);
  const agents::FunctionState function = EchoFunction(*digest, cpu);
  if (auto written = agents::WriteBundle(
          bundle, SpecOf(function, image->settings, "bench-ref", root->rootfs()), limits);
      !written) {
    return written.error();
  }
  const fs::path runc_root = scratch.path() / "runc";
  fs::create_directories(runc_root);

  // The agent, its desired state applied (layers unpacked).
  const fs::path data_dir = scratch.path() / "agent";
  auto agent = tests::AgentProcess::Start(GANTRY_BINARY, data_dir, store_dir,
                                          scratch.path() / "agent.log", {"--gpus", "none"});
  if (!agent) return agent.error();
  auto client = (*agent)->Client();
  if (auto put = PutDesired(client, *digest, cpu); !put) return put.error();

  StepTimer steps(layers, function, limits, scratch.path() / "steps");
  if (auto opened = steps.Open(); !opened) return opened.error();

  std::printf(
      "%d warm-up rounds, then %d timed: each an agent call, a bare runc run, and the agent's "
      "steps in process ...\n",
      warmups, calls);
  std::printf("load average before: %s\n", bench::LoadAverage().c_str());
  bench::LatencySample bare, through_agent;
  for (int i = -warmups; i < calls; ++i) {
    const int run = i + warmups;
    auto agent_ms = TimeAgentCall(client);
    if (!agent_ms) return BenchError(agent_ms.error().message + "\nagent log:\n" + (*agent)->Log());
    auto bare_ms = TimeBareRunc(runc_root, bundle, "bench-ref-" + std::to_string(run));
    if (!bare_ms) return bare_ms.error();
    if (auto timed = steps.Time(run, /*record=*/i >= 0); !timed) return timed.error();
    if (i < 0) continue;
    through_agent.ms.push_back(*agent_ms);
    bare.ms.push_back(*bare_ms);
  }
  const std::string load_after = bench::LoadAverage();
  std::printf("load average after: %s\n", load_after.c_str());

  const std::string cpu_limit =
      function.cpu > 0 ? std::to_string(function.cpu).substr(0, 5) : std::string("no limit");
  std::printf(
      "\nJob-call latency: /bin/echo hi in busybox, image cached, cpu %s, memory %llu MiB "
      "(%d calls each, after %d warm-up)\n",
      cpu_limit.c_str(), static_cast<unsigned long long>(function.memory_bytes >> 20), calls,
      warmups);
  std::printf("  %-34s %8s %8s %8s %8s %8s\n", "ms", "p50", "p90", "p99", "mean", "max");
  PrintRow("runc run --bundle B ID (bare)", bare);
  PrintRow("gantry agent, POST ?wait=true", through_agent);
  const double overhead = through_agent.Percentile(0.5) - bare.Percentile(0.5);
  std::printf("  %-34s %8.2f %8.2f %8.2f %8.2f\n", "agent - bare", overhead,
              through_agent.Percentile(0.9) - bare.Percentile(0.9),
              through_agent.Percentile(0.99) - bare.Percentile(0.99),
              through_agent.Mean() - bare.Mean());

  const StepTimes& step_times = steps.times();
  std::printf(
      "\nWhere an agent call's time goes (CallRunner::Attempt's steps, in process, timed in "
      "the same rounds)\n");
  std::printf("  %-52s %8s %8s\n", "ms", "p50", "p90");
  PrintStep("AgentRecords: 3 SaveCall (queued, running, done)", step_times.records);
  PrintStep("ImageLayers::Prepare (layers cached)", step_times.prepare);
  PrintStep(limits.overlayfs ? "ContainerRoot::Create (overlay mount)"
                             : "ContainerRoot::Create (copy of the layers)",
            step_times.create);
  PrintStep("WriteBundle (config.json)", step_times.write_bundle);
  PrintStep("RuncRuntime::Run (runc run)", step_times.run);
  PrintStep("ContainerRoot::Remove", step_times.remove);
  const double steps_p50 = step_times.records.Percentile(0.5) + step_times.prepare.Percentile(0.5) +
                           step_times.create.Percentile(0.5) +
                           step_times.write_bundle.Percentile(0.5) +
                           step_times.run.Percentile(0.5) + step_times.remove.Percentile(0.5);
  std::printf("  %-52s %8.2f\n", "sum of the p50s", steps_p50);
  std::printf("  %-52s %8.2f\n", "the rest (HTTP, JSON, output files): agent p50 - sum",
              through_agent.Percentile(0.5) - steps_p50);

  std::printf("\nGoal\n");
  std::printf("  the agent adds under %.0f ms at p50 to bare runc: %.2f ms  %s\n", kGoalMs,
              overhead, overhead < kGoalMs ? "MET" : "NOT MET");
  // Every call is a handful of processes on a few cores: other work on the
  // machine lengthens both columns, the agent's (more processes, fsyncs)
  // more than runc's.
  if (std::atof(load_after.c_str()) > 0.75 * cores) {
    std::printf(
        "  WARNING: the machine was busy (1-minute load %s on %u cores): run again when it is "
        "idle for figures to compare\n",
        load_after.substr(0, load_after.find(' ')).c_str(), cores);
  }
  return core::Ok{};
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress shows as it happens, also in a pipe
  try {
    auto benched = Bench();
    if (!benched) {
      std::fprintf(stderr, "agent_bench: %s\n", benched.error().message.c_str());
      return 1;
    }
    return 0;
  } catch (const std::exception& error) {  // std::filesystem's, mostly: say it
    std::fprintf(stderr, "agent_bench: %s\n", error.what());
    return 1;
  }
}
