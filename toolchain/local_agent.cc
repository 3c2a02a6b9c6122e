#include "toolchain/local_agent.h"

#include <httplib.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "agents/api_token.h"
#include "agents/host_limits.h"
#include "core/atomic_file.h"
#include "core/gantry_home.h"
#include "core/text.h"
#include "planner/agent_client.h"
#include "planner/deploy_state.h"
#include "toolchain/app_apply.h"

namespace toolchain {
namespace {

namespace fs = std::filesystem;

constexpr char kAgentName[] = "local";
constexpr char kAddressFile[] = "address";

fs::path DataDir(const LocalAgent::Options& options) {
  return options.data_dir.empty() ? core::GantryHome() / "local" : options.data_dir;
}

}  // namespace

std::optional<planner::AgentEntry> LocalAgent::Running(const Options& options) {
  const fs::path data_dir = DataDir(options);
  // A lock nobody holds: whatever address is written there is stale.
  if (planner::StateLock::Acquire(data_dir / "agent", "probe", std::chrono::milliseconds(0)))
    return std::nullopt;
  auto url = core::ReadFile(data_dir / kAddressFile);
  if (!url) return std::nullopt;
  planner::AgentEntry entry{
      kAgentName, std::string(core::TrimSpaces(*url)), data_dir / "token", {}};
  auto client = planner::AgentClient::Open(entry);
  if (!client || !client->Status()) return std::nullopt;
  return entry;
}

core::Result<std::unique_ptr<LocalAgent>> LocalAgent::Start(const Options& options) {
  // Before anything is made: as a user who is not root, that would fail first.
  if (auto checked = agents::CheckHostRequirements("runc"); !checked.ok()) return checked.error();
  fs::path data_dir = DataDir(options);
  std::error_code error;
  fs::create_directories(data_dir, error);
  if (error) {
    return core::Error{
        core::ErrorCode::kIo, "cannot create " + data_dir.string() + ": " + error.message(), {}};
  }
  auto lock = planner::StateLock::Acquire(data_dir / "agent", "gantry up, run or map",
                                          std::chrono::milliseconds(0));
  if (!lock) {
    return core::Error{core::ErrorCode::kConflict,
                       "the local agent in " + data_dir.string() + " is in use (" +
                           lock.error().message +
                           "): stop that one, or give this one its own --data-dir",
                       {}};
  }
  std::unique_ptr<LocalAgent> local(new LocalAgent(data_dir, std::move(*lock)));

  agents::AgentOptions agent_options;
  agent_options.data_dir = data_dir;
  agent_options.store = options.store;
  agent_options.gpus = options.gpus;
  agent_options.version = GANTRY_VERSION;
  agent_options.forget_apps = true;  // what a killed gantry up or run left is not run again
  auto agent = agents::Agent::Open(agent_options);
  if (!agent) return agent.error();
  local->agent_ = std::move(*agent);
  // Nor is it remembered as deployed.
  fs::remove_all(data_dir / "state", error);
  if (error) {
    return core::Error{core::ErrorCode::kIo,
                       "cannot remove " + (data_dir / "state").string() + ": " + error.message(),
                       {}};
  }
  auto token = agents::LoadOrCreateToken(data_dir, std::nullopt);
  if (!token) return token.error();

  agents::ApiOptions api;
  api.host = "127.0.0.1";
  api.port = options.port;
  api.token = *token;
  if (options.dashboard) api.dashboard_port = 0;
  local->server_ = std::make_unique<agents::ApiServer>(*local->agent_, api);
  if (auto bound = local->server_->Bind(); !bound.ok()) {
    if (errno == EADDRINUSE) {
      return core::Error{core::ErrorCode::kConflict,
                         "port " + std::to_string(options.port) +
                             " on 127.0.0.1 is in use: stop what listens there, or pass --port N "
                             "(--port 0 takes any free port)",
                         {}};
    }
    return bound.error();
  }
  local->url_ = "http://127.0.0.1:" + std::to_string(local->server_->port());
  if (options.dashboard)
    local->dashboard_url_ =
        "http://127.0.0.1:" + std::to_string(local->server_->dashboard_port()) + "/ui";
  if (auto added = local->fleet_.Add({kAgentName, local->url_, data_dir / "token", {}});
      !added.ok()) {
    return added.error();
  }
  if (auto written = core::WriteFileAtomically(data_dir / kAddressFile, local->url_ + "\n");
      !written.ok()) {
    return written.error();
  }
  // Nothing fails from here on: Stop() may stop the server only once it serves.
  local->serving_ = std::thread([server = local->server_.get()] { (void)server->Serve(); });
  httplib::Client probe(local->url_);
  for (int i = 0; i < 500 && !probe.Get("/healthz"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return local;
}

LocalAgent::LocalAgent(fs::path data_dir, planner::StateLock lock)
    : data_dir_(std::move(data_dir)), lock_(std::move(lock)) {}

LocalAgent::~LocalAgent() {
  Stop();
}

fs::path LocalAgent::StatePath(const std::string& app) const {
  return data_dir_ / "state" / (app + ".json");
}

core::Status LocalAgent::RemoveApp(const std::string& app) {
  const nlohmann::json desired = agent_->Desired();
  auto removed = agent_->RemoveApp(desired["generation"].get<std::int64_t>() + 1, app);
  if (!removed && removed.error().code != core::ErrorCode::kNotFound) return removed.error();
  std::error_code error;
  fs::remove(StatePath(app), error);
  if (error) {
    return core::Error{core::ErrorCode::kIo,
                       "cannot remove " + StatePath(app).string() + ": " + error.message(),
                       {}};
  }
  return core::Ok{};
}

void LocalAgent::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (agent_) {
    const nlohmann::json desired = agent_->Desired();
    for (const auto& [app, document] : desired["apps"].items()) {
      if (auto removed = RemoveApp(app); !removed.ok()) {
        std::fprintf(stderr,
                     "gantry: app %s stays on the local agent in %s: %s (the next gantry up or "
                     "run removes it)\n",
                     app.c_str(), data_dir_.string().c_str(), removed.error().message.c_str());
      }
    }
    agent_->Shutdown();
  }
  if (server_) server_->Stop();
  if (serving_.joinable()) serving_.join();
  std::error_code error;
  fs::remove(data_dir_ / kAddressFile, error);
}

LocalAgent::Options LocalAgentFlags::Options(int port) const {
  LocalAgent::Options options;
  options.data_dir = data_dir;
  options.store = core::StoreOrDefault(store);
  options.gpus = gpus;
  options.port = port;
  return options;
}

std::vector<CLI::Option*> AddLocalAgentFlags(CLI::App* verb, LocalAgentFlags* flags) {
  std::vector<CLI::Option*> local_only = {
      verb->add_option("--gpus", flags->gpus,
                       "The local agent's GPUs: auto (CUDA driver), none, or fake:H100x8")
          ->capture_default_str(),
      verb->add_option("--store", flags->store,
                       "Content store to build images into (default: $GANTRY_HOME/store)"),
      verb->add_option("--data-dir", flags->data_dir,
                       "The local agent's folder (default: $GANTRY_HOME/local)")};
  verb->add_flag("-q,--quiet", flags->quiet, "No build progress");
  return local_only;
}

int ApplyLocally(const LocalAgent& local, const std::string& file, const spec::App& app,
                 const LocalAgentFlags& flags, std::FILE* out) {
  ApplyCommand apply;
  apply.plan.file = file;
  apply.plan.app = app;
  apply.plan.store = flags.store;
  apply.plan.quiet = flags.quiet;
  apply.plan.state = local.StatePath(app.name).string();
  apply.plan.fleet = local.fleet();
  apply.yes = true;
  apply.out = out;
  return PlanAndApply(apply, false);
}

}  // namespace toolchain
