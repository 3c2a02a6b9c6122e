#pragma once

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agents/agent_records.h"
#include "agents/budget_guard.h"
#include "agents/call_runner.h"
#include "agents/desired_state.h"
#include "agents/function_logs.h"
#include "agents/gpu_inventory.h"
#include "agents/gpu_pool.h"
#include "agents/host_info.h"
#include "agents/host_limits.h"
#include "agents/image_layers.h"
#include "agents/metrics.h"
#include "agents/runc_runtime.h"
#include "agents/scheduler.h"
#include "agents/secret_box.h"
#include "agents/usage_ledger.h"
#include "agents/web_function.h"
#include "core/result.h"

namespace agents {

/// How an agent is started (`gantry agent`'s options).
struct AgentOptions {
  std::filesystem::path data_dir;
  std::filesystem::path store;  // the content store images are read from
  std::string gpus = "auto";    // DiscoverGpus's mode
  std::filesystem::path runtime = "runc";
  std::string version;  // gantry's, for GET /v1/node
  /// Start with no apps (the stored generation kept): what a killed
  /// embedded agent (`gantry up`) left is dropped, not run again, and the
  /// calls it had queued end interrupted.
  bool forget_apps = false;
  /// How long a call's record and output are kept after it ended
  /// (`--call-retention`): pruned at start and every hour after.
  std::chrono::milliseconds call_retention = std::chrono::hours(24 * 7);
};

/// Part of a call's output, and where the next part starts.
struct CallOutput {
  std::string stdout_text;
  std::string stderr_text;
  std::uint64_t stdout_next = 0;  // byte offsets into the streams
  std::uint64_t stderr_next = 0;
};

/// A web function the router can send a request to, and what its callers
/// must show when its `web.auth` is `key`.
struct WebTarget {
  WebState web;            // its `web` settings: how requests authenticate
  std::string key_sha256;  // the app key's hash, for `web.auth: key`
  /// What serves it; null when it cannot be served here, for `unavailable`.
  std::shared_ptr<WebFunction> function;
  std::string unavailable;
};

/// One host's agent, as a library: it owns the data dir, accepts desired
/// states, runs job calls and reports. The HTTP API (api_server.h) and the
/// `gantry agent` command are thin layers over it, and the `gantry` command
/// can run one in process.
///
/// Opening an agent recovers from a crash of the previous one on the same
/// data dir: the last desired state is reloaded (secrets unsealed), the
/// containers it left are killed and their roots removed, calls that were
/// running are marked interrupted and calls still queued run again, and the
/// usage records they left open are closed at their last checkpoint.
class Agent {
 public:
  static core::Result<std::unique_ptr<Agent>> Open(const AgentOptions& options);
  /// Shutdown(), then waits for the calls to end.
  ~Agent();

  /// Begins an orderly stop: calls waiting stay queued for the next start,
  /// running containers are stopped (SIGTERM, grace, SIGKILL) and their
  /// calls end interrupted; web containers are stopped too. Call it before stopping the API server,
  /// whose threads may be waiting for calls.
  void Shutdown();

  /// Makes `desired` this host's state. The same generation again changes
  /// nothing but re-checks what kept functions from running (returns
  /// false); an older one, or the same one with a different
  /// document, is refused (kConflict) with nothing changed. Problems of one
  /// function (an image missing from the store, GPUs this host lacks) do not
  /// refuse the state: they show in Status().
  core::Result<bool> Apply(const DesiredState& desired);
  /// PUT /v1/desired/apps/APP: the applied desired state with `app` added
  /// or replaced (by its name) and `generation`, applied as Apply() does,
  /// the other apps and their secrets kept as they are.
  core::Result<bool> ApplyApp(std::int64_t generation, const AppState& app);
  /// DELETE /v1/desired/apps/APP: the applied desired state without `app`,
  /// at `generation`, applied as Apply() does; kNotFound when it has no
  /// such app.
  core::Result<bool> RemoveApp(std::int64_t generation, const std::string& app);

