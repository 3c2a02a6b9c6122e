#include "agents/runc_runtime.h"

#include <signal.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "core/atomic_file.h"
#include "core/stop_flag.h"
#include "core/subprocess.h"
#include "core/text.h"

namespace agents {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// runc's own commands (kill, delete, list, --version) answer at once; one
// that hangs this long is stuck and is killed rather than hang the agent.
constexpr std::chrono::milliseconds kCommandTimeout = 60s;
// How long a SIGKILLed container may take to be reaped by runc before runc
// itself is killed (`delete --force` then removes what is left).
constexpr std::chrono::milliseconds kKillWait = 10s;
constexpr std::size_t kStderrLimit = 64 << 10;
constexpr std::size_t kListLimit = 64 << 20;
// runc's log of a `run`, in the bundle: how a failure to start is told from
// the container's own exit code.
constexpr char kRunLog[] = "runc.log";

std::string Trim(std::string_view text) {
  return std::string(core::TrimSpaces(text));
}

// What runc said on stderr: the msg="..." of its logrus lines, else the
// text itself, trimmed.
std::string RuncMessage(const std::string& stderr_text) {
  std::string messages;
  std::istringstream lines(stderr_text);
  for (std::string line; std::getline(lines, line);) {
    std::size_t start = line.find("msg=\"");
    std::size_t end = line.rfind('"');
    std::string message = start != std::string::npos && end > start + 5
                              ? line.substr(start + 5, end - start - 5)
                              : Trim(line);
    if (message.empty()) continue;
    if (!messages.empty()) messages += "; ";
    messages += message;
  }
  return messages;
}

// The errors runc logged (--log-format json) in `log`, joined; "" when none.
std::string LoggedErrors(const fs::path& log) {
  auto text = core::ReadFile(log);
  if (!text) return {};
  std::string errors;
  std::istringstream lines(*text);
  for (std::string line; std::getline(lines, line);) {
    nlohmann::json entry = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!entry.is_object() || !entry.contains("msg") || !entry["msg"].is_string()) continue;
    const std::string level = entry.value("level", "");
    if (level != "error" && level != "fatal" && level != "panic") continue;
    if (!errors.empty()) errors += "; ";
    errors += entry["msg"].get<std::string>();
  }
  return errors;
}

core::Error CommandError(const std::vector<std::string>& argv, const std::string& message) {
  std::string command;
  for (std::size_t i = 0; i < argv.size(); ++i) command += (i == 0 ? "" : " ") + argv[i];
  return core::Error{core::ErrorCode::kIo, command + " failed: " + message, {}};
}

}  // namespace

RuncRuntime::RuncRuntime(fs::path binary, fs::path state_root)
    : binary_(std::move(binary)), state_root_(std::move(state_root)) {}

core::SubprocessOptions RuncRuntime::Command(std::vector<std::string> arguments) const {
  core::SubprocessOptions options;
  options.argv = {binary_.string(), "--root", state_root_.string()};
  options.argv.insert(options.argv.end(), std::make_move_iterator(arguments.begin()),
                      std::make_move_iterator(arguments.end()));
  options.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
  options.stdout_to = core::Output::Capture(kListLimit);
  options.stderr_to = core::Output::Capture(kStderrLimit);
  // runc and its containers stop when the agent says, in order, and not
  // when a terminal's Ctrl-C meant for `gantry up` or `gantry agent` reaches them.
  options.own_process_group = true;
  return options;
}

core::Result<std::string> RuncRuntime::Call(std::vector<std::string> arguments) const {
  core::SubprocessOptions options = Command(std::move(arguments));
  const std::vector<std::string> argv = options.argv;
  auto result = core::RunSubprocess(std::move(options), kCommandTimeout);
  if (!result) return result.error();
  if (result->timed_out) return CommandError(argv, "no answer in 60s");
  if (result->exit.code != 0) {
    std::string message = RuncMessage(result->stderr_text);
    return CommandError(
        argv, message.empty() ? "exit code " + std::to_string(result->exit.code) : message);
  }
  return std::move(result->stdout_text);
}

core::Status RuncRuntime::Signal(const std::string& id, int signal, bool all) const {
  std::vector<std::string> arguments = {"kill"};
  if (all) arguments.push_back("--all");
  arguments.push_back(id);
  arguments.push_back(std::to_string(signal));
  auto called = Call(std::move(arguments));
  if (!called) return called.error();
  return core::Ok{};
}

core::Status RuncRuntime::Kill(const std::string& id, int signal) const {
  return Signal(id, signal, /*all=*/false);
}

core::Status RuncRuntime::Delete(const std::string& id) const {
  auto called = Call({"delete", "--force", id});
  if (!called && called.error().message.find("does not exist") == std::string::npos)
    return called.error();
  return core::Ok{};
}

