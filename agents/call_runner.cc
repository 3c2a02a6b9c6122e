#include "agents/call_runner.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "agents/cdi_spec.h"
#include "agents/container_root.h"
#include "agents/runtime_spec.h"
#include "builder/image_config.h"
#include "core/random.h"

namespace agents {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// "KEY=VALUE" entries with later keys replacing earlier ones in place.
void SetEnv(std::vector<std::string>* env, const std::string& entry) {
  std::string key = entry.substr(0, entry.find('='));
  for (std::string& existing : *env) {
    if (existing.substr(0, existing.find('=')) == key) {
      existing = entry;
      return;
    }
  }
  env->push_back(entry);
}

/// The uid and gid an image's `user` names: "UID[:GID]" or a name looked up
/// in the image's own /etc/passwd (and /etc/group), as Docker does.
core::Result<std::pair<std::uint32_t, std::uint32_t>> ResolveUser(const fs::path& rootfs,
                                                                  const std::string& user) {
  if (user.empty()) return std::pair<std::uint32_t, std::uint32_t>{0, 0};
  std::string name = user.substr(0, user.find(':'));
  std::string group = user.find(':') == std::string::npos ? "" : user.substr(user.find(':') + 1);
  auto lookup = [&](const char* file, const std::string& wanted, int id_field,
                    int gid_field) -> std::optional<std::pair<std::uint32_t, std::uint32_t>> {
    if (!wanted.empty() && wanted.find_first_not_of("0123456789") == std::string::npos) {
      std::uint32_t id = static_cast<std::uint32_t>(std::stoul(wanted));
      return std::pair{id, id};
    }
    // The image's file is read as data only; a symlink in it could point at
    // the host's, so only a regular file inside the root counts.
    fs::path path = rootfs / file;
    if (fs::is_symlink(path)) return std::nullopt;
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      std::vector<std::string> fields;
      std::stringstream stream(line);
      std::string field;
      while (std::getline(stream, field, ':')) fields.push_back(field);
      if (fields.size() > std::size_t(std::max(id_field, gid_field)) && fields[0] == wanted) {
        try {
          return std::pair{static_cast<std::uint32_t>(std::stoul(fields[id_field])),
                           static_cast<std::uint32_t>(std::stoul(fields[gid_field]))};
        } catch (const std::exception&) {
          return std::nullopt;
        }
      }
    }
    return std::nullopt;
  };
  auto found_user = lookup("etc/passwd", name, 2, 3);
  if (!found_user) {
    return core::Error{core::ErrorCode::kNotFound,
                       "the image's user \"" + name + "\" is not in its /etc/passwd",
                       {}};
  }
  if (group.empty()) return *found_user;
  auto found_group = lookup("etc/group", group, 2, 2);
  if (!found_group) {
    return core::Error{core::ErrorCode::kNotFound,
                       "the image's group \"" + group + "\" is not in its /etc/group",
                       {}};
  }
  return std::pair{found_user->first, found_group->first};
}

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
                                            const CallRequest& request) {
  auto id = core::RandomHex(12);
  if (!id) return id.error();
  CallRecord call;
  call.id = "call-" + *id;
  call.app = app;
  call.function = function;
  call.state = CallState::kQueued;
  call.created_ms = NowMs();
  call.request = ToJson(request).dump(-1, ' ', false, json::error_handler_t::replace);
  std::error_code error;
  fs::create_directories(parts_.calls_dir / call.id, error);
  if (error) {
    return core::Error{core::ErrorCode::kIo,
                       "cannot create the folder of " + call.id + ": " + error.message(),
                       {}};
  }
  if (auto saved = parts_.records->SaveCall(call); !saved.ok()) return saved.error();
  return call;
}

CallRecord CallRunner::Run(CallRecord call, const JobFunction& job, const CallRequest& request) {
  Slots& slots = SlotsOf(job.app, job.function.name);
  {
    std::unique_lock lock(slots.mutex);
    std::uint64_t ticket = slots.next_ticket++;
    slots.changed.wait(lock, [&] {
      return slots.serving == ticket && slots.running < job.function.max_containers;
    });
    ++slots.serving;
    ++slots.running;
  }
  slots.changed.notify_all();

  call.state = CallState::kRunning;
  call.started_ms = NowMs();
  if (!job.function.gpu) {
    RunAttempts(&call, job, request, {});
  } else if (auto gpus = parts_.gpus->Acquire(*job.function.gpu); gpus) {
    RunAttempts(&call, job, request, gpus->gpus());
  } else {
    call.state = CallState::kFailed;
    call.error = gpus.error().message;
  }
  call.finished_ms = NowMs();
  Save(call);

  {
    std::lock_guard lock(slots.mutex);
    --slots.running;
  }
  slots.changed.notify_all();
  return call;
}

