#include "tests/gantry_command.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
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

CommandOutput RunProcess(const std::vector<std::string>& argv,
                         const std::filesystem::path& directory,
                         const std::vector<std::string>& environment) {
  static std::atomic<int> counter{0};
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() /
      ("gantry-cmd-" + std::to_string(getpid()) + "-" + std::to_string(counter++));
  std::filesystem::create_directories(dir);
  std::filesystem::path out = dir / "out", err = dir / "err";
  std::vector<std::string> copies = argv;
  std::vector<char*> pointers;
  for (std::string& arg : copies) pointers.push_back(arg.data());
  pointers.push_back(nullptr);
  pid_t child = fork();
  if (child < 0) throw std::runtime_error("fork failed");
  if (child == 0) {
    if (chdir(directory.c_str()) != 0 || !freopen(out.c_str(), "w", stdout) ||
        !freopen(err.c_str(), "w", stderr) || !freopen("/dev/null", "r", stdin)) {
      _exit(127);
    }
    for (const std::string& variable : environment) putenv(const_cast<char*>(variable.c_str()));
    execvp(pointers[0], pointers.data());
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

CommandOutput RunGantry(const std::vector<std::string>& args,
                        const std::vector<std::string>& environment) {
  std::vector<std::string> argv = {GANTRY_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv, GANTRY_SOURCE_DIR, environment);
}

CommandOutput CheckJsonSchema(const std::string& schema_file, const std::filesystem::path& document,
                              const std::string& definition) {
  return RunProcess(
      {"/usr/bin/python3", "-c",
       "import json, sys, jsonschema\n"
       "schema = json.load(open(sys.argv[1]))\n"
       "if sys.argv[3]: schema['$ref'] = '#/$defs/' + sys.argv[3]\n"
       "jsonschema.Draft202012Validator(schema).validate(json.load(open(sys.argv[2])))",
       std::string(GANTRY_SOURCE_DIR) + "/schemas/" + schema_file, document.string(), definition});
}

}  // namespace tests
