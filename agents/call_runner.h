#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agents/agent_records.h"
#include "agents/desired_state.h"
#include "agents/function_container.h"
#include "agents/function_logs.h"
#include "agents/gpu_pool.h"
#include "agents/host_limits.h"
#include "agents/image_layers.h"
#include "agents/runc_runtime.h"
#include "core/result.h"
#include "core/stop_flag.h"

namespace agents {

/// The body of `POST /v1/apps/{app}/functions/{fn}/calls`.
struct CallRequest {
  std::vector<std::string> args;  // appended to the function's command
  std::string stdin_data;
  std::map<std::string, std::string> env;  // overrides, applied last
};

/// Reads a call body strictly (unknown fields are errors naming them).
core::Result<CallRequest> ParseCallRequest(const nlohmann::json& body);
nlohmann::json ToJson(const CallRequest& request);

/// Runs job calls: one fresh container per attempt, built from the
/// function's image over a private root, with the function's command plus the
/// call's args, its stdin, and env from the image, the function, its secrets,
/// the call, then its GPUs (in that order, later ones winning). A failed attempt (exit
/// code not 0, or the timeout) is retried up to `retries` times, waiting
/// `retry_backoff` and doubling it. At most `max_containers` calls of one
/// function run at once; the others wait in the order they came. A call
/// that needs GPUs holds them, whole and its own, from its first attempt to
/// its last, waiting for them in turn when they are busy. Every
/// change of a call's state is recorded before it is acted on, and its
/// output is kept in DATA_DIR/calls/ID/{stdout,stderr}.
class CallRunner {
 public:
  explicit CallRunner(ContainerParts parts);
  /// Waits for the calls started in the background.
  ~CallRunner();

  /// Records a new queued call and returns it (with its id). A scheduled
  /// run gives its schedule's new state, `fire`, saved with the call in one
  /// transaction (its last_call set to the new call's id).
  core::Result<CallRecord> Submit(const std::string& app, const std::string& function,
                                  const CallRequest& request, ScheduleFire* fire = nullptr);
  /// Runs a submitted call to its end, in this thread; returns its final record.
  CallRecord Run(CallRecord call, const PreparedFunction& job, const CallRequest& request);
  /// Runs a submitted call on a thread of its own.
  void RunInBackground(CallRecord call, PreparedFunction job, CallRequest request);

  /// Stops taking calls out of the queue (those waiting stay queued for the
  /// next start) and stops running containers (SIGTERM, then the grace):
  /// their calls end `interrupted`. Calls started afterwards stay queued.
  void Shutdown();

  /// Stops a call (a schedule's `overlap: replace`, a budget's stop):
  /// queued, it ends before it starts; running, its container is stopped
  /// (SIGTERM, grace, SIGKILL). Either way it ends `interrupted`, without
  /// retries, with `reason` as its error.
  void Cancel(const std::string& call_id, const std::string& reason);

  /// A call, queued or running, that mounts the volume folder
  /// `volume_dir` (its function's, as prepared when it was made: a call of
  /// an older generation keeps a volume the desired state has dropped).
  std::optional<std::string> CallUsing(const std::filesystem::path& volume_dir);

  /// Calls of a function running now, and waiting for a slot.
  std::pair<int, int> Load(const std::string& app, const std::string& function);

  /// The output files of a call.
  std::filesystem::path StdoutPath(const std::string& call_id) const;
  std::filesystem::path StderrPath(const std::string& call_id) const;

 private:
  /// Attempts until one succeeds or the retries are spent; leaves the outcome in *call.
  void RunAttempts(CallRecord* call, const PreparedFunction& job, const CallRequest& request,
                   const std::vector<Gpu>& gpus);
  /// One attempt in a fresh container: its exit, or why it could not start.
  core::Result<ContainerExit> Attempt(const CallRecord& call, const PreparedFunction& job,
                                      const CallRequest& request, const std::vector<Gpu>& gpus,
                                      OutputLog& log);
  void Save(const CallRecord& call);
  /// The end of a call however it ended: its finish time saved, its
  /// metrics counted, its cancellation forgotten.
  CallRecord Finish(CallRecord call);
  /// Why the call was cancelled, if it was.
  std::optional<std::string> Cancelled(const std::string& call_id);
  /// Ends an attempt's log (its output went there as it came): the rest
  /// of its last lines and how it ended.
  void LogAttempt(OutputLog& log, const std::string& outcome);

  /// Calls of one function running now, and the queue of those waiting.
  struct Slots {
    std::mutex mutex;
    std::condition_variable changed;
    int running = 0;
    std::uint64_t next_ticket = 0;
    std::uint64_t serving = 0;
  };
  Slots& SlotsOf(const std::string& app, const std::string& function);

  ContainerParts parts_;
  std::mutex mutex_;
  std::map<std::string, std::unique_ptr<Slots>> slots_;
  std::atomic<bool> stopping_ = false;
  std::set<std::string> running_containers_;      // runc ids, guarded by mutex_
  std::map<std::string, std::string> cancelled_;  // call id -> why, guarded by mutex_
  /// The volume folders of each call from Run's start to its end, by call id.
  std::map<std::string, std::vector<std::filesystem::path>> volumes_in_use_;
  /// The stop flag of each call's running attempt (RunOptions::stop), by call id.
  std::map<std::string, std::shared_ptr<core::StopFlag>> stop_flags_;
  /// Background calls' threads by a serial number; those that have ended
  /// are joined and dropped when the next one starts.
  std::map<std::uint64_t, std::thread> background_;
  std::vector<std::uint64_t> ended_;
  std::uint64_t next_background_ = 0;
};

}  // namespace agents
