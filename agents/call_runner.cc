#include "agents/call_runner.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <fstream>

#include "agents/container_root.h"
#include "core/random.h"
#include "core/wall_clock.h"

namespace agents {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

/// How long a container has between SIGTERM and SIGKILL, at its timeout or
/// when the agent stops.
constexpr std::chrono::milliseconds kStopGrace = std::chrono::seconds(2);
/// How long, after the grace, a stopping agent waits for SIGKILLed
/// containers to be gone (runc's own wait for a killed container is 10 s).
constexpr std::chrono::milliseconds kStopWait = std::chrono::seconds(11);

}  // namespace

core::Result<CallRequest> ParseCallRequest(const json& body) {
  auto bad = [](const std::string& message) {
    return core::Error{core::ErrorCode::kInvalidArgument, message, {}};
  };
  if (!body.is_object()) return bad("the call body must be a JSON object");
  CallRequest request;
  for (const auto& [key, value] : body.items()) {
    if (key == "args") {
      if (!value.is_array()) return bad("args: expected a list of strings");
      for (const json& arg : value) {
        if (!arg.is_string()) return bad("args: expected a list of strings");
        request.args.push_back(arg.get<std::string>());
      }
    } else if (key == "stdin") {
      if (!value.is_string()) return bad("stdin: expected a string");
      request.stdin_data = value.get<std::string>();
    } else if (key == "env") {
      if (!value.is_object()) return bad("env: expected an object of strings");
      for (const auto& [name, setting] : value.items()) {
        if (!setting.is_string()) return bad("env." + name + ": expected a string");
        if (name.empty() || name.find('=') != std::string::npos) {
          return bad("env: invalid variable name \"" + name + "\"");
        }
        request.env[name] = setting.get<std::string>();
      }
    } else {
      return bad(key + ": unknown field");
    }
  }
  return request;
}

json ToJson(const CallRequest& request) {
  return {{"args", request.args}, {"stdin", request.stdin_data}, {"env", request.env}};
}

CallRunner::CallRunner(ContainerParts parts) : parts_(std::move(parts)) {}

CallRunner::~CallRunner() {
  std::map<std::uint64_t, std::thread> threads;
  {
    std::lock_guard lock(mutex_);
    threads.swap(background_);
  }
  for (auto& [serial, thread] : threads) thread.join();
}

fs::path CallRunner::StdoutPath(const std::string& call_id) const {
  return parts_.calls_dir / call_id / "stdout";
}
fs::path CallRunner::StderrPath(const std::string& call_id) const {
  return parts_.calls_dir / call_id / "stderr";
}

void CallRunner::Save(const CallRecord& call) {
  if (auto saved = parts_.records->SaveCall(call); !saved.ok()) {
    // The call goes on; its record will be written again at its next change.
    spdlog::warn("agent: {}", saved.error().message);
  }
}

CallRunner::Slots& CallRunner::SlotsOf(const std::string& app, const std::string& function) {
  std::lock_guard lock(mutex_);
  auto& slots = slots_[app + "/" + function];
  if (!slots) slots = std::make_unique<Slots>();
  return *slots;
}

std::pair<int, int> CallRunner::Load(const std::string& app, const std::string& function) {
  Slots& slots = SlotsOf(app, function);
  std::lock_guard lock(slots.mutex);
  return {slots.running, static_cast<int>(slots.next_ticket - slots.serving)};
}

core::Result<CallRecord> CallRunner::Submit(const std::string& app, const std::string& function,
                                            const CallRequest& request, ScheduleFire* fire) {
  auto id = core::RandomHex(12);
  if (!id) return id.error();
  CallRecord call;
  call.id = "call-" + *id;
  call.app = app;
  call.function = function;
  call.state = CallState::kQueued;
  call.created_ms = core::NowMs();
  call.request = ToJson(request).dump(-1, ' ', false, json::error_handler_t::replace);
  std::error_code error;
  fs::create_directories(parts_.calls_dir / call.id, error);
  if (error) {
    return core::Error{core::ErrorCode::kIo,
                       "cannot create the folder of " + call.id + ": " + error.message(),
                       {}};
  }
  if (fire) fire->last_call = call.id;
  if (auto saved = parts_.records->SaveCall(call, fire); !saved.ok()) {
    // No call names it; should this fail, the prune's sweep takes it.
    if (fs::remove_all(parts_.calls_dir / call.id, error); error) {
      spdlog::warn("agent: cannot remove the folder of {}, which was not saved: {}", call.id,
                   error.message());
    }
    return saved.error();
  }
  return call;
}

