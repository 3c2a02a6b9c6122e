#include "agents/agent.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <fstream>
#include <set>
#include <sstream>

#include "agents/container_root.h"
#include "builder/image_index.h"
#include "builder/registry_client.h"
#include "core/atomic_file.h"
#include "core/image_reference.h"
#include "core/quantity.h"
#include "core/wall_clock.h"

namespace agents {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

/// The data dir's layout (agents/README.md).
fs::path RecordsFile(const fs::path& data_dir) {
  return data_dir / "agent.db";
}
fs::path SecretKeyFile(const fs::path& data_dir) {
  return data_dir / "secret.key";
}
fs::path LayersDir(const fs::path& data_dir) {
  return data_dir / "layers";
}
fs::path ContainersDir(const fs::path& data_dir) {
  return data_dir / "containers";
}
fs::path CallsDir(const fs::path& data_dir) {
  return data_dir / "calls";
}
fs::path VolumeDir(const fs::path& data_dir, const std::string& app, const std::string& volume) {
  return data_dir / "volumes" / app / volume;
}
fs::path RuncStateDir(const fs::path& data_dir) {
  return data_dir / "runc";
}
fs::path LogsDir(const fs::path& data_dir) {
  return data_dir / "logs";
}
fs::path RatesFile(const fs::path& data_dir) {
  return data_dir / "rates.yaml";
}

/// How often the usage of running containers is checkpointed: what a crash
/// of the agent can lose of it, at most (usage_ledger.h).
constexpr std::chrono::seconds kUsageCheckpointInterval{5};

/// How often the budget guard reads each app's spend: what a budget's stop
/// can let through is this much of the app's running containers.
constexpr std::chrono::seconds kBudgetInterval{1};

/// How often the calls past their retention are pruned.
constexpr std::chrono::hours kCallPruneInterval{1};
/// Calls pruned in one transaction of agent.db.
constexpr int kCallPruneBatch = 500;

std::string FunctionKey(const std::string& app, const std::string& function) {
  return app + "/" + function;
}

/// Seals or unseals every secret value of a state, in place.
template <typename Transform>
core::Status TransformSecrets(DesiredState* state, Transform transform) {
  for (auto& [app_name, app] : state->apps) {
    for (auto& [secret_name, pairs] : app.secrets) {
      for (auto& [key, value] : pairs) {
        auto changed = transform(value);
        if (!changed) {
          return core::Error{changed.error().code,
                             "secret " + app_name + "/" + secret_name + " (" + key +
                                 "): " + changed.error().message,
                             {}};
        }
        value = std::move(changed).value();
      }
    }
  }
  return core::Ok{};
}

// At most `limit` bytes of a file from byte `from` on; with `whole_characters`,
// without a UTF-8 sequence cut at the end (its bytes come with the next read).
std::string ReadCapped(const fs::path& path, std::uint64_t from, std::size_t limit,
                       bool whole_characters) {
  std::error_code error;
  std::uintmax_t size = fs::file_size(path, error);
  if (error || size <= from) return "";
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(from));
  std::string text(std::min<std::uintmax_t>(size - from, limit), '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (whole_characters) {
    // The last lead byte (11xxxxxx) and its continuation bytes (10xxxxxx) that follow.
    std::size_t lead = text.size();
    while (lead > 0 && text.size() - lead < 4 && (text[lead - 1] & 0xC0) == 0x80) --lead;
    if (lead > 0 && (text[lead - 1] & 0xC0) == 0xC0) {
      unsigned char first = static_cast<unsigned char>(text[lead - 1]);
      std::size_t length = first >= 0xF0 ? 4 : first >= 0xE0 ? 3 : 2;
      if (text.size() - (lead - 1) < length) text.resize(lead - 1);
    }
  }
  return text;
}

}  // namespace

core::Result<std::unique_ptr<Agent>> Agent::Open(const AgentOptions& options) {
  if (auto checked = CheckHostRequirements(options.runtime); !checked.ok()) return checked.error();
  std::error_code error;
  for (const fs::path& dir :
       {options.data_dir, LayersDir(options.data_dir), ContainersDir(options.data_dir),
        CallsDir(options.data_dir), RuncStateDir(options.data_dir)}) {
    fs::create_directories(dir, error);
    if (error)
      return core::Error{
          core::ErrorCode::kIo, "cannot create " + dir.string() + ": " + error.message(), {}};
  }
  // Only root reads the agent's data: config.json files hold containers' env.
  fs::permissions(options.data_dir, fs::perms::owner_all, error);
  if (error) {
    return core::Error{core::ErrorCode::kIo,
                       "cannot make " + options.data_dir.string() + " private: " + error.message(),
                       {}};
  }
  auto host = DetectHost(options.data_dir);
  if (!host) return host.error();
  HostLimits limits = DetectHostLimits(ContainersDir(options.data_dir));
  for (const std::string& line : limits.degraded) spdlog::warn("agent: degraded: {}", line);
  auto gpus = DiscoverGpus(options.gpus);
  if (!gpus) return gpus.error();
  auto secrets = SecretBox::OpenOrCreate(SecretKeyFile(options.data_dir));
  if (!secrets) return secrets.error();
  auto database = AgentDatabase::Open(RecordsFile(options.data_dir));
  if (!database) return database.error();
  auto rates = core::RateCard::Load(RatesFile(options.data_dir));
  if (!rates) return rates.error();
  auto ledger = UsageLedger::Open(*database, std::move(rates).value(), host->host_id,
                                  kUsageCheckpointInterval);
  if (!ledger) return ledger.error();
  auto store = builder::ContentStore::Open(options.store);
  if (!store) return store.error();
  RuncRuntime probe(options.runtime, RuncStateDir(options.data_dir));
  auto version = probe.Version();
  if (!version) return version.error();

  std::unique_ptr<Agent> agent(
      new Agent(options, std::move(host).value(), std::move(limits), std::move(gpus).value(),
                std::move(secrets).value(), std::make_unique<AgentRecords>(*database),
                std::move(ledger).value(), std::move(store).value(), *version));
  if (auto recovered = agent->Recover(); !recovered.ok()) return recovered.error();
  agent->pruner_ = std::thread([agent = agent.get()] { agent->PruneCallsPeriodically(); });
  agent->scheduler_->Start();
  agent->budget_->Start();
  return agent;
}