void CallRunner::RunAttempts(CallRecord* call, const JobFunction& job, const CallRequest& request,
                             const std::vector<Gpu>& gpus) {
  std::chrono::milliseconds backoff = job.function.retry_backoff;
  while (true) {
    ++call->attempts;
    Save(*call);
    auto exit = Attempt(*call, job, request, gpus);
    if (!exit) {
      call->state = CallState::kFailed;
      call->error = exit.error().message;
      LogAttempt(*call,
                 "attempt " + std::to_string(call->attempts) + " could not start: " + call->error);
      return;  // the container could not be made: another attempt would fail alike
    }
    LogAttempt(*call,
               "attempt " + std::to_string(call->attempts) +
                   (exit->timed_out ? " timed out"
                                    : " exited with code " + std::to_string(exit->exit_code)));
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
  }
}

void CallRunner::LogAttempt(const CallRecord& call, const std::string& outcome) {
  std::vector<LogLine> lines;
  std::int64_t now = NowMs();
  for (const auto& [stream, path] :
       {std::pair{"stdout", StdoutPath(call.id)}, std::pair{"stderr", StderrPath(call.id)}}) {
    constexpr std::size_t kLoggedBytes = 1 << 20;  // per stream and attempt; the call keeps it all
    std::ifstream in(path, std::ios::binary);
    std::string text;
    std::size_t logged = 0;
    while (std::getline(in, text)) {
      if ((logged += text.size() + 1) > kLoggedBytes) {
        lines.push_back(
            {now, call.id, "agent",
             std::string(stream) + " cut short here: the rest is in the call's output"});
        break;
      }
      lines.push_back({now, call.id, stream, text});
    }
  }
  lines.push_back({now, call.id, "agent", outcome});
  if (auto appended = parts_.logs->Append(call.app, call.function, lines); !appended.ok()) {
    spdlog::warn("agent: {}", appended.error().message);
  }
}

void CallRunner::RunInBackground(CallRecord call, JobFunction job, CallRequest request) {
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

core::Result<ContainerExit> CallRunner::Attempt(const CallRecord& call, const JobFunction& job,
                                                const CallRequest& request,
                                                const std::vector<Gpu>& gpus) {
  auto image = parts_.layers->Prepare(job.function.image.digest);
  if (!image) return image.error();

  std::string container_id = call.id + "-" + std::to_string(call.attempts);
  fs::path dir = parts_.containers_dir / container_id;
  auto root = ContainerRoot::Create(image->layers, dir, parts_.limits.overlayfs);
  if (!root) return root.error();

  ContainerSpec spec;
  spec.id = container_id;
  spec.rootfs = root->rootfs();
  const builder::ImageSettings& settings = image->settings;
  if (!job.function.command.empty()) {
    spec.args = job.function.command;
  } else {
    spec.args = settings.entrypoint;
    if (request.args.empty())
      spec.args.insert(spec.args.end(), settings.cmd.begin(), settings.cmd.end());
  }
  spec.args.insert(spec.args.end(), request.args.begin(), request.args.end());

  spec.env = {std::string("PATH=") + builder::kDefaultPath};
  for (const std::string& entry : settings.env) SetEnv(&spec.env, entry);
  for (const auto& [key, value] : job.function.env) SetEnv(&spec.env, key + "=" + value);
  for (const std::string& entry : job.secret_env) SetEnv(&spec.env, entry);
  // Real GPUs: the host's CDI spec for them (mounts, nodes, hooks, env) when it has one.
  core::Result<std::optional<CdiEdits>> cdi = std::optional<CdiEdits>();
  if (parts_.pass_gpu_devices) cdi = CdiEditsForGpus(gpus);
  if (cdi && *cdi) {
    ApplyCdiEdits(**cdi, &spec);
  } else {
    for (const std::string& entry : GpuEnv(gpus)) SetEnv(&spec.env, entry);
  }
  for (const auto& [key, value] : request.env) SetEnv(&spec.env, key + "=" + value);
  spec.cwd = settings.workdir.empty() ? "/" : settings.workdir;
  core::Result<ContainerExit> result = core::Error{};
  if (!cdi) {
    result = cdi.error();  // a broken spec: the attempt fails naming the file
  } else if (auto user = ResolveUser(spec.rootfs, settings.user); !user) {
    result = user.error();
  } else {
    spec.uid = user->first;
    spec.gid = user->second;
    spec.hostname = job.function.name;
    spec.memory_bytes = job.function.memory_bytes;
    spec.cpus = job.function.cpu;
    for (const auto& [mount, host_dir] : job.volume_dirs)
      spec.mounts.push_back({host_dir, mount, false});
    if (parts_.pass_gpu_devices && !*cdi) spec.devices = GpuDeviceNodes(gpus);
    if (auto written = WriteBundle(dir, spec, parts_.limits); !written) {
      result = written.error();
    } else {
      RunOptions options;
      options.stdin_data = request.stdin_data;
      options.stdout_file = StdoutPath(call.id);
      options.stderr_file = StderrPath(call.id);
      options.timeout = job.function.timeout;
      options.grace = std::chrono::seconds(2);
      result = parts_.runtime->Run(dir, container_id, options);
    }
  }
  if (auto removed = root->Remove(); !removed.ok()) {
    spdlog::warn("agent: cannot remove container {}: {}", container_id, removed.error().message);
  }
  return result;
}

}  // namespace agents