CallRecord CallRunner::Run(CallRecord call, const PreparedFunction& job,
                           const CallRequest& request) {
  // Its volumes are in use from now (queued, it mounts them later) to its end.
  struct VolumeUse {
    CallRunner& runner;
    std::string call_id;
    ~VolumeUse() {
      std::lock_guard lock(runner.mutex_);
      runner.volumes_in_use_.erase(call_id);
    }
  } volume_use{*this, call.id};
  {
    std::lock_guard lock(mutex_);
    for (const auto& [mount, dir] : job.volume_dirs) volumes_in_use_[call.id].push_back(dir);
  }
  Slots& slots = SlotsOf(job.app, job.function.name);
  bool cancelled = false;  // while it was queued
  {
    std::unique_lock lock(slots.mutex);
    std::uint64_t ticket = slots.next_ticket++;
    slots.changed.wait(lock, [&] {
      return stopping_ || (slots.serving == ticket && slots.running < job.function.max_containers);
    });
    if (stopping_) return call;  // still queued: the next start runs it
    ++slots.serving;
    if (auto reason = Cancelled(call.id)) {
      cancelled = true;
      call.state = CallState::kInterrupted;
      call.error = *reason;
    } else {
      ++slots.running;
    }
  }
  slots.changed.notify_all();
  if (cancelled) return Finish(std::move(call));
  // The slot is given back however this call ends.
  struct SlotRelease {
    Slots& slots;
    ~SlotRelease() {
      {
        std::lock_guard lock(slots.mutex);
        --slots.running;
      }
      slots.changed.notify_all();
    }
  } release{slots};

  call.state = CallState::kRunning;
  call.started_ms = core::NowMs();
  if (!job.function.gpu) {
    RunAttempts(&call, job, request, {});
  } else if (auto gpus = parts_.gpus->Acquire(*job.function.gpu); gpus) {
    RunAttempts(&call, job, request, gpus->gpus());
  } else if (stopping_) {
    call.state = CallState::kQueued;
    call.started_ms = 0;
  } else {
    call.state = CallState::kFailed;
    call.error = gpus.error().message;
  }
  if (stopping_ && call.state == CallState::kQueued) {
    Save(call);  // stopped while waiting for GPUs: the next start runs it
    return call;
  }
  return Finish(std::move(call));
}

CallRecord CallRunner::Finish(CallRecord call) {
  call.finished_ms = core::NowMs();
  Save(call);
  if (parts_.metrics) {
    const MetricLabels function = {{"app", call.app}, {"function", call.function}};
    parts_.metrics->call_seconds.Observe(function, (call.finished_ms - call.created_ms) / 1000.0);
    MetricLabels outcome = function;
    outcome.emplace_back("outcome", CallStateName(call.state));
    parts_.metrics->calls.Add(outcome);
  }
  std::lock_guard lock(mutex_);
  cancelled_.erase(call.id);
  return call;
}

std::optional<std::string> CallRunner::CallUsing(const fs::path& volume_dir) {
  std::lock_guard lock(mutex_);
  for (const auto& [call_id, dirs] : volumes_in_use_)
    if (std::find(dirs.begin(), dirs.end(), volume_dir) != dirs.end()) return call_id;
  return std::nullopt;
}

std::optional<std::string> CallRunner::Cancelled(const std::string& call_id) {
  std::lock_guard lock(mutex_);
  auto found = cancelled_.find(call_id);
  if (found == cancelled_.end()) return std::nullopt;
  return found->second;
}

void CallRunner::Cancel(const std::string& call_id, const std::string& reason) {
  std::lock_guard lock(mutex_);
  cancelled_.emplace(call_id, reason);
  // A running attempt wakes on its flag at once: SIGTERM, grace, SIGKILL.
  if (auto flag = stop_flags_.find(call_id); flag != stop_flags_.end()) flag->second->Set();
}

void CallRunner::Shutdown() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    for (auto& [key, slots] : slots_) {
      std::lock_guard slots_lock(slots->mutex);
      slots->changed.notify_all();
    }
    // Every attempt has its flag from before its container is made (an
    // attempt that makes one after this sees stopping_ in its new flag):
    // each stops its container as at a timeout, SIGTERM, the grace, then
    // SIGKILL, also one that runc is still creating.
    for (auto& [call_id, flag] : stop_flags_) flag->Set();
  }
  auto deadline = std::chrono::steady_clock::now() + kStopGrace + kStopWait;
  while (std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard lock(mutex_);
      if (running_containers_.empty()) return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  spdlog::warn("agent: containers still running after the stop: {}", [&] {
    std::lock_guard lock(mutex_);
    return running_containers_.size();
  }());
}

