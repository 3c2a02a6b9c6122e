#include "tests/gantry_command.h"

#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace tests {
namespace {

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream stream(path, std::ios::binary);
  std::ostringstream text;
  text << stream.rdbuf();
  return text.str();
}

}  // namespace

CommandOutput RunGantry(const std::vector<std::string>& args) {
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("gantry-cli-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::filesystem::path out = dir / "out", err = dir / "err";
  pid_t child = fork();
  if (child < 0) throw std::runtime_error("fork failed");
  if (child == 0) {
    if (chdir(GANTRY_SOURCE_DIR) != 0 || !freopen(out.c_str(), "w", stdout) ||
        !freopen(err.c_str(), "w", stderr)) {
      _exit(127);
    }
    std::vector<char*> argv;
    std::string binary = GANTRY_BINARY;
    argv.push_back(binary.data());
    std::vector<std::string> copies = args;
    for (std::string& arg : copies) argv.push_back(arg.data());
    argv.push_back(nullptr);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(child, &status, 0);
  CommandOutput output;
  output.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  output.out = ReadFile(out);
  output.err = ReadFile(err);
  std::filesystem::remove_all(dir);
  return output;
}

}  // namespace tests
