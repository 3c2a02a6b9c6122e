#pragma once

// `gantry agent` as a child process: what the end-to-end tests of the agent
// and of serving, and the agent's benchmarks, run against.

#include <httplib.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "core/subprocess.h"

namespace tests {

/// `gantry agent --listen 127.0.0.1:0` with its data in `data_dir`, images
/// from `store`, its log in `log` and `extra_args` (`--gpus fake:H100x1`
/// unless they say otherwise), and `extra_env` besides PATH and HOME
/// (libfaketime's, for a test clock). Stopped with SIGTERM (orderly: containers
/// stopped, the database closed) when the object goes, SIGKILL after 10 s.
class AgentProcess {
 public:
  /// Starts it; an error with its log when it has not come up in 10 s.
  static core::Result<std::unique_ptr<AgentProcess>> Start(std::filesystem::path gantry_binary,
                                                           std::filesystem::path data_dir,
                                                           std::filesystem::path store,
                                                           std::filesystem::path log,
                                                           std::vector<std::string> extra_args = {},
                                                           std::vector<std::string> extra_env = {});
  ~AgentProcess();

  /// Starts it again (after Kill) on the same data dir.
  core::Status Restart();
  /// Sends `signal` and waits (10 s at most) for the process to end.
  core::Status Kill(int signal);

  /// A client of its API on one keep-alive connection, with its token
  /// unless `with_token` is false.
  httplib::Client Client(bool with_token = true) const;
  const std::string& address() const { return address_; }
  /// The port of address(), for raw connections to it.
  int port() const { return std::stoi(address_.substr(address_.rfind(':') + 1)); }
  /// Its dashboard's http://HOST:PORT with `--dashboard-port`, else "".
  const std::string& dashboard_address() const { return dashboard_address_; }
  const std::string& token() const { return token_; }
  const std::filesystem::path& data_dir() const { return data_dir_; }
  std::string Log() const;
  /// `gantry agents add NAME URL --token-file TOKEN` for this agent: how a
  /// test registers it with the planner.
  std::vector<std::string> AddArgs(const std::string& name) const {
    return {"agents", "add", name, address_, "--token-file", (data_dir_ / "token").string()};
  }

 private:
  AgentProcess(std::filesystem::path gantry_binary, std::filesystem::path data_dir,
               std::filesystem::path store, std::filesystem::path log,
               std::vector<std::string> extra_args, std::vector<std::string> extra_env);

  std::filesystem::path gantry_binary_, data_dir_, store_, log_;
  std::vector<std::string> extra_args_, extra_env_;
  std::optional<core::Subprocess> process_;
  std::string address_, dashboard_address_, token_;
};

}  // namespace tests