void CallRunner::RunAttempts(CallRecord* call, const PreparedFunction& job,
                             const CallRequest& request, const std::vector<Gpu>& gpus) {
  std::chrono::milliseconds backoff = job.function.retry_backoff;
  while (true) {
    if (call->attempts > 0) {
      // A retry starts its output afresh, emptied before `attempts` says
      // so: a follower that sees the new count reads only the new output.
      std::error_code ignored;  // files the last attempt did not make
      fs::resize_file(StdoutPath(call->id), 0, ignored);
      fs::resize_file(StderrPath(call->id), 0, ignored);
    }
    ++call->attempts;
    Save(*call);
    LogLine about;
    about.call = call->id;
    OutputLog log(parts_.logs, call->app, call->function, about);
    auto exit = Attempt(*call, job, request, gpus, log);
    if (!exit) {
      call->state = stopping_ ? CallState::kInterrupted : CallState::kFailed;
      call->error = exit.error().message;
      LogAttempt(log,
                 "attempt " + std::to_string(call->attempts) + " could not start: " + call->error);
      return;  // the container could not be made: another attempt would fail alike
    }
    LogAttempt(log, "attempt " + std::to_string(call->attempts) +
                        (exit->timed_out ? " timed out"
                                         : " exited with code " + std::to_string(exit->exit_code)));
    if (stopping_) {
      call->state = CallState::kInterrupted;
      call->error = "the agent stopped while the call was running";
      return;
    }
    if (auto reason = Cancelled(call->id); reason && !(exit->exit_code == 0 && !exit->timed_out)) {
      call->state = CallState::kInterrupted;
      call->error = *reason;
      return;
    }
    call->exit_code = exit->exit_code;
    if (exit->exit_code == 0 && !exit->timed_out) {
      call->state = CallState::kSucceeded;
      call->error.clear();
      return;
    }
    call->state = exit->timed_out ? CallState::kTimedOut : CallState::kFailed;
    call->error = exit->timed_out
                      ? "timed out after " + std::to_string(job.function.timeout.count()) + " ms"
                      : "exited with code " + std::to_string(exit->exit_code);
    if (call->attempts > job.function.retries) return;
    call->state = CallState::kRunning;
    Save(*call);
    std::this_thread::sleep_for(backoff);
    backoff *= 2;
    if (auto reason = Cancelled(call->id)) {  // cancelled while waiting to retry
      call->state = CallState::kInterrupted;
      call->error = *reason;
      return;
    }
  }
}

void CallRunner::LogAttempt(OutputLog& log, const std::string& outcome) {
  if (auto appended = log.Finish(outcome); !appended.ok())
    spdlog::warn("agent: {}", appended.error().message);
}

void CallRunner::RunInBackground(CallRecord call, PreparedFunction job, CallRequest request) {
  std::lock_guard lock(mutex_);
  for (std::uint64_t serial : ended_) {
    background_.at(serial).join();  // it has ended, or is about to return
    background_.erase(serial);
  }
  ended_.clear();
  std::uint64_t serial = next_background_++;
  background_.emplace(serial, std::thread([this, serial, call = std::move(call),
                                           job = std::move(job), request = std::move(request)] {
                        Run(call, job, request);
                        std::lock_guard ended_lock(mutex_);
                        ended_.push_back(serial);
                      }));
}

core::Result<ContainerExit> CallRunner::Attempt(const CallRecord& call, const PreparedFunction& job,
                                                const CallRequest& request,
                                                const std::vector<Gpu>& gpus, OutputLog& log) {
  auto image = parts_.layers->Prepare(job.function.image.digest);
  if (!image) return image.error();

  std::string container_id = call.id + "-" + std::to_string(call.attempts);
  fs::path dir = parts_.containers_dir / container_id;
  auto root = ContainerRoot::Create(image->layers, dir, parts_.limits.overlayfs);
  if (!root) return root.error();

  core::Result<ContainerExit> result = core::Error{};
  ContainerInputs inputs;
  inputs.args = request.args;
  for (const auto& [key, value] : request.env) inputs.env.push_back(key + "=" + value);
  auto spec = FunctionContainerSpec(container_id, root->rootfs(), *image, job, inputs, gpus,
                                    parts_.pass_gpu_devices);
  if (!spec) {
    result = spec.error();
  } else {
    if (auto written = WriteBundle(dir, *spec, parts_.limits); !written) {
      result = written.error();
    } else {
      RunOptions options;
      std::shared_ptr<core::StopFlag> stop;
      {
        // The flag and the container's entry are made together, under the
        // lock Shutdown takes to raise every flag: none is missed.
        std::lock_guard lock(mutex_);
        auto& flag = stop_flags_[call.id];
        if (!flag) {
          flag = std::make_shared<core::StopFlag>();
          if (cancelled_.count(call.id) > 0 || stopping_) flag->Set();
        }
        stop = flag;
        running_containers_.insert(container_id);
      }
      options.stop = stop.get();
      options.stdin_data = request.stdin_data;
      options.stdout_file = StdoutPath(call.id);
      options.stderr_file = StderrPath(call.id);
      options.on_stdout = [&log](std::string_view data) { log.Write("stdout", data); };
      options.on_stderr = [&log](std::string_view data) { log.Write("stderr", data); };
      options.timeout = job.function.timeout;
      options.grace = kStopGrace;
      if (stopping_) {
        result = core::Error{core::ErrorCode::kConflict, "the agent is stopping", {}};
      } else {
        UsageMeter meter = MeterContainer(parts_, job, container_id, call.id, gpus);
        if (parts_.metrics) {
          parts_.metrics->container_starts.Add(
              {{"app", job.app}, {"function", job.function.name}, {"kind", "job"}});
        }
        result = parts_.runtime->Run(dir, container_id, options);
      }
      std::lock_guard lock(mutex_);
      running_containers_.erase(container_id);
      stop_flags_.erase(call.id);
    }
  }
  if (auto removed = root->Remove(); !removed.ok()) {
    spdlog::warn("agent: cannot remove container {}: {}", container_id, removed.error().message);
  }
  return result;
}

}  // namespace agents