Agent::Agent(AgentOptions options, HostInfo host, HostLimits limits, std::vector<Gpu> gpus,
             SecretBox secrets, std::unique_ptr<AgentRecords> records,
             std::unique_ptr<UsageLedger> ledger, builder::ContentStore store,
             std::string runtime_version)
    : options_(std::move(options)),
      host_(std::move(host)),
      limits_(std::move(limits)),
      gpus_(std::move(gpus)),
      gpu_pool_(gpus_),
      secrets_(std::move(secrets)),
      records_(std::move(records)),
      ledger_(std::move(ledger)),
      runtime_(options_.runtime, RuncStateDir(options_.data_dir)),
      runtime_version_(std::move(runtime_version)),
      layers_(std::move(store), LayersDir(options_.data_dir)),
      logs_(LogsDir(options_.data_dir)) {
  container_parts_ = ContainerParts{&layers_,
                                    &runtime_,
                                    records_.get(),
                                    &gpu_pool_,
                                    &logs_,
                                    ledger_.get(),
                                    options_.gpus == "auto",
                                    limits_,
                                    ContainersDir(options_.data_dir),
                                    CallsDir(options_.data_dir)};
  container_parts_.metrics = &metrics_;
  calls_ = std::make_unique<CallRunner>(container_parts_);
  Scheduler::Hooks hooks;
  hooks.now = [] {
    return std::chrono::time_point_cast<std::chrono::milliseconds>(
        std::chrono::system_clock::now());
  };
  hooks.run = [this](const ScheduledJob& job, const std::string& due,
                     ScheduleFire* fire) -> core::Status {
    CallRequest request;
    request.env["GANTRY_SCHEDULED_AT"] = due;
    auto call = calls_->Submit(job.app, job.function, request, fire);
    if (!call) return call.error();
    calls_->RunInBackground(std::move(call).value(), job.prepared, request);
    return core::Ok{};
  };
  hooks.unfinished = [this](const std::string& call_id) {
    auto call = records_->FindCall(call_id);
    return call && *call && !IsFinished((*call)->state);
  };
  hooks.cancel = [this](const std::string& call_id) {
    calls_->Cancel(call_id, "replaced by a newer run of its schedule");
  };
  hooks.refusal = [this](const std::string& app) -> std::optional<std::string> {
    auto refusal = budget_->Refusal(app);
    if (!refusal) return std::nullopt;
    return refusal->message;
  };
  scheduler_ = std::make_unique<Scheduler>(records_.get(), std::move(hooks));
  BudgetGuard::Hooks budget_hooks;
  budget_hooks.stop = [this](const std::string& app, const core::Error& why) { StopApp(app, why); };
  budget_hooks.resume = [this](const std::string&) {
    {
      std::lock_guard lock(mutex_);
      SyncWebFunctions();
    }
    DropRetired();
  };
  budget_ = std::make_unique<BudgetGuard>(ledger_.get(), std::move(budget_hooks), kBudgetInterval,
                                          core::NowMs);
  ledger_->OnStop([guard = budget_.get()] { guard->Wake(); });
}

Agent::~Agent() {
  Shutdown();
  scheduler_.reset();
  calls_.reset();
}

void Agent::Shutdown() {
  {
    std::lock_guard lock(prune_mutex_);
    prune_stop_ = true;
  }
  prune_wake_.notify_all();
  if (pruner_.joinable()) pruner_.join();
  budget_->Stop();
  std::map<std::string, std::shared_ptr<WebFunction>> web;
  std::vector<std::shared_ptr<WebFunction>> retiring;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    web.swap(web_);
    retiring.swap(retiring_);
    retiring.insert(retiring.end(), std::make_move_iterator(retired_.begin()),
                    std::make_move_iterator(retired_.end()));
    retired_.clear();
  }
  scheduler_->Stop();
  // All are told first, so that their containers stop together.
  for (auto& [key, function] : web) function->Stop();
  for (auto& function : retiring) function->Stop();
  calls_->Shutdown();
  gpu_pool_.Stop();
  web.clear();  // waits for their containers
  retiring.clear();
}

