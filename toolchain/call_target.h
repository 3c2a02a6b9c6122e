#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "core/result.h"
#include "planner/agent_client.h"
#include "planner/fleet.h"
#include "spec/app.h"
#include "toolchain/local_agent.h"

namespace toolchain {

/// The options `gantry run` and `gantry map` share: which job function of
/// which spec, and where to call it.
struct CallCommand {
  std::string file;
  std::string function;
  std::string agent;  // --agent: a registered agent that runs the app already
  LocalAgentFlags local;
};

/// Registers FILE FUNCTION and the options of CallCommand on `verb`.
void AddCallOptions(CLI::App* verb, CallCommand* command);

/// Where the calls go. With --agent, that registered agent; otherwise the
/// embedded local agent (on any free port), with the app planned and
/// applied on it (the plan on stderr) for as long as this object lives.
struct CallTarget {
  spec::App app;
  std::unique_ptr<LocalAgent> local;  // null with --agent
  planner::AgentEntry agent;

  /// A client of the agent (one per thread: clients are not thread-safe).
  core::Result<planner::AgentClient> Connect() const { return planner::AgentClient::Open(agent); }
};

/// Checks that FUNCTION is a job function of the spec (a web function is
/// called over HTTP), then prepares its agent. Call it after StopSignals is
/// made: the local agent starts threads.
core::Result<CallTarget, std::vector<core::Error>> PrepareCallTarget(const CallCommand& command);

}  // namespace toolchain