core::Result<std::vector<ContainerState>> RuncRuntime::List() const {
  auto listed = Call({"list", "--format", "json"});
  if (!listed) return listed.error();
  nlohmann::json items = nlohmann::json::parse(*listed, nullptr, /*allow_exceptions=*/false);
  if (items.is_discarded() || !(items.is_null() || items.is_array())) {
    return core::Error{
        core::ErrorCode::kParse, "runc list --format json: not a JSON array: " + Trim(*listed), {}};
  }
  std::vector<ContainerState> containers;
  if (items.is_null()) return containers;  // runc says null when it has none
  for (const nlohmann::json& item : items) {
    if (!item.is_object()) continue;
    ContainerState state;
    state.id = item.value("id", "");
    state.status = item.value("status", "");
    state.pid = item.value("pid", 0);
    state.bundle = item.value("bundle", "");
    containers.push_back(std::move(state));
  }
  return containers;
}

core::Result<std::string> RuncRuntime::Version() const {
  core::SubprocessOptions options = Command({});
  const std::vector<std::string> argv = {binary_.string(), "--version"};
  options.argv = argv;
  auto result = core::RunSubprocess(std::move(options), kCommandTimeout);
  if (!result) return result.error();
  if (result->timed_out || result->exit.code != 0)
    return CommandError(argv, RuncMessage(result->stderr_text));
  std::string version = result->stdout_text.substr(0, result->stdout_text.find('\n'));
  return Trim(version);
}

core::Result<ContainerExit> RuncRuntime::Run(const fs::path& bundle, const std::string& id,
                                             const RunOptions& options) const {
  const fs::path log = bundle / kRunLog;
  std::error_code ignored;  // a log that is not there is what is wanted
  fs::remove(log, ignored);
  std::vector<std::string> arguments = {"--log", log.string(), "--log-format", "json",
                                        "run",   "--bundle",   bundle.string()};
  if (!options.pid_file.empty()) {
    arguments.insert(arguments.end(), {"--pid-file", options.pid_file.string()});
  }
  arguments.push_back(id);
  core::SubprocessOptions command = Command(std::move(arguments));
  command.stdin_data = options.stdin_data;
  // Copied to the files by gantry as it comes, up to the limit (a file the
  // container wrote directly could grow without bound), so that a running
  // call's output can be followed.
  command.stdout_to = options.stdout_file.empty()
                          ? core::Output::Null()
                          : core::Output::CaptureToFile(options.stdout_file, options.output_limit);
  command.stderr_to = options.stderr_file.empty()
                          ? core::Output::Null()
                          : core::Output::CaptureToFile(options.stderr_file, options.output_limit);
  command.stdout_to.on_data = options.on_stdout;
  command.stderr_to.on_data = options.on_stderr;
  int wake_fd = -1;
  if (options.stop) {
    auto stop_fd = options.stop->fd();
    if (!stop_fd) return stop_fd.error();
    wake_fd = *stop_fd;
  }
  auto runc = core::Subprocess::Start(std::move(command));
  if (!runc) return runc.error();

  ContainerExit exit;
  // Asleep until runc ends, the timeout passes or a stop is asked for (the
  // flag's fd turns readable): no step while it runs.
  const auto deadline = options.timeout
                            ? std::optional(std::chrono::steady_clock::now() + *options.timeout)
                            : std::nullopt;
  core::Result<bool> ended = false;
  while (ended && !*ended && !(options.stop && options.stop->IsSet()) &&
         (!deadline || std::chrono::steady_clock::now() < *deadline)) {
    std::optional<std::chrono::milliseconds> left;
    if (deadline) {
      left = std::chrono::ceil<std::chrono::milliseconds>(*deadline -
                                                          std::chrono::steady_clock::now());
    }
    ended = runc->Wait(left, wake_fd);
  }
  if (ended && !*ended) {
    exit.timed_out = !(options.stop && options.stop->IsSet());
    exit.stopped = !exit.timed_out;
    ended = Stop(id, *runc, options.grace);
  }
  // Whatever happened, runc keeps nothing of it. A `run` that ended has
  // deleted its container already, and a second runc process to say so
  // would cost as much as the rest of the call: only when runc's state for
  // it is still there is it deleted.
  std::error_code exists_error;
  auto deleted = std::filesystem::exists(state_root_ / id, exists_error) ? Delete(id)
                                                                         : core::Status(core::Ok{});
  if (!ended) return ended.error();
  const std::string errors = LoggedErrors(log);
  if (runc->exit().code != 0 && !errors.empty())
    return core::Error{core::ErrorCode::kIo, "container " + id + ": " + errors, {}};
  if (!deleted) return deleted.error();
  exit.exit_code = runc->exit().code;
  return exit;
}

core::Result<bool> RuncRuntime::Stop(const std::string& id, core::Subprocess& runc,
                                     std::chrono::milliseconds grace) const {
  // Through runc, which knows the container's pid; a container runc has not
  // made yet is reached by signalling runc, which forwards what it gets.
  if (!Kill(id, SIGTERM)) (void)runc.Signal(SIGTERM);
  auto ended = runc.Wait(grace);
  if (!ended || *ended) return ended;
  if (!Signal(id, SIGKILL, /*all=*/true)) (void)runc.Signal(SIGKILL);
  ended = runc.Wait(kKillWait);
  if (!ended || *ended) return ended;
  auto killed = runc.Signal(SIGKILL);  // runc itself is stuck
  if (!killed) return killed.error();
  return runc.Wait();
}

}  // namespace agents
