// gantry map FILE FUNCTION --inputs FILE.jsonl: one call of a job function
// per input line, up to --parallel (default: the function's max_containers)
// at once, results in input order, as Modal's Function.map does.

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
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
using Clock = std::chrono::steady_clock;

struct MapCommand {
  CallCommand call;
  std::string inputs;
  std::string out;   // "" or "-": stdout
  int parallel = 0;  // 0: the function's max_containers
};

// One input line as a call request: an array gives the arguments, an object
// is a request as the API reads it ({"args", "stdin", "env"}), anything else
// is one argument (a string as it is, others as JSON).
json RequestOf(const json& input) {
  auto argument = [](const json& value) {
    return value.is_string() ? value.get<std::string>() : value.dump();
  };
  if (input.is_object()) return input;
  json args = json::array();
  if (input.is_array()) {
    for (const json& value : input) args.push_back(argument(value));
  } else {
    args.push_back(argument(input));
  }
  return {{"args", args}};
}

// The inputs, one JSON value a line (blank lines skipped); a line that is not
// JSON is an error naming it, before any call is made.
core::Result<std::vector<json>> ReadInputs(const std::string& path) {
  auto text = core::ReadFile(path);
  if (!text) return text.error();
  std::vector<json> inputs;
  std::size_t begin = 0;
  for (int line = 1; begin < text->size(); ++line) {
    std::size_t end = std::min(text->find('\n', begin), text->size());
    std::string content = text->substr(begin, end - begin);
    begin = end + 1;
    if (content.find_first_not_of(" \t\r") == std::string::npos) continue;
    json value = json::parse(content, nullptr, false);
    if (value.is_discarded()) {
      return core::Error{core::ErrorCode::kParse,
                         "an input is one JSON value a line, and this one is not JSON",
                         {path, line, 1}};
    }
    inputs.push_back(std::move(value));
  }
  if (inputs.empty()) {
    return core::Error{core::ErrorCode::kInvalidArgument, path + " holds no inputs", {}};
  }
  return inputs;
}

// "1m05s" for an estimate.
std::string FormatSeconds(double seconds) {
  long whole = static_cast<long>(seconds + 0.5);
  char text[32];
  if (whole >= 60) {
    std::snprintf(text, sizeof text, "%ldm%02lds", whole / 60, whole % 60);
  } else {
    std::snprintf(text, sizeof text, "%lds", whole);
  }
  return text;
}

// The calls' progress, shared by the workers and the display.
struct Progress {
  std::atomic<std::size_t> next{0};  // the next input to call
  std::atomic<int> running{0};
  std::atomic<int> done{0};
  std::atomic<int> failed{0};
  std::atomic<bool> stopping{false};
};

// "[#####.....] 500/1000  running 4  failed 1  25.1/s  ETA 20s"
std::string ProgressLine(const Progress& progress, std::size_t total, Clock::time_point start) {
  int done = progress.done;
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  double rate = elapsed > 0 ? done / elapsed : 0;
  constexpr int kWidth = 24;
  int filled = static_cast<int>(kWidth * done / std::max<std::size_t>(total, 1));
  std::string bar = "[" + std::string(filled, '#') + std::string(kWidth - filled, '.') + "]";
  char text[160];
  std::snprintf(text, sizeof text, "%s %d/%zu  running %d  failed %d  %.1f/s  ETA %s", bar.c_str(),
                done, total, progress.running.load(), progress.failed.load(), rate,
                rate > 0 ? FormatSeconds((total - done) / rate).c_str() : "?");
  return text;
}

// Waits for the call `queued` to end, asking after it ever less often (from
// 20 ms to 500 ms apart): the call with its output once it has ended, or as
// it stood when the map was stopped, when the agent goes on running it.
core::Result<json> AwaitCall(planner::AgentClient& client, json queued,
                             const std::atomic<bool>& stopping) {
  const std::string id = queued.value("id", "");
  json call = std::move(queued);
  for (auto pause = std::chrono::milliseconds(20); !stopping;
       pause = std::min(pause * 2, std::chrono::milliseconds(500))) {
    const std::string state = call.value("state", "");
    if (state != "queued" && state != "running") return call;
    std::this_thread::sleep_for(pause);
    auto found = client.FindCall(id);
    if (!found) return found.error();
    call = std::move(found).value();
  }
  return call;
}