void Agent::PruneCalls() {
  const std::int64_t before_ms = core::NowMs() - options_.call_retention.count();
  std::size_t pruned = 0;
  // In batches, each its own transaction: the database's other users (call
  // records, the usage ledger) wait for one batch at the most.
  while (true) {
    {
      std::lock_guard lock(prune_mutex_);
      if (prune_stop_) break;
    }
    auto expired = records_->CallsEndedBefore(before_ms, kCallPruneBatch);
    if (!expired) {
      spdlog::warn("agent: cannot prune old calls: {}", expired.error().message);
      break;
    }
    std::vector<std::string> removed;
    for (const std::string& id : *expired) {
      // Its output first: a prune cut short leaves records, which the next takes.
      std::error_code error;
      fs::remove_all(CallsDir(options_.data_dir) / id, error);
      if (error) {
        spdlog::warn("agent: cannot prune the output of {}: {}", id, error.message());
        continue;
      }
      removed.push_back(id);
    }
    if (auto deleted = records_->DeleteEndedCalls(removed); !deleted.ok()) {
      spdlog::warn("agent: cannot prune old calls: {}", deleted.error().message);
      break;
    }
    pruned += removed.size();
    // A batch with an output that could not go is not asked for again.
    if (expired->size() < static_cast<std::size_t>(kCallPruneBatch) ||
        removed.size() < expired->size()) {
      break;
    }
  }
  if (pruned > 0) {
    spdlog::info("agent: pruned {} calls that ended over {} ago", pruned,
                 core::FormatDuration(options_.call_retention));
  }
  RemoveFoldersWithoutCalls(before_ms);
}

void Agent::RemoveFoldersWithoutCalls(std::int64_t before_ms) {
  // Only folders untouched for the retention: a call being queued makes
  // its folder a moment before its record. A folder's time is when a file
  // was last made in it, not when its output last grew, so one of a call
  // still running can be as old: the record decides.
  const auto before = std::chrono::system_clock::time_point(std::chrono::milliseconds(before_ms));
  std::size_t removed = 0;
  std::error_code error;
  for (fs::directory_iterator entry(CallsDir(options_.data_dir), error), end;
       !error && entry != end; entry.increment(error)) {
    {
      std::lock_guard lock(prune_mutex_);
      if (prune_stop_) return;
    }
    const std::string id = entry->path().filename().string();
    std::error_code entry_error;
    auto written = entry->last_write_time(entry_error);
    if (entry_error || !id.starts_with("call-") ||
        std::chrono::file_clock::to_sys(written) >= before) {
      continue;
    }
    auto found = records_->FindCall(id);
    if (!found || found->has_value()) continue;
    if (fs::remove_all(entry->path(), entry_error); entry_error) {
      spdlog::warn("agent: cannot remove {}, a call folder without a call: {}",
                   entry->path().string(), entry_error.message());
      continue;
    }
    ++removed;
  }
  if (error) spdlog::warn("agent: cannot list the calls' folders: {}", error.message());
  if (removed > 0) spdlog::info("agent: removed {} call folders without a call", removed);
}

void Agent::PruneCallsPeriodically() {
  // At start, then every kCallPruneInterval; off the start's path, as a
  // long-unpruned agent may have many calls to let go.
  PruneCalls();
  std::unique_lock lock(prune_mutex_);
  while (!prune_wake_.wait_for(lock, kCallPruneInterval, [this] { return prune_stop_; })) {
    lock.unlock();
    PruneCalls();
    lock.lock();
  }
}

core::Status Agent::Recover() {
  // The containers of the previous agent died with it (or are killed
  // below): their usage ends at its last checkpoint.
  auto closed = ledger_->CloseLeftOpen();
  if (!closed) return closed.error();
  if (*closed > 0) {
    spdlog::info("agent: closed {} usage records left open, at their last checkpoint", *closed);
  }
  auto stored = records_->LoadDesired();
  if (!stored) return stored.error();
  if (*stored) {
    auto desired = ParseDesiredState(std::string_view((*stored)->document));
    if (!desired)
      return core::Error{
          desired.error().code, "the stored desired state: " + desired.error().message, {}};
    auto unsealed =
        TransformSecrets(&*desired, [&](const std::string& value) { return secrets_.Open(value); });
    if (!unsealed.ok()) return unsealed.error();
    if (options_.forget_apps) desired->apps.clear();
    std::lock_guard lock(mutex_);
    desired_ = std::move(desired).value();
    RefreshProblems();
    spdlog::info("agent: reloaded desired state generation {}", desired_.generation);
  }
  // Images a function lacks are pulled (and unpacked) before queued calls run again below.
  FetchImages();

  // Containers a killed agent left behind: their callers are gone, so they
  // are stopped and their roots removed. Every container has a folder in
  // DATA_DIR/containers named by its runc id, made before runc is started
  // and removed after runc is done with it, and runc's state root is the
  // agent's alone: between the two, nothing can be missed.
  std::set<std::string> left;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(ContainersDir(options_.data_dir), error)) {
    if (entry.path().filename().string().front() != '.') left.insert(entry.path().filename());
  }
  auto known_to_runc = runtime_.List();
  if (!known_to_runc) return known_to_runc.error();
  for (const ContainerState& container : *known_to_runc) left.insert(container.id);
  for (const std::string& id : left) {
    (void)runtime_.Kill(id, SIGKILL);
    if (auto deleted = runtime_.Delete(id); !deleted.ok()) {
      spdlog::warn("agent: cannot delete container {} left by an earlier run: {}", id,
                   deleted.error().message);
    }
    fs::path dir = ContainersDir(options_.data_dir) / id;
    if (fs::exists(fs::symlink_status(dir, error))) {
      // A root that will not go (a mount still busy) must not keep the agent from starting.
      if (auto removed = ContainerRoot::Adopt(dir).Remove(); !removed.ok()) {
        spdlog::warn("agent: cannot remove the root of container {}: {}", id,
                     removed.error().message);
      }
    }
    spdlog::info("agent: cleaned container {} left by an earlier run", id);
  }

  auto unfinished = records_->UnfinishedCalls();
  if (!unfinished) return unfinished.error();
  for (CallRecord call : *unfinished) {
    auto request = ParseCallRequest(json::parse(call.request, nullptr, false));
    const FunctionState* function = desired_.FindFunction(call.app, call.function);
    auto job = function && request ? PrepareFunction(call.app, *function)
                                   : core::Result<PreparedFunction>(core::Error{});
    if (call.state == CallState::kQueued && job) {
      spdlog::info("agent: running call {} queued before a restart", call.id);
      calls_->RunInBackground(std::move(call), std::move(job).value(), std::move(request).value());
      continue;
    }
    call.state = CallState::kInterrupted;
    call.error = "the agent stopped while the call was running";
    call.finished_ms = core::NowMs();
    if (auto saved = records_->SaveCall(call); !saved.ok()) return saved.error();
  }
  return core::Ok{};
}

