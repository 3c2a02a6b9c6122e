#include "core/subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "core/stop_flag.h"
#include "core/unique_fd.h"
#include "tests/temp_dir.h"

namespace core {
namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;

const std::vector<std::string> kPath = {"PATH=/usr/bin:/bin"};

SubprocessOptions Shell(const std::string& script) {
  SubprocessOptions options;
  options.argv = {"/bin/sh", "-c", script};
  options.env = kPath;
  options.stdout_to = Output::Capture();
  options.stderr_to = Output::Capture();
  return options;
}

std::string Slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

TEST_CASE("Subprocess captures stdout and stderr and reports the exit code", "[subprocess]") {
  auto result = RunSubprocess(Shell("echo out; echo err >&2; exit 3"));
  REQUIRE(result.ok());
  CHECK(result->exit.code == 3);
  CHECK(result->exit.signal == 0);
  CHECK_FALSE(result->timed_out);
  CHECK(result->stdout_text == "out\n");
  CHECK(result->stderr_text == "err\n");
}

TEST_CASE("Subprocess puts the child in a process group of its own only when told",
          "[subprocess]") {
  // The shell prints its pid and its process group (field 5 of /proc/PID/stat).
  const std::string script = "echo $$; cut -d' ' -f5 /proc/$$/stat";
  auto shared = RunSubprocess(Shell(script));
  REQUIRE(shared.ok());
  std::istringstream shared_lines(shared->stdout_text);
  pid_t pid = 0, group = 0;
  shared_lines >> pid >> group;
  CHECK(group == getpgrp());  // a terminal's Ctrl-C would reach it

  SubprocessOptions options = Shell(script);
  options.own_process_group = true;
  auto own = RunSubprocess(std::move(options));
  REQUIRE(own.ok());
  std::istringstream own_lines(own->stdout_text);
  own_lines >> pid >> group;
  CHECK(pid > 0);
  CHECK(group == pid);
}

TEST_CASE("Subprocess gives the child exactly the environment it is told", "[subprocess]") {
  SubprocessOptions options;
  options.argv = {"env"};  // found in the PATH of `env`
  options.env = {"PATH=/usr/bin:/bin", "ONLY=this"};
  options.stdout_to = Output::Capture();
  auto result = RunSubprocess(options);
  REQUIRE(result.ok());
  CHECK(result->stdout_text == "PATH=/usr/bin:/bin\nONLY=this\n");
}

TEST_CASE("Subprocess feeds a large stdin while capturing as much output", "[subprocess]") {
  std::string input;
  for (int i = 0; input.size() < (8u << 20); ++i) input += "line " + std::to_string(i) + "\n";
  SubprocessOptions options = Shell("cat");
  options.stdin_data = input;
  options.stdout_to = Output::Capture(16 << 20);
  auto result = RunSubprocess(options, 60s);
  REQUIRE(result.ok());
  CHECK_FALSE(result->timed_out);
  CHECK(result->exit.code == 0);
  CHECK(result->stdout_text.size() == input.size());
  CHECK(result->stdout_text == input);
}

TEST_CASE("Subprocess survives a child that does not read its stdin", "[subprocess]") {
  SubprocessOptions options = Shell("exit 4");
  options.stdin_data = std::string(4 << 20, 'x');  // more than a pipe holds: EPIPE, not SIGPIPE
  auto result = RunSubprocess(options, 30s);
  REQUIRE(result.ok());
  CHECK(result->exit.code == 4);
}

TEST_CASE("Subprocess stdin is /dev/null unless given, an empty one ends at once", "[subprocess]") {
  SubprocessOptions options = Shell("cat");
  auto from_null = RunSubprocess(options, 10s);
  REQUIRE(from_null.ok());
  CHECK(from_null->stdout_text.empty());
  options.stdin_data = "";
  auto from_empty = RunSubprocess(options, 10s);
  REQUIRE(from_empty.ok());
  CHECK_FALSE(from_empty->timed_out);
  CHECK(from_empty->exit.code == 0);
}

TEST_CASE("Subprocess keeps only the capture limit and never blocks the child", "[subprocess]") {
  SubprocessOptions options = Shell("head -c 1000000 /dev/zero; echo done >&2");
  options.stdout_to = Output::Capture(1000);
  auto result = RunSubprocess(options, 30s);
  REQUIRE(result.ok());
  CHECK(result->exit.code == 0);
  CHECK(result->stdout_text.size() == 1000);
  CHECK(result->stderr_text == "done\n");
}

TEST_CASE("Subprocess hands on_data the bytes it captures, and no more", "[subprocess]") {
  SubprocessOptions options =
      Shell("echo one; sleep 0.2; echo two; echo err >&2; head -c 100 /dev/zero");
  options.stdout_to = Output::Capture(12);
  std::string pieces;
  options.stdout_to.on_data = [&](std::string_view data) { pieces.append(data); };
  std::string errors;
  options.stderr_to.on_data = [&](std::string_view data) { errors.append(data); };
  auto child = Subprocess::Start(std::move(options));
  REQUIRE(child.ok());
  REQUIRE(child->Wait().value());
  // Exactly the bytes kept: the first 12 of stdout, all of stderr.
  CHECK(pieces == "one\ntwo\n\0\0\0\0"s);
  CHECK(pieces == child->stdout_text());
  CHECK(errors == "err\n");
}

TEST_CASE("Subprocess writes stdout and stderr to files, one file shared in order",
          "[subprocess]") {
  tests::TempDir temp;
  SubprocessOptions options = Shell("echo a; echo b >&2; echo c");
  SECTION("one file") {
    options.stdout_to = Output::File(temp.path() / "both");
    options.stderr_to = Output::File(temp.path() / "both");
    std::ofstream(temp.path() / "both") << "old content that is truncated away";
    REQUIRE(RunSubprocess(options).ok());
    CHECK(Slurp(temp.path() / "both") == "a\nb\nc\n");
  }
  SECTION("two files") {
    options.stdout_to = Output::File(temp.path() / "out");
    options.stderr_to = Output::File(temp.path() / "err");
    REQUIRE(RunSubprocess(options).ok());
    CHECK(Slurp(temp.path() / "out") == "a\nc\n");
    CHECK(Slurp(temp.path() / "err") == "b\n");
  }
  SECTION("a folder that does not exist") {
    options.stdout_to = Output::File(temp.path() / "missing" / "out");
    auto result = RunSubprocess(options);
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().message.find("missing/out") != std::string::npos);
  }
}

