#include "tests/agent_process.h"

#include <signal.h>

#include <algorithm>
#include <chrono>

#include "core/atomic_file.h"

namespace tests {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

core::Error AgentError(const std::string& message) {
  return core::Error{core::ErrorCode::kIo, message, {}};
}

std::string FirstLine(std::string text) {
  text.erase(text.find_last_not_of("\n") + 1);
  return text;
}

}  // namespace

AgentProcess::AgentProcess(fs::path gantry_binary, fs::path data_dir, fs::path store, fs::path log,
                           std::vector<std::string> extra_args, std::vector<std::string> extra_env)
    : gantry_binary_(std::move(gantry_binary)),
      data_dir_(std::move(data_dir)),
      store_(std::move(store)),
      log_(std::move(log)),
      extra_args_(std::move(extra_args)),
      extra_env_(std::move(extra_env)) {}

core::Result<std::unique_ptr<AgentProcess>> AgentProcess::Start(
    fs::path gantry_binary, fs::path data_dir, fs::path store, fs::path log,
    std::vector<std::string> extra_args, std::vector<std::string> extra_env) {
  std::unique_ptr<AgentProcess> agent(
      new AgentProcess(std::move(gantry_binary), std::move(data_dir), std::move(store),
                       std::move(log), std::move(extra_args), std::move(extra_env)));
  if (auto started = agent->Restart(); !started.ok()) return started.error();
  return agent;
}

AgentProcess::~AgentProcess() {
  if (process_) (void)Kill(SIGTERM);  // else the Subprocess kills it
}

core::Status AgentProcess::Restart() {
  std::error_code ignored;
  fs::remove(data_dir_ / "address", ignored);
  core::SubprocessOptions options;
  options.argv = {gantry_binary_.string(), "agent",   "--listen",     "127.0.0.1:0", "--data-dir",
                  data_dir_.string(),      "--store", store_.string()};
  if (std::find(extra_args_.begin(), extra_args_.end(), "--gpus") == extra_args_.end())
    options.argv.insert(options.argv.end(), {"--gpus", "fake:H100x1"});
  options.argv.insert(options.argv.end(), extra_args_.begin(), extra_args_.end());
  options.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"};
  options.env.insert(options.env.end(), extra_env_.begin(), extra_env_.end());
  options.stdout_to = core::Output::File(log_);
  options.stderr_to = core::Output::File(log_);
  auto started = core::Subprocess::Start(options);
  if (!started) return started.error();
  process_.emplace(std::move(started).value());
  for (int i = 0; i < 500 && !fs::exists(data_dir_ / "address"); ++i) {
    auto ended = process_->Wait(20ms);
    if (!ended) return ended.error();
    if (*ended) {
      process_.reset();
      return AgentError("gantry agent exited at start: " + Log());
    }
  }
  auto address = core::ReadFile(data_dir_ / "address");
  auto token = core::ReadFile(data_dir_ / "token");
  if (!address || !token) return AgentError("gantry agent wrote no address in 10 s: " + Log());
  address_ = FirstLine(*address);
  token_ = FirstLine(*token);
  auto dashboard = core::ReadFile(data_dir_ / "dashboard_address");
  dashboard_address_ = dashboard ? FirstLine(*dashboard) : "";
  return core::Ok{};
}

core::Status AgentProcess::Kill(int signal) {
  if (!process_) return AgentError("gantry agent is not running");
  if (auto sent = process_->Signal(signal); !sent.ok()) return sent.error();
  auto ended = process_->Wait(10s);
  if (!ended) return ended.error();
  process_.reset();  // kills it if it is still there
  if (!*ended)
    return AgentError("gantry agent did not exit within 10 s of signal " + std::to_string(signal));
  return core::Ok{};
}

httplib::Client AgentProcess::Client(bool with_token) const {
  httplib::Client client(address_);
  client.set_keep_alive(true);
  client.set_read_timeout(60, 0);
  if (with_token) client.set_bearer_token_auth(token_.c_str());
  return client;
}

std::string AgentProcess::Log() const {
  auto text = core::ReadFile(log_);
  return text.ok() ? *text : "";
}

}  // namespace tests
