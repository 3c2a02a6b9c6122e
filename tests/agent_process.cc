#include "tests/agent_process.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "core/atomic_file.h"

namespace tests {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

AgentProcess::AgentProcess(fs::path gantry_binary, fs::path data_dir, fs::path store, fs::path log,
                           std::vector<std::string> extra_args)
    : gantry_binary_(std::move(gantry_binary)),
      data_dir_(std::move(data_dir)),
      store_(std::move(store)),
      log_(std::move(log)),
      extra_args_(std::move(extra_args)) {
  Start();
}

void AgentProcess::Start() {
  std::error_code ignored;
  fs::remove(data_dir_ / "address", ignored);
  core::SubprocessOptions options;
  options.argv = {
      gantry_binary_.string(), "agent",   "--listen",      "127.0.0.1:0", "--data-dir",
      data_dir_.string(),      "--store", store_.string(), "--gpus",      "fake:H100x1"};
  options.argv.insert(options.argv.end(), extra_args_.begin(), extra_args_.end());
  options.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"};
  options.stdout_to = core::Output::File(log_);
  options.stderr_to = core::Output::File(log_);
  auto started = core::Subprocess::Start(options);
  REQUIRE(started.ok());
  process_.emplace(std::move(started).value());
  for (int i = 0; i < 300 && !fs::exists(data_dir_ / "address"); ++i)
    std::this_thread::sleep_for(20ms);
  INFO(Log());
  REQUIRE(fs::exists(data_dir_ / "address"));
  std::string address = core::ReadFile(data_dir_ / "address").value();
  address.erase(address.find_last_not_of("\n") + 1);
  address_ = address;
  token_ = core::ReadFile(data_dir_ / "token").value();
  token_.erase(token_.find_last_not_of("\n") + 1);
}

void AgentProcess::Kill(int signal) {
  REQUIRE(process_->Signal(signal).ok());
  REQUIRE(process_->Wait(10s).value());
  process_.reset();
}

httplib::Client AgentProcess::Client(bool with_token) const {
  httplib::Client client(address_);
  client.set_read_timeout(60, 0);
  if (with_token) client.set_bearer_token_auth(token_.c_str());
  return client;
}

std::string AgentProcess::Log() const {
  auto text = core::ReadFile(log_);
  return text.ok() ? *text : "";
}

}  // namespace tests
