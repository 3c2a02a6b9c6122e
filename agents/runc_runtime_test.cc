#include "agents/runc_runtime.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <thread>

#include "agents/container_root.h"
#include "agents/host_limits.h"
#include "agents/runtime_spec.h"
#include "core/stop_flag.h"
#include "tests/skip.h"
#include "tests/temp_dir.h"

namespace agents {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr char kBusybox[] = "/bin/busybox";

std::string Slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

std::optional<fs::path> FindRunc() {
  std::string search = "/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin";
  if (const char* path = std::getenv("PATH")) search = std::string(path) + ":" + search;
  std::istringstream folders(search);
  for (std::string folder; std::getline(folders, folder, ':');) {
    fs::path candidate = fs::path(folder) / "runc";
    if (!folder.empty() && access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

// A rootfs of Debian's static busybox: bin/busybox and the applets the tests use.
void MakeBusyboxRoot(const fs::path& rootfs) {
  REQUIRE(fs::exists(kBusybox));  // busybox-static; a missing one is a broken test host
  fs::create_directories(rootfs / "bin");
  fs::copy_file(kBusybox, rootfs / "bin/busybox");
  for (const char* applet : {"sh", "echo", "cat", "sleep", "id", "env"})
    fs::create_symlink("busybox", rootfs / "bin" / applet);
}

/// What each test needs: runc found, a state root, a host's limits, a
/// busybox root. Skips (tests::Skip) only without root or runc.
class Containers {
 public:
  static std::optional<fs::path> Runc() {
    if (geteuid() != 0) {
      tests::Skip("runc needs root");
      return std::nullopt;
    }
    auto runc = FindRunc();
    if (!runc) tests::Skip("runc is not installed");
    return runc;
  }

  explicit Containers(const fs::path& runc)
      : runtime_(runc, temp_.path() / "state"), limits_(DetectHostLimits()) {
    MakeBusyboxRoot(rootfs());
  }

  fs::path rootfs() const { return temp_.path() / "rootfs"; }
  const fs::path& temp() const { return temp_.path(); }
  const RuncRuntime& runtime() const { return runtime_; }
  const HostLimits& limits() const { return limits_; }

  /// An id no other test process uses (cgroups are shared by the host).
  std::string Id(const std::string& name) const {
    return "gantry-test-" + std::to_string(getpid()) + "-" + name;
  }

  /// Writes a bundle for `args` on `root` (the busybox root by default).
  fs::path Bundle(const std::string& id, std::vector<std::string> args,
                  std::vector<std::string> env = {"PATH=/bin"}, fs::path root = {}) const {
    ContainerSpec spec;
    spec.id = id;
    spec.rootfs = root.empty() ? rootfs() : root;
    spec.args = std::move(args);
    spec.env = std::move(env);
    spec.hostname = "test";
    spec.memory_bytes = 256ull << 20;
    spec.cpus = 1;
    const fs::path bundle = temp_.path() / "bundles" / id;
    REQUIRE(WriteBundle(bundle, spec, limits_).ok());
    return bundle;
  }

  RunOptions Options(const std::string& id) const {
    RunOptions options;
    options.stdout_file = temp_.path() / (id + ".out");
    options.stderr_file = temp_.path() / (id + ".err");
    options.timeout = 60s;
    return options;
  }

  bool Listed(const std::string& id, const std::string& status) const {
    auto listed = runtime_.List();
    REQUIRE(listed.ok());
    return std::any_of(listed->begin(), listed->end(), [&](const ContainerState& state) {
      return state.id == id && (status.empty() || state.status == status);
    });
  }

 private:
  tests::TempDir temp_;
  RuncRuntime runtime_;
  HostLimits limits_;
};

TEST_CASE("RuncRuntime runs a container and returns its output and exit code", "[runc]") {
  auto runc = Containers::Runc();
  if (!runc) return;
  Containers containers(*runc);
  const std::string id = containers.Id("echo");
  fs::path bundle =
      containers.Bundle(id, {"sh", "-c", "echo hello; echo oops >&2; hostname; exit 3"});
  RunOptions options = containers.Options(id);
  auto exit = containers.runtime().Run(bundle, id, options);
  REQUIRE(exit.ok());
  CHECK(exit->exit_code == 3);
  CHECK_FALSE(exit->timed_out);
  CHECK(Slurp(options.stdout_file) == "hello\ntest\n");
  CHECK(Slurp(options.stderr_file) == "oops\n");
  CHECK_FALSE(containers.Listed(id, ""));
}

TEST_CASE("RuncRuntime keeps no more of a stream than the limit, and the container is not held up",
          "[runc]") {
  auto runc = Containers::Runc();
  if (!runc) return;
  Containers containers(*runc);
  const std::string id = containers.Id("chatty");
  // 55,000 bytes on stdout, with shell builtins only.
  fs::path bundle = containers.Bundle(
      id, {"sh", "-c",
           "i=0; while [ $i -lt 5000 ]; do echo 0123456789; i=$((i+1)); done; echo done >&2"});
  RunOptions options = containers.Options(id);
  options.output_limit = 1000;
  auto exit = containers.runtime().Run(bundle, id, options);
  REQUIRE(exit.ok());
  CHECK(exit->exit_code == 0);
  const std::string out = Slurp(options.stdout_file);
  CHECK(out.size() == 1000);
  CHECK(out.starts_with("0123456789\n0123456789\n"));
  CHECK(Slurp(options.stderr_file) == "done\n");
}

TEST_CASE("RuncRuntime passes stdin and the environment to the process", "[runc]") {
  auto runc = Containers::Runc();
  if (!runc) return;
  Containers containers(*runc);
  SECTION("stdin") {
    const std::string id = containers.Id("cat");
    RunOptions options = containers.Options(id);
    options.stdin_data = "through stdin\n";
    auto exit = containers.runtime().Run(containers.Bundle(id, {"cat"}), id, options);
    REQUIRE(exit.ok());
    CHECK(exit->exit_code == 0);
    CHECK(Slurp(options.stdout_file) == "through stdin\n");
  }
  SECTION("environment") {
    const std::string id = containers.Id("env");
    RunOptions options = containers.Options(id);
    auto exit = containers.runtime().Run(
        containers.Bundle(id, {"env"}, {"PATH=/bin", "GREETING=hello there"}), id, options);
    REQUIRE(exit.ok());
    const std::string env = Slurp(options.stdout_file);
    CHECK(env.find("GREETING=hello there\n") != std::string::npos);
    CHECK(env.find("PATH=/bin\n") != std::string::npos);
  }
}

TEST_CASE("RuncRuntime stops a container at its timeout", "[runc]") {
  auto runc = Containers::Runc();
  if (!runc) return;
  Containers containers(*runc);
  SECTION("a process that ignores SIGTERM is killed after the grace") {
    // sleep as pid 1 has no SIGTERM handler, so the kernel ignores it.
    const std::string id = containers.Id("sleep");
    RunOptions options = containers.Options(id);
    options.timeout = 500ms;
    options.grace = 1s;
    const auto start = std::chrono::steady_clock::now();
    auto exit = containers.runtime().Run(containers.Bundle(id, {"sleep", "100"}), id, options);
    const auto took = std::chrono::steady_clock::now() - start;
    REQUIRE(exit.ok());
    CHECK(exit->timed_out);
    CHECK(exit->exit_code == 128 + SIGKILL);
    CHECK(took >= 1500ms);
    CHECK(took < 15s);
    CHECK_FALSE(containers.Listed(id, ""));
  }
  SECTION("a process that handles SIGTERM ends in the grace") {
    const std::string id = containers.Id("trap");
    RunOptions options = containers.Options(id);
    options.timeout = 500ms;
    options.grace = 20s;
    const auto start = std::chrono::steady_clock::now();
    auto exit = containers.runtime().Run(
        containers.Bundle(id, {"sh", "-c", "trap 'echo bye; exit 7' TERM; sleep 100 & wait"}), id,
        options);
    REQUIRE(exit.ok());
    CHECK(exit->timed_out);
    CHECK(exit->exit_code == 7);
    CHECK(Slurp(options.stdout_file) == "bye\n");
    CHECK(std::chrono::steady_clock::now() - start < 15s);
  }
  SECTION("a stop asked for while it runs stops it the same way, as stopped") {
    const std::string id = containers.Id("stop");
    RunOptions options = containers.Options(id);
    options.timeout = 60s;
    options.grace = 20s;
    core::StopFlag stop;
    options.stop = &stop;
    // Set from the thread that reads its output, once its trap is set.
    options.on_stdout = [&stop](std::string_view data) {
      if (data.find("ready") != std::string_view::npos) stop.Set();
    };
    auto exit = containers.runtime().Run(
        containers.Bundle(
            id, {"sh", "-c", "trap 'echo bye; exit 7' TERM; echo ready; sleep 100 & wait"}),
        id, options);
    REQUIRE(exit.ok());
    CHECK(exit->stopped);
    CHECK_FALSE(exit->timed_out);
    CHECK(exit->exit_code == 7);
    CHECK(Slurp(options.stdout_file) == "ready\nbye\n");
    CHECK_FALSE(containers.Listed(id, ""));
  }
}

TEST_CASE("RuncRuntime runs a container on an overlay root", "[runc]") {
  auto runc = Containers::Runc();
  if (!runc) return;
  Containers containers(*runc);
  const fs::path top = containers.temp() / "layers" / "top";
  fs::create_directories(top);
  std::ofstream(top / "message") << "from the top layer\n";
  const bool overlay = containers.limits().overlayfs;
  if (!overlay) WARN("overlayfs does not work here: the root is a copy");
  auto root =
      ContainerRoot::Create({containers.rootfs(), top}, containers.temp() / "root", overlay);
  REQUIRE(root.ok());
  const std::string id = containers.Id("overlay");
  RunOptions options = containers.Options(id);
  auto exit = containers.runtime().Run(
      containers.Bundle(id, {"sh", "-c", "cat /message; echo written > /new"}, {"PATH=/bin"},
                        root->rootfs()),
      id, options);
  REQUIRE(exit.ok());
  CHECK(exit->exit_code == 0);
  CHECK(Slurp(options.stdout_file) == "from the top layer\n");
  CHECK(Slurp(root->rootfs() / "new") == "written\n");
  CHECK_FALSE(fs::exists(containers.rootfs() / "new"));  // the lower layer is untouched
  REQUIRE(root->Remove().ok());
}

TEST_CASE("RuncRuntime lists the containers it runs", "[runc]") {
  auto runc = Containers::Runc();
  if (!runc) return;
  Containers containers(*runc);
  auto empty = containers.runtime().List();
  REQUIRE(empty.ok());
  CHECK(empty->empty());  // runc says null for a root with nothing

  const std::string id = containers.Id("listed");
  const fs::path bundle = containers.Bundle(id, {"sleep", "100"});
  RunOptions options = containers.Options(id);
  options.timeout = 20s;
  options.grace = 100ms;
  core::Result<ContainerExit> exit = core::Error{};
  std::thread running([&] { exit = containers.runtime().Run(bundle, id, options); });
  bool seen = false;
  for (int attempt = 0; attempt < 100 && !seen; ++attempt) {
    std::this_thread::sleep_for(100ms);
    seen = containers.Listed(id, "running");
  }
  CHECK(seen);
  auto listed = containers.runtime().List();
  REQUIRE(listed.ok());
  auto state = std::find_if(listed->begin(), listed->end(),
                            [&](const ContainerState& item) { return item.id == id; });
  REQUIRE(state != listed->end());
  CHECK(state->pid > 0);
  CHECK(state->bundle == bundle);
  // Its cgroup is under gantry's parent, with the memory limit of the bundle.
  const HostLimits& limits = containers.limits();
  if (limits.memory_limits) {
    const fs::path cgroup =
        limits.cgroups == HostLimits::Cgroups::kV2
            ? fs::path("/sys/fs/cgroup/gantry") / id / "memory.max"
            : fs::path("/sys/fs/cgroup/memory/gantry") / id / "memory.limit_in_bytes";
    CHECK(Slurp(cgroup) == std::to_string(256 << 20) + "\n");
  }
  // Stopping it from outside, as the agent does: Run reports the kill.
  CHECK(containers.runtime().Kill(id, SIGKILL).ok());
  running.join();
  REQUIRE(exit.ok());
  CHECK(exit->exit_code == 128 + SIGKILL);
  CHECK_FALSE(exit->timed_out);
  listed = containers.runtime().List();
  REQUIRE(listed.ok());
  CHECK(listed->empty());
}

TEST_CASE("RuncRuntime's bundles pass this host's rlimits and cgroups", "[runc]") {
  auto runc = Containers::Runc();
  if (!runc) return;
  Containers containers(*runc);
  const std::string id = containers.Id("rlimits");
  RunOptions options = containers.Options(id);
  auto exit = containers.runtime().Run(containers.Bundle(id, {"sh", "-c", "ulimit -n; ulimit -Hn"}),
                                       id, options);
  REQUIRE(exit.ok());
  INFO("stderr: " << Slurp(options.stderr_file));
  CHECK(exit->exit_code == 0);
  const std::string files =
      std::to_string(std::min(kContainerOpenFiles, containers.limits().nofile_hard));
  CHECK(Slurp(options.stdout_file) == files + "\n" + files + "\n");
}

TEST_CASE("RuncRuntime says what runc said when it fails", "[runc]") {
  auto runc = Containers::Runc();
  if (!runc) return;
  Containers containers(*runc);
  const std::string id = containers.Id("missing");
  RunOptions options = containers.Options(id);
  auto exit =
      containers.runtime().Run(containers.Bundle(id, {"/bin/no-such-program"}), id, options);
  REQUIRE_FALSE(exit.ok());
  CHECK(exit.error().message.find("no-such-program") != std::string::npos);
  CHECK_FALSE(containers.Listed(id, ""));

  auto killed = containers.runtime().Kill("gantry-test-never-made", SIGTERM);
  REQUIRE_FALSE(killed.ok());
  CHECK(killed.error().message.find("does not exist") != std::string::npos);
  CHECK(containers.runtime().Delete("gantry-test-never-made").ok());

  auto version = containers.runtime().Version();
  REQUIRE(version.ok());
  CHECK(version->rfind("runc version ", 0) == 0);

  RuncRuntime missing("/nonexistent/runc", containers.temp() / "state");
  CHECK_FALSE(missing.Version().ok());
  CHECK_FALSE(missing.List().ok());
}

}  // namespace
}  // namespace agents