  /// GET /v1/node: the host, its GPUs, runtime and what was degraded.
  nlohmann::json Node() const;
  /// GET /v1/status: per app and function, desired vs running, errors.
  nlohmann::json Status() const;
  /// GET /v1/desired: the desired state with every secret redacted.
  nlohmann::json Desired() const;
  /// GET /metrics: the agent's metrics in the Prometheus text format
  /// (agents/README.md, "Metrics"), its gauges (containers, queues, GPUs)
  /// and the usage ledger's totals read now.
  std::string Metrics();
  /// What the call runner, the web functions and the router count into.
  AgentMetrics& metrics() { return metrics_; }

  /// The web function `app`/`function`, for the router: kNotFound when the
  /// desired state has no such function or it is a job; without a serving
  /// function and with why when it cannot run here (its image missing, GPUs
  /// this host lacks, its app stopped by its budget).
  core::Result<WebTarget> FindWebFunction(const std::string& app,
                                          const std::string& function) const;
  /// The error `app`'s calls and web requests get while its budget stops it
  /// (BudgetGuard::Refusal); nullopt when it may run.
  std::optional<core::Error> BudgetRefusal(const std::string& app) const {
    return budget_->Refusal(app);
  }

  /// A job call. With `wait` it returns when the call has ended; otherwise
  /// as soon as it is queued. kNotFound for a function not in the desired
  /// state; kConflict for one that cannot run here (unschedulable).
  core::Result<CallRecord> Call(const std::string& app, const std::string& function,
                                const CallRequest& request, bool wait);
  core::Result<std::optional<CallRecord>> FindCall(const std::string& id);
  /// A call's stdout and stderr (of its last attempt) as far as written,
  /// from byte offsets on, at most 4 MiB of each. With `whole_characters` (a
  /// call still running) a UTF-8 sequence cut at the end waits for the next
  /// read, so that a follower sees no broken characters.
  CallOutput ReadCallOutput(const std::string& id, std::uint64_t stdout_from = 0,
                            std::uint64_t stderr_from = 0, bool whole_characters = false) const;

  /// The function logs (GET /v1/logs).
  const FunctionLogs& logs() const { return logs_; }

  /// Deletes a volume's folder and all it holds: the only way a volume goes.
  /// kConflict while the desired state still names it, kNotFound when there
  /// is no such volume.
  core::Status DeleteVolume(const std::string& app, const std::string& volume);

  /// GET /v1/usage: the usage records of `app` ("": every app) that ran in
  /// [since_ms, until_ms), each with its share of the window, and their
  /// totals (agents/README.md, "Usage").
  /// With `step_ms`, also their usage over time (a `series` of windows of
  /// that length), for the dashboard's chart.
  core::Result<nlohmann::json> Usage(std::int64_t since_ms, std::int64_t until_ms,
                                     const std::string& app, std::int64_t step_ms = 0);
  /// GET /v1/calls: the newest `limit` calls of `app` ("": every app).
  core::Result<std::vector<CallRecord>> RecentCalls(const std::string& app, int limit);

  const std::filesystem::path& data_dir() const { return options_.data_dir; }

