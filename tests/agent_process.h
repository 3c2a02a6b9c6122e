#pragma once

// `gantry agent` as a child process: what the end-to-end tests of the agent
// and of serving run against.

#include <httplib.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/subprocess.h"

namespace tests {

/// `gantry agent` on a free port of 127.0.0.1, with a fake H100, its data
/// in `data_dir`, images from `store` and its log in `log`. Started by the
/// constructor (a Catch2 failure when it does not come up), stopped with
/// SIGKILL when the object goes unless Kill() stopped it before.
class AgentProcess {
 public:
  AgentProcess(std::filesystem::path gantry_binary, std::filesystem::path data_dir,
               std::filesystem::path store, std::filesystem::path log,
               std::vector<std::string> extra_args = {});

  /// Starts it again (after Kill) on the same data dir.
  void Start();
  /// Sends `signal` and waits for the process to end.
  void Kill(int signal);

  /// A client of its API, with its token unless `with_token` is false.
  httplib::Client Client(bool with_token = true) const;
  const std::string& token() const { return token_; }
  std::string Log() const;

 private:
  std::filesystem::path gantry_binary_, data_dir_, store_, log_;
  std::vector<std::string> extra_args_;
  std::optional<core::Subprocess> process_;
  std::string address_, token_;
};

}  // namespace tests