// A worker: calls inputs in turn until none is left, each result in its slot.
void CallInputs(const CallTarget& target, const std::string& function,
                const std::vector<json>& inputs, std::vector<json>* results, Progress* progress) {
  auto client = target.Connect();
  for (std::size_t index; !progress->stopping && (index = progress->next++) < inputs.size();) {
    ++progress->running;
    json result = {{"index", index}, {"input", inputs[index]}};
    auto call = client ? client->Call(target.app.name, function, RequestOf(inputs[index]), false)
                       : core::Result<json>(client.error());
    std::string id = call ? call->value("id", "") : "";
    if (call) call = AwaitCall(*client, std::move(call).value(), progress->stopping);
    if (call) {
      for (const char* field : {"id", "state", "exit_code", "error", "stdout", "stderr"})
        if (call->contains(field)) result[field] = (*call)[field];
    } else {
      result["state"] = "failed";
      result["error"] = call.error().message;
    }
    const std::string state = result.value("state", "");
    if (progress->stopping && !id.empty() && (state == "queued" || state == "running" || !call)) {
      // Stopped while it ran: the local agent stops it, a registered one goes on.
      result["id"] = id;
      result["state"] = "stopped";
      result["error"] = target.local ? "stopped with the map"
                                     : "the map was stopped; the call goes on on the agent";
    }
    bool succeeded = result.value("state", "") == "succeeded";
    (*results)[index] = std::move(result);
    --progress->running;
    if (!succeeded) ++progress->failed;
    ++progress->done;
  }
}

int RunMap(const MapCommand& command) {
  StopSignals signals;  // before any thread starts
  auto inputs = ReadInputs(command.inputs);
  if (!inputs) {
    ReportErrors({inputs.error()});
    return kExitUserError;
  }
  auto target = PrepareCallTarget(command.call);
  if (!target) {
    ReportErrors(target.error());
    return kExitUserError;
  }
  if (auto signal = signals.WaitFor(std::chrono::milliseconds(0))) return kExitSignalled + *signal;
  int parallel = command.parallel > 0
                     ? command.parallel
                     : target->app.functions.at(command.call.function).max_containers;
  parallel = std::clamp<int>(parallel, 1, static_cast<int>(inputs->size()));

  // An input not called (the map was stopped) says so in its result.
  std::vector<json> results;
  for (std::size_t index = 0; index < inputs->size(); ++index)
    results.push_back({{"index", index}, {"input", (*inputs)[index]}, {"state", "not_run"}});
  Progress progress;
  const Clock::time_point start = Clock::now();
  std::vector<std::thread> workers;
  for (int i = 0; i < parallel; ++i) {
    workers.emplace_back(CallInputs, std::cref(*target), std::cref(command.call.function),
                         std::cref(*inputs), &results, &progress);
  }
  const bool terminal = isatty(STDERR_FILENO) == 1;
  std::optional<int> signal;
  while (static_cast<std::size_t>(progress.done) < inputs->size()) {
    if ((signal = signals.WaitFor(std::chrono::milliseconds(200)))) {
      progress.stopping = true;
      std::fprintf(
          stderr, "\ngantry map: stopped by signal %d: no new calls; the %d running %s\n", *signal,
          progress.running.load(),
          target->local ? "are stopped" : "go on on the agent (their ids are in the results)");
      if (target->local) target->local->Stop();
      break;
    }
    if (terminal)
      std::fprintf(stderr, "\r\033[K%s", ProgressLine(progress, inputs->size(), start).c_str());
  }
  for (std::thread& worker : workers) worker.join();
  std::fprintf(stderr, "%s%s\n", terminal ? "\r\033[K" : "",
               ProgressLine(progress, inputs->size(), start).c_str());
  std::string lines;
  std::vector<std::string> failures;
  for (const json& result : results) {
    lines += result.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    if (result.value("state", "") == "succeeded") continue;
    std::string why = result.value("error", "");
    if (why.empty() && result.contains("exit_code"))
      why = "exit code " + std::to_string(result["exit_code"].get<int>());
    failures.push_back("input " + std::to_string(result["index"].get<std::size_t>() + 1) + " (" +
                       result.value("state", "") + "): " + why);
  }
  if (command.out.empty() || command.out == "-") {
    std::fwrite(lines.data(), 1, lines.size(), stdout);
  } else if (auto written = core::WriteFileAtomically(command.out, lines); !written.ok()) {
    ReportErrors({written.error()});
    return kExitUserError;
  }
  if (signal) return kExitSignalled + *signal;  // what ran is written, the rest not_run
  if (failures.empty()) return kExitOk;
  for (const std::string& failure : failures) std::fprintf(stderr, "failed: %s\n", failure.c_str());
  ReportErrors(
      {core::Error{core::ErrorCode::kUnavailable,
                   std::to_string(failures.size()) + " of " + std::to_string(inputs->size()) +
                       " calls failed after their retries (listed above)",
                   {}}});
  return kExitUserError;
}

}  // namespace

void AddMapVerb(CLI::App& gantry, int* exit_code) {
  auto command = std::make_shared<MapCommand>();
  CLI::App* verb = gantry.add_subcommand(
      "map", "Call a job function once per input line, in parallel, results in input order");
  AddCallOptions(verb, &command->call);
  verb->add_option("--inputs", command->inputs,
                   "JSON lines: an array gives a call's arguments, a string or number one "
                   "argument, an object a call request ({args, stdin, env})")
      ->required();
  verb->add_option("--out", command->out,
                   "Write the results (JSON lines, in input order) here (default: stdout)");
  verb->add_option("--parallel", command->parallel,
                   "Calls at once (default: the function's max_containers)");
  verb->callback([command, exit_code] { *exit_code = RunMap(*command); });
}

}  // namespace toolchain
