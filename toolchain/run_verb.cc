// gantry run FILE FUNCTION [-- ARGS...]: one call of a job function, as
// `modal run` does: on the embedded local agent (the app applied there for
// the length of the call) or on a registered agent (--agent). The call's
// stdout and stderr become gantry's, and its exit code gantry's own.

#include <cstdio>
#include <string>
#include <vector>

#include "core/atomic_file.h"
#include "toolchain/call_target.h"
#include "toolchain/exit_code.h"
#include "toolchain/reporter.h"
#include "toolchain/stop_signals.h"
#include "toolchain/verbs.h"

namespace toolchain {
namespace {

using nlohmann::json;

struct RunCommand {
  CallCommand call;
  std::vector<std::string> args;
  std::string stdin_file;  // --stdin: a file, or "-" for gantry's own stdin
};

int Fail(const core::Error& error) {
  ReportErrors({error});
  return kExitUserError;
}

bool Finished(const json& call) {
  const std::string state = call.value("state", "");
  return state != "queued" && state != "running";
}

int RunCall(const RunCommand& command) {
  json request = {{"args", command.args}};
  if (!command.stdin_file.empty()) {
    // Read before Ctrl-C is taken over: it still ends a read of the terminal.
    std::string name = command.stdin_file == "-" ? "/dev/stdin" : command.stdin_file;
    auto input = core::ReadFile(name);
    if (!input) return Fail(input.error());
    try {
      (void)json(*input).dump();
    } catch (const json::type_error&) {
      return Fail({core::ErrorCode::kInvalidArgument,
                   "--stdin: " + command.stdin_file +
                       " is not UTF-8 text, and a call's stdin is text (base64 it first)",
                   {}});
    }
    request["stdin"] = std::move(*input);
  }
  StopSignals signals;
  auto target = PrepareCallTarget(command.call);
  if (!target) {
    ReportErrors(target.error());
    return kExitUserError;
  }
  if (auto signal = signals.WaitFor(std::chrono::milliseconds(0))) return kExitSignalled + *signal;
  auto client = target->Connect();
  if (!client) return Fail(client.error());
  auto call = client->Call(target->app.name, command.call.function, request, false);
  if (!call) return Fail(call.error());
  const std::string id = call->value("id", "");
  std::fprintf(stderr, "%s: call %s of %s/%s\n", target->agent.name.c_str(), id.c_str(),
               target->app.name.c_str(), command.call.function.c_str());

  // The call's output as it comes, until it has ended and all of it is out.
  std::uint64_t stdout_next = 0, stderr_next = 0;
  int attempts_seen = 0;
  for (bool ended = false; !ended;) {
    ended = Finished(*call);
    call = client->FollowCall(id, stdout_next, stderr_next);
    if (!call) return Fail(call.error());
    if (int attempts = call->value("attempts", 0); attempts != attempts_seen) {
      // A retry writes its output afresh: follow it from its start.
      bool retry = attempts_seen > 0;
      attempts_seen = attempts;
      if (retry) {
        std::fprintf(stderr, "gantry run: attempt %d\n", attempts);
        stdout_next = stderr_next = 0;
        ended = false;
        continue;
      }
    }
    const std::string out = call->value("stdout", "");
    const std::string err = call->value("stderr", "");
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
    std::fwrite(err.data(), 1, err.size(), stderr);
    stdout_next = call->value("stdout_next", stdout_next);
    stderr_next = call->value("stderr_next", stderr_next);
    if (!out.empty() || !err.empty()) ended = false;  // a finished call may have more than one read
    if (ended) break;
    if (auto signal = signals.WaitFor(std::chrono::milliseconds(100))) {
      // The local agent stops the call with the app; a registered one keeps it.
      std::fprintf(stderr, "gantry run: stopped by signal %d%s\n", *signal,
                   target->local ? "" : ("; call " + id + " goes on on the agent").c_str());
      return kExitSignalled + *signal;
    }
  }
  const std::string state = call->value("state", "");
  if (state == "succeeded") return kExitOk;
  // Its own exit code, as the shell would give it; a timeout or an
  // interruption is gantry's error.
  if (state == "failed" && call->contains("exit_code")) {
    int code = (*call)["exit_code"].get<int>();
    return code == 0 ? kExitUserError : code;
  }
  return Fail({core::ErrorCode::kUnavailable,
               "call " + id + " " + state + ": " + call->value("error", ""),
               {}});
}

}  // namespace

void AddRunVerb(CLI::App& gantry, int* exit_code) {
  auto command = std::make_shared<RunCommand>();
  CLI::App* verb = gantry.add_subcommand(
      "run", "Call a job function once and exit with its exit code (the local agent by default)");
  AddCallOptions(verb, &command->call);
  verb->add_option("--stdin", command->stdin_file,
                   "Give the call this file (- for gantry's own stdin) as its standard input");
  verb->add_option("ARGS", command->args,
                   "Arguments appended to the function's command (after --)");
  verb->callback([command, exit_code] { *exit_code = RunCall(*command); });
}

}  // namespace toolchain