 private:
  Agent(AgentOptions options, HostInfo host, HostLimits limits, std::vector<Gpu> gpus,
        SecretBox secrets, std::unique_ptr<AgentRecords> records,
        std::unique_ptr<UsageLedger> ledger, builder::ContentStore store,
        std::string runtime_version);
  core::Status Recover();
  /// Apply() with mutex_ held, so that the per-app routes read the current
  /// state and apply its successor without another apply in between.
  core::Result<bool> ApplyLocked(const DesiredState& desired);
  /// Finds, for every desired function, why it cannot run here (and
  /// unpacks the layers of those that can), then starts the web functions
  /// that can run, replaces those whose settings changed and retires those
  /// gone. Needs mutex_ held.
  void RefreshProblems();
  void SyncWebFunctions();
  /// The budget guard's stop of `app`: its web functions stop (SyncWebFunctions
  /// leaves out what the guard refuses) and its queued and running calls end
  /// with `why`.
  void StopApp(const std::string& app, const core::Error& why);
  /// Deletes the calls that ended more than options_.call_retention ago, in
  /// batches until none is left or Shutdown() begins: their output folders,
  /// then their records (a record whose folder is gone is pruned again the
  /// next time, should its deletion fail); then RemoveFoldersWithoutCalls.
  void PruneCalls();
  /// Removes the folders in calls/ that no call record names and that were
  /// last written before `before_ms`: left by a call whose record could
  /// not be saved, or by a crash between the two.
  void RemoveFoldersWithoutCalls(std::int64_t before_ms);
  /// PruneCalls() at once, then every kCallPruneInterval, until Shutdown().
  void PruneCallsPeriodically();
  /// Gives the scheduler the scheduled job functions that can run here.
  void SyncSchedules();
  /// Pulls the images of desired functions that the store lacks, without
  /// holding mutex_ (one fetch at a time), then refreshes the problems.
  /// Called after every apply and on start.
  void FetchImages();
  /// Unpacks the layers of desired images the store has and that are not
  /// unpacked yet, without holding mutex_ (called by FetchImages, so one
  /// at a time: two applies never unpack the same image twice), then
  /// refreshes the problems: until then the functions show the image as
  /// being unpacked.
  void UnpackImages();
  /// Destroys the retired web functions SyncWebFunctions set aside, without
  /// mutex_ (each joins its scaling thread). Call it after releasing mutex_.
  void DropRetired();
  /// Pulls a function's image, pinned to its digest, from the registry its
  /// reference names into the content store (over plain HTTP only for
  /// loopback registries and GANTRY_INSECURE_REGISTRIES).
  core::Status PullImage(const ImageRef& image) const;
  /// Why a function cannot run here, if it cannot (an image the store lacks
  /// is being pulled, or its last pull failed). `image_pending` is set when
  /// the only reason is its image still on its way (being pulled or
  /// unpacked), which ends by itself. Needs mutex_ held.
  std::vector<std::string> CheckFunction(const std::string& app, const FunctionState& function,
                                         bool* image_pending) const;
  core::Result<PreparedFunction> PrepareFunction(const std::string& app,
                                                 const FunctionState& function) const;
  core::Result<std::string> SealedDocument(const DesiredState& desired) const;

  AgentOptions options_;
  HostInfo host_;
  HostLimits limits_;
  std::vector<Gpu> gpus_;
  GpuPool gpu_pool_;
  SecretBox secrets_;
  std::unique_ptr<AgentRecords> records_;
  std::unique_ptr<UsageLedger> ledger_;  // outlives every container, which it meters
  AgentMetrics metrics_;                 // outlives the parts that count into it
  RuncRuntime runtime_;
  std::string runtime_version_;
  ImageLayers layers_;
  FunctionLogs logs_;
  ContainerParts container_parts_;
  std::unique_ptr<CallRunner> calls_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<BudgetGuard> budget_;  // stopped first: its hooks use the members above

  mutable std::mutex mutex_;  // guards desired_, problems_, the web functions, pulls and unpacks
  std::mutex fetch_mutex_;    // one FetchImages at a time
  std::map<std::string, std::string> pull_failures_;  // image digest -> why the last pull failed
  DesiredState desired_;
  std::map<std::string, std::vector<std::string>> problems_;  // "app/function" -> why it cannot run
  /// "app/function" of problems_ whose only problem is their image being
  /// pulled or unpacked: a web function's previous serving serves on meanwhile.
  std::set<std::string> image_pending_;
  std::map<std::string, std::shared_ptr<WebFunction>> web_;  // "app/function" -> its serving
  std::vector<std::shared_ptr<WebFunction>> retiring_;       // replaced ones, draining
  std::vector<std::shared_ptr<WebFunction>> retired_;        // drained, for DropRetired to destroy
  std::set<std::string> unpacked_;                      // image digests whose layers are unpacked
  std::map<std::string, std::string> unpack_failures_;  // image digest -> why unpacking failed
  bool stopping_ = false;

  std::mutex prune_mutex_;  // guards prune_stop_
  std::condition_variable prune_wake_;
  bool prune_stop_ = false;
  std::thread pruner_;  // PruneCallsPeriodically
};

}  // namespace agents