std::vector<std::string> Agent::CheckFunction(const std::string& app, const FunctionState& function,
                                              bool* image_pending) const {
  std::vector<std::string> problems;
  bool pending = false;
  if (function.gpu && gpu_pool_.CountOf(function.gpu->type) < function.gpu->count) {
    std::map<std::string, int> offered;
    for (const Gpu& gpu : gpus_) ++offered[gpu.type];
    std::string have;
    for (const auto& [type, count] : offered) {
      have += (have.empty() ? "" : ", ") + std::to_string(count) + " x " + type;
    }
    problems.push_back("unschedulable: needs " + std::to_string(function.gpu->count) + " x " +
                       function.gpu->type + " GPU, this host has " +
                       (have.empty() ? "no GPU" : have));
  }
  if (!layers_.store().HasBlob(function.image.digest)) {
    std::string why = "image " + function.image.digest + " is not in the content store " +
                      layers_.store().root().string();
    auto failure = pull_failures_.find(function.image.digest);
    if (function.image.reference.empty()) {
      problems.push_back(why);
    } else if (failure != pull_failures_.end()) {
      problems.push_back(why + " and cannot be pulled: " + failure->second);
    } else {
      problems.push_back(why + "; it is being pulled from " + function.image.reference);
      pending = true;
    }
  } else if (!unpacked_.count(function.image.digest)) {
    auto failure = unpack_failures_.find(function.image.digest);
    pending = failure == unpack_failures_.end();
    problems.push_back(pending ? "image " + function.image.digest + " is being unpacked"
                               : "image " + function.image.digest +
                                     " cannot be unpacked: " + failure->second);
  }
  (void)app;
  *image_pending = pending && problems.size() == 1;
  return problems;
}

core::Status Agent::PullImage(const ImageRef& image) const {
  auto reference = core::ParseImageReference(image.reference);
  if (!reference) return reference.error();
  reference->digest = image.digest;  // exactly the image the planner chose
  auto store = builder::ContentStore::Open(options_.store);
  if (!store) return store.error();
  builder::RegistryOptions registry;
  registry.insecure = builder::IsInsecureRegistry(reference->domain);
  builder::RegistryClient client(reference->domain, registry);
  spdlog::info("agent: pulling {}", reference->ToString());
  auto pulled = client.Pull(*reference, builder::HostPlatform(), *store, reference->ToString());
  if (!pulled) return pulled.error();
  if (pulled->manifest.digest != image.digest) {
    return core::Error{core::ErrorCode::kConflict,
                       image.reference + " resolved to " + pulled->manifest.digest +
                           ", not the desired " + image.digest,
                       {}};
  }
  spdlog::info("agent: pulled {} ({} blobs, {} bytes)", reference->ToString(),
               pulled->blobs_downloaded, pulled->bytes_downloaded);
  return core::Ok{};
}

core::Result<PreparedFunction> Agent::PrepareFunction(const std::string& app,
                                                      const FunctionState& function) const {
  PreparedFunction job;
  job.app = app;
  job.function = function;
  const AppState& app_state = desired_.apps.at(app);
  for (const std::string& secret : function.secrets) {
    for (const auto& [key, value] : app_state.secrets.at(secret))
      job.secret_env.push_back(key + "=" + value);
  }
  for (const auto& [mount, volume] : function.volumes) {
    job.volume_dirs[mount] = VolumeDir(options_.data_dir, app, volume);
  }
  return job;
}

core::Result<std::string> Agent::SealedDocument(const DesiredState& desired) const {
  DesiredState sealed = desired;
  auto status =
      TransformSecrets(&sealed, [&](const std::string& value) { return secrets_.Seal(value); });
  if (!status.ok()) return status.error();
  return ToJson(sealed, /*redact_secrets=*/false).dump();
}

core::Result<bool> Agent::Apply(const DesiredState& desired) {
  core::Result<bool> applied = false;
  {
    std::lock_guard lock(mutex_);
    applied = ApplyLocked(desired);
  }
  if (applied) FetchImages();
  DropRetired();
  return applied;
}

core::Result<bool> Agent::ApplyApp(std::int64_t generation, const AppState& app) {
  core::Result<bool> applied = false;
  {
    std::lock_guard lock(mutex_);
    DesiredState desired = desired_;
    desired.generation = generation;
    desired.apps[app.name] = app;
    applied = ApplyLocked(desired);
  }
  if (applied) FetchImages();
  DropRetired();
  return applied;
}