TEST_CASE("Subprocess waits with a deadline and signals", "[subprocess]") {
  SubprocessOptions options = Shell("exec sleep 30");
  auto child = Subprocess::Start(options);
  REQUIRE(child.ok());
  auto start = std::chrono::steady_clock::now();
  auto ended = child->Wait(100ms);
  REQUIRE(ended.ok());
  CHECK_FALSE(*ended);
  CHECK(std::chrono::steady_clock::now() - start >= 100ms);
  CHECK_FALSE(child->ended());
  REQUIRE(child->Signal(SIGTERM).ok());
  ended = child->Wait(10s);
  REQUIRE(ended.ok());
  CHECK(*ended);
  CHECK(child->exit().signal == SIGTERM);
  CHECK(child->exit().code == 128 + SIGTERM);
  // Ended: signalling and waiting again are harmless.
  CHECK(child->Signal(SIGKILL).ok());
  CHECK(*child->Wait(0ms));
}

TEST_CASE("Subprocess stops waiting once its wake fd is readable, not before the child ends",
          "[subprocess]") {
  auto child = Subprocess::Start(Shell("exec sleep 30"));
  REQUIRE(child.ok());
  StopFlag stop;
  REQUIRE(stop.fd().ok());
  std::thread setter([&] {
    std::this_thread::sleep_for(20ms);
    stop.Set();
  });
  // No timeout: only the flag, set while it sleeps, ends this wait.
  auto ended = child->Wait(std::nullopt, *stop.fd());
  setter.join();
  REQUIRE(ended.ok());
  CHECK_FALSE(*ended);
  CHECK_FALSE(child->ended());
  REQUIRE(child->Signal(SIGKILL).ok());
  ended = child->Wait(10s);
  REQUIRE(ended.ok());
  CHECK(*ended);
  CHECK(child->exit().signal == SIGKILL);

  // A quiet wake fd: the wait ends with the child, as without one.
  StopFlag quiet;
  REQUIRE(quiet.fd().ok());
  auto exiting = Subprocess::Start(Shell("sleep 0.1; exit 3"));
  REQUIRE(exiting.ok());
  ended = exiting->Wait(std::nullopt, *quiet.fd());
  REQUIRE(ended.ok());
  CHECK(*ended);
  CHECK(exiting->exit().code == 3);
}

TEST_CASE("RunSubprocess kills a child that outlives its timeout", "[subprocess]") {
  auto start = std::chrono::steady_clock::now();
  auto result = RunSubprocess(Shell("exec sleep 30"), 200ms);
  REQUIRE(result.ok());
  CHECK(result->timed_out);
  CHECK(result->exit.code == 137);
  CHECK(std::chrono::steady_clock::now() - start < 10s);
}

TEST_CASE("Subprocess kills and reaps the child when it goes", "[subprocess]") {
  pid_t pid = 0;
  {
    auto child = Subprocess::Start(Shell("exec sleep 30"));
    REQUIRE(child.ok());
    pid = child->pid();
    CHECK(kill(pid, 0) == 0);
    Subprocess moved = std::move(child).value();
    CHECK(moved.pid() == pid);
  }
  // Reaped, not a zombie: the pid is gone.
  CHECK(kill(pid, 0) != 0);
  CHECK(errno == ESRCH);
}

TEST_CASE("Subprocess reports a program it cannot run", "[subprocess]") {
  SubprocessOptions options = Shell("");
  options.argv = {"/nonexistent/program"};
  auto missing = Subprocess::Start(options);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message.find("/nonexistent/program") != std::string::npos);
  options.argv = {"no-such-program-anywhere"};
  auto unknown = Subprocess::Start(options);
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.error().code == ErrorCode::kNotFound);
  options.argv = {};
  CHECK_FALSE(Subprocess::Start(options).ok());
}

TEST_CASE("Subprocess does not leak descriptors or ignored signals into the child",
          "[subprocess]") {
  UniqueFd inheritable(open("/dev/null", O_RDONLY));  // no O_CLOEXEC on purpose
  REQUIRE(inheritable.valid());
  const std::string fd = std::to_string(inheritable.get());
  auto result = RunSubprocess(
      Shell("if [ -e /proc/$$/fd/" + fd + " ]; then echo leaked; else echo closed; fi"));
  REQUIRE(result.ok());
  CHECK(result->stdout_text == "closed\n");

  struct sigaction ignore {
  }, previous{};
  ignore.sa_handler = SIG_IGN;
  REQUIRE(sigaction(SIGTERM, &ignore, &previous) == 0);
  auto child = Subprocess::Start(Shell("exec sleep 30"));
  sigaction(SIGTERM, &previous, nullptr);
  REQUIRE(child.ok());
  REQUIRE(child->Signal(SIGTERM).ok());
  auto ended = child->Wait(10s);
  REQUIRE(ended.ok());
  CHECK(*ended);
  CHECK(child->exit().signal == SIGTERM);
}

}  // namespace
}  // namespace core
