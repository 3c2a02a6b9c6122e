#pragma once

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "agents/agent.h"
#include "agents/api_server.h"
#include "core/result.h"
#include "planner/deploy_state.h"
#include "planner/fleet.h"
#include "spec/app.h"

namespace toolchain {

/// The embedded agent of `gantry up` and `gantry run`: an agents::Agent and
/// its API on 127.0.0.1, in this process, so that a newcomer needs no agent
/// of their own. To the planner it is one agent named "local", planned and
/// applied like any registered one, with its own state files.
///
/// Its data is DATA_DIR (default GantryHome()/local), held by one process at
/// a time (DATA_DIR/agent.lock): a second one is refused. It starts empty:
/// the apps an earlier process left there (when it was killed) are dropped
/// before anything of them runs again (AgentOptions::forget_apps), and it
/// removes the apps it ran when it stops, so nothing runs on this host once
/// `gantry up` or `run` has ended. Volumes stay, as on every agent.
class LocalAgent {
 public:
  struct Options {
    std::filesystem::path data_dir;  // empty: GantryHome()/local
    std::filesystem::path store;     // the content store the images are built into
    std::string gpus = "auto";
    int port = 7070;         // on 127.0.0.1; 0: any free port
    bool dashboard = false;  // serve the dashboard on a free port of its own
  };

  /// Checks what the agent needs (root, the runtime), opens it and starts
  /// serving its API. Errors end with the fix, in one line. Its URL is kept
  /// in DATA_DIR/address while it serves.
  static core::Result<std::unique_ptr<LocalAgent>> Start(const Options& options);
  /// The local agent another process (a `gantry up`) serves on the data dir
  /// of `options`, as the fleet entry "local": nullopt when none does (no
  /// lock held, no DATA_DIR/address, or it does not answer).
  static std::optional<planner::AgentEntry> Running(const Options& options);
  /// Stop().
  ~LocalAgent();
  LocalAgent(const LocalAgent&) = delete;
  LocalAgent& operator=(const LocalAgent&) = delete;

  /// Removes the apps it ran (their containers stop, draining requests) and
  /// stops the agent and its API. Idempotent.
  void Stop();

  agents::Agent& agent() { return *agent_; }
  /// http://127.0.0.1:PORT
  const std::string& url() const { return url_; }
  /// http://127.0.0.1:PORT/ui, or "" without a dashboard.
  const std::string& dashboard_url() const { return dashboard_url_; }
  /// The fleet of one agent, "local", for the planner.
  const planner::Fleet& fleet() const { return fleet_; }
  /// Where the planner keeps the state of `app` on this agent: DATA_DIR/state/APP.json.
  std::filesystem::path StatePath(const std::string& app) const;

 private:
  LocalAgent(std::filesystem::path data_dir, planner::StateLock lock);
  /// Removes `app` from the desired state and forgets its state file.
  core::Status RemoveApp(const std::string& app);

  std::filesystem::path data_dir_;
  planner::StateLock lock_;
  std::unique_ptr<agents::Agent> agent_;
  std::unique_ptr<agents::ApiServer> server_;
  std::thread serving_;
  std::string url_;
  std::string dashboard_url_;
  planner::Fleet fleet_;
  bool stopped_ = false;
};

/// The command-line options of the verbs that start a local agent (up, run, map).
struct LocalAgentFlags {
  std::string data_dir;  // --data-dir; "" is GantryHome()/local
  std::string store;     // --store; "" is the default store
  std::string gpus = "auto";
  bool quiet = false;  // -q: no build progress

  /// LocalAgent's options for these flags, listening on `port`.
  LocalAgent::Options Options(int port) const;
};

/// Registers --gpus, --store, --data-dir and -q on `verb`; returns the
/// options that only a local agent uses (for CLI11's `excludes`).
std::vector<CLI::Option*> AddLocalAgentFlags(CLI::App* verb, LocalAgentFlags* flags);

/// Plans and applies `app`, loaded from the spec `file`, on `local` without
/// asking, the plan and report written to `out`, images built into the
/// store of `flags`; returns the exit code, its errors already reported.
int ApplyLocally(const LocalAgent& local, const std::string& file, const spec::App& app,
                 const LocalAgentFlags& flags, std::FILE* out);

}  // namespace toolchain