core::Result<bool> Agent::RemoveApp(std::int64_t generation, const std::string& app) {
  core::Result<bool> applied = false;
  {
    std::lock_guard lock(mutex_);
    if (!desired_.apps.count(app)) {
      return core::Error{core::ErrorCode::kNotFound, "no app " + app + " in the desired state", {}};
    }
    DesiredState desired = desired_;
    desired.generation = generation;
    desired.apps.erase(app);
    applied = ApplyLocked(desired);
  }
  if (applied) FetchImages();
  DropRetired();
  return applied;
}

void Agent::FetchImages() {
  std::lock_guard fetching(fetch_mutex_);
  std::map<std::string, ImageRef> missing;  // digest -> where to pull it from
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    for (const auto& [app_name, app] : desired_.apps) {
      for (const auto& [name, function] : app.functions) {
        if (!function.image.reference.empty() && !layers_.store().HasBlob(function.image.digest))
          missing.emplace(function.image.digest, function.image);
      }
    }
    if (missing.empty()) pull_failures_.clear();  // what failed before is no longer wanted
  }
  if (!missing.empty()) {
    // Pulls take as long as the registry needs: the API, the router and the
    // calls go on meanwhile, and the functions waiting show why in the status.
    std::map<std::string, std::string> failures;
    for (const auto& [digest, image] : missing) {
      if (auto pulled = PullImage(image); !pulled.ok()) failures[digest] = pulled.error().message;
    }
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    pull_failures_ = std::move(failures);
    RefreshProblems();
  }
  UnpackImages();
}

void Agent::UnpackImages() {
  std::set<std::string> wanted;  // image digests in the store, not yet unpacked
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    for (const auto& [app_name, app] : desired_.apps) {
      for (const auto& [name, function] : app.functions) {
        if (!unpacked_.count(function.image.digest) &&
            layers_.store().HasBlob(function.image.digest))
          wanted.insert(function.image.digest);
      }
    }
  }
  if (wanted.empty()) return;
  // Unpacking a large image takes a while: the API, the router and the
  // calls go on meanwhile, and the functions waiting show why in the status.
  std::set<std::string> unpacked;
  std::map<std::string, std::string> failures;
  for (const std::string& digest : wanted) {
    if (auto prepared = layers_.Prepare(digest); prepared) {
      unpacked.insert(digest);
    } else {
      failures[digest] = prepared.error().message;
    }
  }
  std::lock_guard lock(mutex_);
  if (stopping_) return;
  unpacked_.merge(unpacked);
  unpack_failures_ = std::move(failures);
  RefreshProblems();
}

void Agent::DropRetired() {
  std::vector<std::shared_ptr<WebFunction>> retired;
  {
    std::lock_guard lock(mutex_);
    retired.swap(retired_);
  }
  // Destroyed here, without the lock: each joins its scaling thread and
  // waits for its containers.
  retired.clear();
}

core::Result<bool> Agent::ApplyLocked(const DesiredState& desired) {
  if (desired.generation < desired_.generation) {
    return core::Error{core::ErrorCode::kConflict,
                       "generation " + std::to_string(desired.generation) +
                           " is stale: it is older than the applied generation " +
                           std::to_string(desired_.generation),
                       {}};
  }
  if (desired.generation == desired_.generation) {
    if (ToJson(desired, false) == ToJson(desired_, false)) {
      // Nothing to change, but what kept a function from running (an image
      // not yet in the store) may have gone: pushing again re-checks.
      RefreshProblems();
      return false;
    }
    return core::Error{core::ErrorCode::kConflict,
                       "generation " + std::to_string(desired.generation) +
                           " is stale: the applied generation " +
                           std::to_string(desired_.generation) + " has a different document",
                       {}};
  }
  // Everything that can fail for the whole state happens before it is
  // recorded; what is made after (volume folders, layers) is only ever added.
  auto document = SealedDocument(desired);
  if (!document) return document.error();
  for (const auto& [app_name, app] : desired.apps) {
    for (const std::string& volume : app.volumes) {
      std::error_code error;
      fs::create_directories(VolumeDir(options_.data_dir, app_name, volume), error);
      if (error) {
        return core::Error{
            core::ErrorCode::kIo,
            "cannot create volume " + app_name + "/" + volume + ": " + error.message(),
            {}};
      }
    }
  }
  if (auto saved = records_->SaveDesired({desired.generation, *document}); !saved.ok())
    return saved.error();
  desired_ = desired;
  RefreshProblems();
  spdlog::info("agent: applied generation {}", desired_.generation);
  return true;
}

void Agent::RefreshProblems() {
  // First, so that the web functions below start or stay stopped as their
  // app's budget says.
  std::map<std::string, BudgetState> budgets;
  for (const auto& [app_name, app] : desired_.apps)
    if (app.budget) budgets.emplace(app_name, *app.budget);
  budget_->Set(std::move(budgets));
  problems_.clear();
  image_pending_.clear();
  for (const auto& [app_name, app] : desired_.apps) {
    for (const auto& [name, function] : app.functions) {
      bool image_pending = false;
      auto problems = CheckFunction(app_name, function, &image_pending);
      if (!problems.empty()) {
        for (const std::string& problem : problems)
          spdlog::warn("agent: {}/{}: {}", app_name, name, problem);
        problems_[FunctionKey(app_name, name)] = problems;
        if (image_pending) image_pending_.insert(FunctionKey(app_name, name));
      }
    }
  }
  SyncWebFunctions();
  SyncSchedules();
}

void Agent::SyncSchedules() {
  std::vector<ScheduledJob> jobs;
  for (const auto& [app_name, app] : desired_.apps) {
    for (const auto& [name, function] : app.functions) {
      if (!function.schedule) continue;
      const std::string key = FunctionKey(app_name, name);
      // Its image being unpacked (after a restart) or pulled: held, so that
      // it catches up once ready rather than start afresh. Another problem
      // drops it, as a schedule removed.
      if (image_pending_.count(key)) {
        jobs.push_back({app_name, name, *function.schedule, {}, /*held=*/true});
        continue;
      }
      if (problems_.count(key)) continue;
      auto prepared = PrepareFunction(app_name, function);
      if (!prepared) continue;
      jobs.push_back({app_name, name, *function.schedule, std::move(prepared).value()});
    }
  }
  scheduler_->Set(std::move(jobs));
}

void Agent::SyncWebFunctions() {
  if (stopping_) return;
  // Those that have drained are destroyed by DropRetired, after the lock.
  for (auto function = retiring_.begin(); function != retiring_.end();) {
    if (!(*function)->Retired()) {
      ++function;
      continue;
    }
    retired_.push_back(std::move(*function));
    function = retiring_.erase(function);
  }
  std::map<std::string, std::shared_ptr<WebFunction>> kept;
  for (const auto& [app_name, app] : desired_.apps) {
    for (const auto& [name, function] : app.functions) {
      std::string key = FunctionKey(app_name, name);
      if (!function.web || budget_->Refusal(app_name)) continue;
      auto running = web_.find(key);
      if (problems_.count(key)) {
        // A new image on its way: what served the function serves on until
        // it is ready (the next RefreshProblems replaces it then).
        if (image_pending_.count(key) && running != web_.end()) {
          kept[key] = running->second;
          web_.erase(running);
        }
        continue;
      }
      auto prepared = PrepareFunction(app_name, function);
      if (!prepared) continue;
      if (running != web_.end() && running->second->function() == *prepared) {
        kept[key] = running->second;
        web_.erase(running);
        continue;
      }
      spdlog::info("agent: serving web function {}", key);
      kept[key] = WebFunction::Start(std::move(prepared).value(), container_parts_);
    }
  }
  // What is left was replaced or removed: it serves what it holds, then drains.
  for (auto& [key, function] : web_) {
    spdlog::info("agent: retiring the previous serving of {}", key);
    function->Retire();
    // A budget's stop does not wait for the requests in flight: containers cost.
    if (budget_->Refusal(function->function().app)) function->Stop();
    retiring_.push_back(std::move(function));
  }
  web_ = std::move(kept);
}

core::Result<WebTarget> Agent::FindWebFunction(const std::string& app,
                                               const std::string& function) const {
  std::lock_guard lock(mutex_);
  const FunctionState* found = desired_.FindFunction(app, function);
  if (!found || !found->web) {
    return core::Error{core::ErrorCode::kNotFound,
                       "no web function " + app + "/" + function + " on this host",
                       {}};
  }
  std::string key = FunctionKey(app, function);
  WebTarget target{*found->web, desired_.apps.at(app).web_key_sha256, nullptr, ""};
  // A serving kept while its function's new image is on its way goes first.
  if (auto serving = web_.find(key); serving != web_.end()) {
    target.function = serving->second;
  } else if (auto problems = problems_.find(key); problems != problems_.end()) {
    target.unavailable = key + " cannot run here: " + problems->second.front();
  } else {
    target.unavailable = key + " is not being served";
  }
  return target;
}

json Agent::Node() const {
  json gpus = json::array();
  for (const Gpu& gpu : gpus_) {
    gpus.push_back({{"index", gpu.index},
                    {"type", gpu.type},
                    {"name", gpu.name},
                    {"memory_bytes", gpu.memory_bytes},
                    {"uuid", gpu.uuid}});
  }
  return {{"host_id", host_.host_id},
          {"hostname", host_.hostname},
          {"cpus", host_.cpus},
          {"memory_bytes", host_.memory_bytes},
          {"kernel", host_.kernel},
          {"gpus", gpus},
          {"runtime", {{"binary", options_.runtime.string()}, {"version", runtime_version_}}},
          {"cgroups", CgroupsName(limits_.cgroups)},
          {"overlayfs", limits_.overlayfs},
          {"degraded", limits_.degraded},
          {"version", options_.version}};
}

json Agent::Status() const {
  // The containers running now are the ledger's open records (read before
  // mutex_ is taken): jobs' and web containers alike, with their GPUs.
  std::map<std::string, std::vector<UsageRecord>> running_by_function;
  if (auto running = ledger_->Running(); running) {
    for (UsageRecord& record : *running)
      running_by_function[FunctionKey(record.app, record.function)].push_back(std::move(record));
  } else {
    spdlog::warn("agent: status: {}", running.error().message);
  }
  std::lock_guard lock(mutex_);
  json apps = json::object();
  for (const auto& [app_name, app] : desired_.apps) {
    json functions = json::object();
    for (const auto& [name, function] : app.functions) {
      auto [running, queued] = calls_->Load(app_name, name);
      auto problems = problems_.find(FunctionKey(app_name, name));
      json status = {
          {"desired_containers", function.web ? 0 : function.min_containers},
          {"running_containers", running},
          {"queued_calls", queued},
          {"schedulable", problems == problems_.end()},
          {"errors", problems == problems_.end() ? json::array() : json(problems->second)}};
      if (function.schedule) status["schedule"] = scheduler_->Status(app_name, name);
      std::map<std::string, std::string> web_states;
      if (auto serving = web_.find(FunctionKey(app_name, name)); serving != web_.end()) {
        json web = serving->second->Status();
        status["running_containers"] = web["containers"]["ready"];
        for (auto& [key, value] : web.items()) status[key] = value;
        web_states = serving->second->ContainerStates();
      }
      json list = json::array();
      for (const UsageRecord& record : running_by_function[FunctionKey(app_name, name)]) {
        // A web container the current serving does not hold is a replaced one, draining.
        auto state = web_states.find(record.container);
        json container = {{"id", record.container},
                          {"state", state != web_states.end() ? state->second
                                    : function.web            ? "draining"
                                                              : "running"},
                          {"started_ms", record.start_ms},
                          {"gpu_type", record.gpu_type},
                          {"gpu_count", record.gpu_count}};
        if (!record.call.empty()) container["call"] = record.call;
        list.push_back(std::move(container));
      }
      status["container_list"] = std::move(list);
      functions[name] = std::move(status);
    }
    apps[app_name] = {{"functions", functions}};
    if (json budget = budget_->Status(app_name); !budget.is_null())
      apps[app_name]["budget"] = std::move(budget);
  }
  return {{"generation", desired_.generation}, {"apps", apps}};
}

std::string Agent::Metrics() {
  std::lock_guard scraping(metrics_.scrape_mutex);
  std::map<MetricLabels, double> containers, queued, gpus, seconds, cost;
  const json status = Status();
  std::set<std::string> web_functions;  // served or not
  {
    std::lock_guard lock(mutex_);
    for (const auto& [app, state] : desired_.apps)
      for (const auto& [name, function] : state.functions)
        if (function.web) web_functions.insert(FunctionKey(app, name));
  }
  for (const auto& [app, app_status] : status.at("apps").items()) {
    for (const auto& [name, function] : app_status.at("functions").items()) {
      auto labels = [&](const char* key, const std::string& value) {
        return MetricLabels{{"app", app}, {"function", name}, {key, value}};
      };
      if (web_functions.contains(FunctionKey(app, name))) {
        const json counts = function.value("containers", json::object());
        for (const char* state : {"starting", "ready", "draining"})
          containers[labels("state", state)] = counts.value(state, 0);
        queued[labels("queue", "requests")] = function.value("queued_requests", 0);
      } else {
        containers[labels("state", "running")] = function.value("running_containers", 0);
        queued[labels("queue", "calls")] = function.value("queued_calls", 0);
      }
    }
  }
  for (const auto& [type, counts] : gpu_pool_.HeldAndFree()) {
    gpus[{{"type", type}, {"state", "allocated"}}] = counts.first;
    gpus[{{"type", type}, {"state", "free"}}] = counts.second;
  }
  metrics_.containers.Replace(std::move(containers));
  metrics_.queued.Replace(std::move(queued));
  metrics_.gpus.Replace(std::move(gpus));
  if (auto totals = ledger_->TotalsByFunction(); totals) {
    for (const UsageLedger::FunctionTotal& total : *totals) {
      MetricLabels labels = {{"app", total.app}, {"function", total.function}};
      seconds[labels] = total.seconds;
      cost[labels] = total.cost_usd;
    }
    metrics_.metered_seconds.Replace(std::move(seconds));
    metrics_.metered_cost.Replace(std::move(cost));
  } else {
    spdlog::warn("agent: metrics: {}", totals.error().message);  // the last totals stay
  }
  return metrics_.registry.Render();
}

json Agent::Desired() const {
  std::lock_guard lock(mutex_);
  return ToJson(desired_, /*redact_secrets=*/true);
}

core::Result<CallRecord> Agent::Call(const std::string& app, const std::string& function,
                                     const CallRequest& request, bool wait) {
  core::Result<PreparedFunction> job = core::Error{};
  {
    std::lock_guard lock(mutex_);
    const FunctionState* found = desired_.FindFunction(app, function);
    if (!found) {
      return core::Error{
          core::ErrorCode::kNotFound, "no function " + app + "/" + function + " on this host", {}};
    }
    if (found->web) {
      return core::Error{core::ErrorCode::kConflict,
                         app + "/" + function +
                             " is a web function: send it HTTP requests at /apps/" + app + "/" +
                             function + "/",
                         {}};
    }
    if (auto refusal = budget_->Refusal(app)) return *refusal;
    auto problems = problems_.find(FunctionKey(app, function));
    if (problems != problems_.end()) {
      return core::Error{core::ErrorCode::kConflict,
                         app + "/" + function + " cannot run here: " + problems->second.front(),
                         {}};
    }
    job = PrepareFunction(app, *found);
  }
  if (!job) return job.error();
  auto call = calls_->Submit(app, function, request);
  if (!call) return call.error();
  if (wait) return calls_->Run(std::move(call).value(), *job, request);
  calls_->RunInBackground(*call, std::move(job).value(), request);
  return call;
}

void Agent::StopApp(const std::string& app, const core::Error& why) {
  if (!budget_->Refusal(app)) return;  // raised since the guard decided
  {
    std::lock_guard lock(mutex_);
    SyncWebFunctions();
  }
  DropRetired();
  auto unfinished = records_->UnfinishedCalls();
  if (!unfinished) {
    spdlog::warn("agent: cannot stop the calls of {}: {}", app, unfinished.error().message);
    return;
  }
  for (const CallRecord& call : *unfinished)
    if (call.app == app) calls_->Cancel(call.id, why.message);
}

core::Status Agent::DeleteVolume(const std::string& app, const std::string& volume) {
  std::lock_guard lock(mutex_);
  auto found_app = desired_.apps.find(app);
  if (found_app != desired_.apps.end()) {
    const auto& volumes = found_app->second.volumes;
    if (std::find(volumes.begin(), volumes.end(), volume) != volumes.end()) {
      return core::Error{
          core::ErrorCode::kConflict,
          "volume " + app + "/" + volume + " is in the desired state: remove it from there first",
          {}};
    }
  }
  fs::path dir = VolumeDir(options_.data_dir, app, volume);
  std::error_code error;
  if (!fs::is_directory(fs::symlink_status(dir, error))) {
    return core::Error{core::ErrorCode::kNotFound, "no volume " + app + "/" + volume, {}};
  }
  // A call or web container of an older generation may still mount it.
  auto in_use = [&](const std::string& user) {
    return core::Error{core::ErrorCode::kConflict,
                       "volume " + app + "/" + volume + " is mounted by " + user +
                           ", of an earlier generation: delete it once that has ended",
                       {}};
  };
  if (auto call = calls_->CallUsing(dir)) return in_use("call " + *call);
  // Web functions: those draining, and one serving on while the image of
  // the generation that dropped the volume is on its way.
  std::vector<std::shared_ptr<WebFunction>> servings = retiring_;
  for (const auto& [key, function] : web_) servings.push_back(function);
  for (const auto& function : servings) {
    for (const auto& [mount, volume_dir] : function->function().volume_dirs) {
      if (volume_dir == dir && !function->Retired())
        return in_use("the containers of web function " + function->function().app + "/" +
                      function->function().function.name);
    }
  }
  fs::remove_all(dir, error);
  if (error)
    return core::Error{core::ErrorCode::kIo,
                       "cannot delete volume " + app + "/" + volume + ": " + error.message(),
                       {}};
  spdlog::info("agent: deleted volume {}/{}", app, volume);
  return core::Ok{};
}

core::Result<std::optional<CallRecord>> Agent::FindCall(const std::string& id) {
  return records_->FindCall(id);
}

core::Result<std::vector<CallRecord>> Agent::RecentCalls(const std::string& app, int limit) {
  return records_->RecentCalls(app, limit);
}

CallOutput Agent::ReadCallOutput(const std::string& id, std::uint64_t stdout_from,
                                 std::uint64_t stderr_from, bool whole_characters) const {
  constexpr std::size_t kLimit = 4 << 20;  // what one API response carries of each stream
  CallOutput output;
  output.stdout_text = ReadCapped(calls_->StdoutPath(id), stdout_from, kLimit, whole_characters);
  output.stderr_text = ReadCapped(calls_->StderrPath(id), stderr_from, kLimit, whole_characters);
  output.stdout_next = stdout_from + output.stdout_text.size();
  output.stderr_next = stderr_from + output.stderr_text.size();
  return output;
}

core::Result<json> Agent::Usage(std::int64_t since_ms, std::int64_t until_ms,
                                const std::string& app, std::int64_t step_ms) {
  auto records = ledger_->Query(since_ms, until_ms, app);
  if (!records) return records.error();
  std::int64_t now_ms = core::NowMs();
  json list = json::array();
  double seconds = 0, gpu_seconds = 0, cost = 0;
  for (const UsageRecord& record : *records) {
    UsageShare share = ShareInWindow(record, since_ms, until_ms, now_ms);
    json entry = {{"id", record.id},
                  {"app", record.app},
                  {"function", record.function},
                  {"container", record.container},
                  {"gpu_type", record.gpu_type},
                  {"gpu_count", record.gpu_count},
                  {"cpu", record.cpu},
                  {"memory_bytes", record.memory_bytes},
                  {"start_ms", record.start_ms},
                  {"checkpoint_ms", record.checkpoint_ms},
                  {"running", record.closed_by.empty()},
                  {"billable_seconds", record.billable_seconds},
                  {"usd_per_second", record.usd_per_second},
                  {"cost_usd", record.cost_usd},
                  {"window_seconds", share.seconds},
                  {"window_cost_usd", share.cost_usd}};
    if (!record.call.empty()) entry["call"] = record.call;
    if (!record.closed_by.empty()) {
      entry["end_ms"] = record.end_ms;
      entry["closed_by"] = record.closed_by;
    }
    list.push_back(std::move(entry));
    seconds += share.seconds;
    gpu_seconds += share.seconds * record.gpu_count;
    cost += share.cost_usd;
  }
  json totals = {{"records", list.size()},
                 {"seconds", seconds},
                 {"gpu_seconds", gpu_seconds},
                 {"cost_usd", cost}};
  json usage = {{"agent", host_.host_id}, {"since_ms", since_ms}, {"until_ms", until_ms},
                {"now_ms", now_ms},       {"records", list},      {"totals", totals}};
  if (step_ms > 0) {
    json series = json::array();
    std::int64_t start_ms = since_ms;
    for (const UsageShare& step : ShareBySteps(*records, since_ms, until_ms, step_ms, now_ms)) {
      series.push_back(
          {{"start_ms", start_ms}, {"seconds", step.seconds}, {"cost_usd", step.cost_usd}});
      start_ms += step_ms;
    }
    usage["step_ms"] = step_ms;
    usage["series"] = std::move(series);
  }
  return usage;
}

}  // namespace agents
