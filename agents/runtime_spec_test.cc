#include "agents/runtime_spec.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "agents/runc_runtime.h"
#include "core/atomic_file.h"
#include "tests/skip.h"
#include "tests/temp_dir.h"

namespace agents {
namespace {

using nlohmann::json;

ContainerSpec Spec() {
  ContainerSpec spec;
  spec.id = "fn-abc.1";
  spec.rootfs = "/var/lib/gantry/roots/fn-abc.1/rootfs";
  spec.args = {"python3", "app.py"};
  spec.env = {"PATH=/usr/bin:/bin", "PORT=8000"};
  spec.cwd = "/srv";
  spec.uid = 1000;
  spec.gid = 1001;
  spec.hostname = "fn-abc";
  return spec;
}

HostLimits Host() {
  HostLimits limits;
  limits.cgroups = HostLimits::Cgroups::kV2;
  limits.memory_limits = true;
  limits.cpu_limits = true;
  limits.nofile_hard = UINT64_MAX;
  limits.nproc_hard = UINT64_MAX;
  limits.overlayfs = true;
  return limits;
}

std::vector<std::string> Destinations(const json& config) {
  std::vector<std::string> destinations;
  for (const json& mount : config["mounts"]) destinations.push_back(mount["destination"]);
  return destinations;
}

json Rlimit(const json& config, const std::string& type) {
  for (const json& rlimit : config["process"]["rlimits"]) {
    if (rlimit["type"] == type) return rlimit;
  }
  return nullptr;
}

TEST_CASE("RuntimeConfig writes the process, root and isolation of a container", "[runtime_spec]") {
  json config = RuntimeConfig(Spec(), Host());
  CHECK(config["ociVersion"] == "1.0.2");
  const json& process = config["process"];
  CHECK(process["terminal"] == false);
  CHECK(process["user"] == json{{"uid", 1000}, {"gid", 1001}});
  CHECK(process["args"] == json{"python3", "app.py"});
  CHECK(process["env"] == json{"PATH=/usr/bin:/bin", "PORT=8000"});
  CHECK(process["cwd"] == "/srv");
  CHECK(process["noNewPrivileges"] == true);
  const json& capabilities = process["capabilities"];
  CHECK(capabilities["bounding"].size() == 14);
  for (const char* set : {"bounding", "effective", "permitted"}) {
    INFO(set);
    CHECK(capabilities[set] == capabilities["bounding"]);
  }
  CHECK(capabilities["inheritable"].empty());
  CHECK(capabilities["ambient"].empty());
  for (const char* wanted : {"CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_KILL", "CAP_AUDIT_WRITE"}) {
    CHECK(std::find(capabilities["bounding"].begin(), capabilities["bounding"].end(), wanted) !=
          capabilities["bounding"].end());
  }
  for (const char* unwanted : {"CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_SYS_PTRACE"}) {
    CHECK(std::find(capabilities["bounding"].begin(), capabilities["bounding"].end(), unwanted) ==
          capabilities["bounding"].end());
  }

  CHECK(config["root"] ==
        json{{"path", "/var/lib/gantry/roots/fn-abc.1/rootfs"}, {"readonly", false}});
  CHECK(config["hostname"] == "fn-abc");
  const json& section = config["linux"];
  CHECK(section["cgroupsPath"] == "/gantry/fn-abc.1");
  std::vector<std::string> namespaces;
  for (const json& item : section["namespaces"]) namespaces.push_back(item["type"]);
  CHECK(namespaces == std::vector<std::string>{"pid", "ipc", "uts", "mount", "network"});
  CHECK(section["maskedPaths"].size() == 10);
  CHECK(section["maskedPaths"][2] == "/proc/kcore");
  CHECK(section["readonlyPaths"] ==
        json{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"});
  CHECK(Destinations(config) == std::vector<std::string>{"/proc", "/dev", "/dev/pts", "/dev/shm",
                                                         "/dev/mqueue", "/sys", "/tmp"});
  CHECK(config["mounts"][5]["options"].back() == "ro");

  ContainerSpec nameless = Spec();
  nameless.hostname.clear();
  CHECK_FALSE(RuntimeConfig(nameless, Host()).contains("hostname"));
}

TEST_CASE("RuntimeConfig clamps rlimits to the host's hard limits", "[runtime_spec]") {
  HostLimits limits = Host();
  SECTION("an unlimited host gives what containers want") {
    json config = RuntimeConfig(Spec(), limits);
    CHECK(Rlimit(config, "RLIMIT_NOFILE") ==
          json{{"type", "RLIMIT_NOFILE"}, {"hard", 1048576}, {"soft", 1048576}});
    CHECK(Rlimit(config, "RLIMIT_NPROC")["hard"] == kContainerProcesses);
  }
  SECTION("a low hard limit is the limit, soft and hard") {
    limits.nofile_hard = 20000;
    limits.nproc_hard = 4096;
    json config = RuntimeConfig(Spec(), limits);
    CHECK(Rlimit(config, "RLIMIT_NOFILE") ==
          json{{"type", "RLIMIT_NOFILE"}, {"hard", 20000}, {"soft", 20000}});
    CHECK(Rlimit(config, "RLIMIT_NPROC") ==
          json{{"type", "RLIMIT_NPROC"}, {"hard", 4096}, {"soft", 4096}});
  }
  SECTION("an unknown limit is left to runc") {
    limits.nofile_hard = 0;
    json config = RuntimeConfig(Spec(), limits);
    CHECK(Rlimit(config, "RLIMIT_NOFILE").is_null());
    CHECK_FALSE(Rlimit(config, "RLIMIT_NPROC").is_null());
  }
}

TEST_CASE("RuntimeConfig sets memory and CPU limits only where the host allows", "[runtime_spec]") {
  ContainerSpec spec = Spec();
  spec.memory_bytes = 512ull << 20;
  spec.cpus = 1.5;
  HostLimits limits = Host();
  json resources = RuntimeConfig(spec, limits)["linux"]["resources"];
  CHECK(resources["memory"] == json{{"limit", 512ull << 20}});
  CHECK(resources["cpu"] == json{{"quota", 150000}, {"period", 100000}});

  spec.cpus = 0.001;  // below the kernel's 1ms minimum
  CHECK(RuntimeConfig(spec, limits)["linux"]["resources"]["cpu"]["quota"] == 1000);

  limits.memory_limits = false;
  limits.cpu_limits = false;
  resources = RuntimeConfig(spec, limits)["linux"]["resources"];
  CHECK_FALSE(resources.contains("memory"));
  CHECK_FALSE(resources.contains("cpu"));

  // No limit asked: none written, whatever the host allows.
  resources = RuntimeConfig(Spec(), Host())["linux"]["resources"];
  CHECK_FALSE(resources.contains("memory"));
  CHECK_FALSE(resources.contains("cpu"));
}

TEST_CASE("RuntimeConfig binds mounts after the defaults, read-only when asked", "[runtime_spec]") {
  ContainerSpec spec = Spec();
  spec.mounts = {{"/var/lib/gantry/volumes/data", "/data", false},
                 {"/usr/lib/x86_64-linux-gnu/nvidia", "/usr/local/nvidia/lib", true}};
  json config = RuntimeConfig(spec, Host());
  REQUIRE(config["mounts"].size() == 9);
  CHECK(config["mounts"][7] == json{{"destination", "/data"},
                                    {"type", "bind"},
                                    {"source", "/var/lib/gantry/volumes/data"},
                                    {"options", {"rbind"}}});
  CHECK(config["mounts"][8]["options"] == json{"rbind", "ro"});
  CHECK(config["mounts"][8]["source"] == "/usr/lib/x86_64-linux-gnu/nvidia");
}

TEST_CASE("RuntimeConfig passes devices in with the host's numbers", "[runtime_spec]") {
  struct stat full {};
  REQUIRE(stat("/dev/full", &full) == 0);
  ContainerSpec spec = Spec();
  spec.devices = {"/dev/full", "/dev/no-such-device"};
  json section = RuntimeConfig(spec, Host())["linux"];
  REQUIRE(section["devices"].size() == 1);  // the missing one is left out
  CHECK(section["devices"][0] == json{{"path", "/dev/full"},
                                      {"type", "c"},
                                      {"major", major(full.st_rdev)},
                                      {"minor", minor(full.st_rdev)},
                                      {"fileMode", full.st_mode & 0777},
                                      {"uid", full.st_uid},
                                      {"gid", full.st_gid}});
  const json& rules = section["resources"]["devices"];
  CHECK(rules.front() == json{{"allow", false}, {"access", "rwm"}});
  CHECK(rules.back() == json{{"allow", true},
                             {"type", "c"},
                             {"major", major(full.st_rdev)},
                             {"minor", minor(full.st_rdev)},
                             {"access", "rwm"}});
  // The default set: null (1:3) ... and every pts (136, any minor).
  CHECK(rules[1] ==
        json{{"allow", true}, {"type", "c"}, {"major", 1}, {"minor", 3}, {"access", "rwm"}});
  CHECK(std::find(rules.begin(), rules.end(),
                  json{{"allow", true}, {"type", "c"}, {"major", 136}, {"access", "rwm"}}) !=
        rules.end());
  CHECK(rules.size() == 1 + 8 + 1);
}

TEST_CASE("WriteBundle writes config.json and refuses what runc would", "[runtime_spec]") {
  tests::TempDir temp;
  const auto bundle = temp.path() / "bundles" / "fn-abc.1";
  REQUIRE(WriteBundle(bundle, Spec(), Host()).ok());
  auto text = core::ReadFile(bundle / "config.json");
  REQUIRE(text.ok());
  CHECK(json::parse(*text) == RuntimeConfig(Spec(), Host()));

  ContainerSpec bad = Spec();
  bad.id = "a/b";
  CHECK_FALSE(WriteBundle(bundle, bad, Host()).ok());
  bad = Spec();
  bad.rootfs = "relative/rootfs";
  CHECK_FALSE(WriteBundle(bundle, bad, Host()).ok());
  bad = Spec();
  bad.args.clear();
  CHECK_FALSE(WriteBundle(bundle, bad, Host()).ok());
  bad = Spec();
  bad.devices = {"/dev/no-such-device"};
  auto refused = WriteBundle(bundle, bad, Host());
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().message.find("/dev/no-such-device") != std::string::npos);
  bad.devices = {"/etc/passwd"};
  CHECK_FALSE(WriteBundle(bundle, bad, Host()).ok());
}

TEST_CASE("RuntimeConfig takes a bind mount's own options", "[runtime_spec]") {
  ContainerSpec spec = Spec();
  spec.mounts = {{"/usr/lib/x86_64-linux-gnu/libcuda.so.550.90.07",
                  "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
                  false,
                  {"ro", "nosuid", "nodev", "bind"}},
                 {"/run/nvidia-persistenced/socket",
                  "/run/nvidia-persistenced/socket",
                  true,
                  {"nosuid", "noexec"}},
                 {"/srv/cache", "/cache", true, {"ro", "rbind"}}};
  json config = RuntimeConfig(spec, Host());
  REQUIRE(config["mounts"].size() == 10);
  CHECK(config["mounts"][7] == json{{"destination", "/usr/lib/x86_64-linux-gnu/libcuda.so.1"},
                                    {"type", "bind"},
                                    {"source", "/usr/lib/x86_64-linux-gnu/libcuda.so.550.90.07"},
                                    {"options", {"ro", "nosuid", "nodev", "bind"}}});
  // Neither bind nor rbind given: rbind first; read_only adds the ro not there.
  CHECK(config["mounts"][8]["options"] == json{"rbind", "nosuid", "noexec", "ro"});
  CHECK(config["mounts"][9]["options"] == json{"ro", "rbind"});
}

TEST_CASE("RuntimeConfig makes device nodes at their own path in the container", "[runtime_spec]") {
  struct stat null {};
  REQUIRE(stat("/dev/null", &null) == 0);
  ContainerSpec spec = Spec();
  spec.devices = {"/dev/null"};
  DeviceNode renamed;  // the host's /dev/null as /dev/nvidia-test, read and write only
  renamed.path = "/dev/nvidia-test";
  renamed.host_path = "/dev/null";
  renamed.permissions = "rw";
  DeviceNode given;  // not on this host: all said
  given.path = "/dev/nvidia7";
  given.type = "c";
  given.major = 195;
  given.minor = 7;
  DeviceNode replacing;  // the same container path as a `devices` entry
  replacing.path = "/dev/null";
  replacing.file_mode = 0600;
  replacing.uid = 1000;
  DeviceNode missing;  // nothing to tell its numbers from: left out
  missing.path = "/dev/no-such-device";
  spec.device_nodes = {renamed, given, replacing, missing};

  json section = RuntimeConfig(spec, Host())["linux"];
  const json& devices = section["devices"];
  REQUIRE(devices.size() == 3);
  CHECK(devices[0] == json{{"path", "/dev/nvidia-test"},
                           {"type", "c"},
                           {"major", 1},
                           {"minor", 3},
                           {"fileMode", null.st_mode & 0777},
                           {"uid", null.st_uid},
                           {"gid", null.st_gid}});
  CHECK(devices[1] == json{{"path", "/dev/nvidia7"}, {"type", "c"}, {"major", 195}, {"minor", 7}});
  CHECK(devices[2] == json{{"path", "/dev/null"},
                           {"type", "c"},
                           {"major", 1},
                           {"minor", 3},
                           {"fileMode", 0600},
                           {"uid", 1000},
                           {"gid", null.st_gid}});
  const json& rules = section["resources"]["devices"];
  REQUIRE(rules.size() == 1 + 8 + 3);
  CHECK(rules[9] ==
        json{{"allow", true}, {"type", "c"}, {"major", 1}, {"minor", 3}, {"access", "rw"}});
  CHECK(rules[10] ==
        json{{"allow", true}, {"type", "c"}, {"major", 195}, {"minor", 7}, {"access", "rwm"}});

  SECTION("a FIFO gets no cgroup rule, an unbuffered device a character one") {
    DeviceNode fifo;
    fifo.path = "/dev/fifo";
    fifo.type = "p";
    DeviceNode unbuffered;
    unbuffered.path = "/dev/unbuffered";
    unbuffered.type = "u";
    unbuffered.major = 240;
    spec.devices.clear();
    spec.device_nodes = {fifo, unbuffered};
    section = RuntimeConfig(spec, Host())["linux"];
    CHECK(section["devices"] ==
          json{{{"path", "/dev/fifo"}, {"type", "p"}},
               {{"path", "/dev/unbuffered"}, {"type", "u"}, {"major", 240}, {"minor", 0}}});
    CHECK(section["resources"]["devices"].size() == 1 + 8 + 1);
    CHECK(section["resources"]["devices"].back() ==
          json{{"allow", true}, {"type", "c"}, {"major", 240}, {"minor", 0}, {"access", "rwm"}});
  }
}

TEST_CASE("RuntimeConfig writes hooks by stage, in order", "[runtime_spec]") {
  ContainerSpec spec = Spec();
  CHECK_FALSE(RuntimeConfig(spec, Host()).contains("hooks"));
  spec.hooks = {
      {HookStage::kCreateContainer,
       "/usr/bin/nvidia-cdi-hook",
       {"nvidia-cdi-hook", "update-ldcache", "--folder", "/usr/lib/x86_64-linux-gnu"},
       {},
       {}},
      {HookStage::kPoststop, "/usr/local/bin/cleanup", {}, {"DEBUG=1"}, 5},
      {HookStage::kCreateContainer,
       "/usr/bin/nvidia-cdi-hook",
       {"nvidia-cdi-hook", "chmod"},
       {},
       {}},
      {HookStage::kCreateRuntime, "/usr/bin/true", {"true"}, {}, {}},
      {HookStage::kPrestart, "/usr/bin/true", {}, {}, {}},
      {HookStage::kStartContainer, "/bin/true", {}, {}, {}},
      {HookStage::kPoststart, "/usr/bin/true", {}, {}, 1},
  };
  json hooks = RuntimeConfig(spec, Host())["hooks"];
  CHECK(hooks["createContainer"] ==
        json{{{"path", "/usr/bin/nvidia-cdi-hook"},
              {"args",
               {"nvidia-cdi-hook", "update-ldcache", "--folder", "/usr/lib/x86_64-linux-gnu"}}},
             {{"path", "/usr/bin/nvidia-cdi-hook"}, {"args", {"nvidia-cdi-hook", "chmod"}}}});
  CHECK(hooks["poststop"] ==
        json{{{"path", "/usr/local/bin/cleanup"}, {"env", {"DEBUG=1"}}, {"timeout", 5}}});
  CHECK(hooks["createRuntime"] == json{{{"path", "/usr/bin/true"}, {"args", {"true"}}}});
  CHECK(hooks["prestart"].size() == 1);
  CHECK(hooks["startContainer"].size() == 1);
  CHECK(hooks["poststart"][0]["timeout"] == 1);
  CHECK(hooks.size() == 6);
}

TEST_CASE("WriteBundle refuses device nodes and hooks runc would", "[runtime_spec]") {
  tests::TempDir temp;
  const auto bundle = temp.path() / "bundle";
  auto refusal = [&](const ContainerSpec& spec) {
    auto written = WriteBundle(bundle, spec, Host());
    REQUIRE_FALSE(written.ok());
    CHECK(written.error().code == core::ErrorCode::kInvalidArgument);
    return written.error().message;
  };
  ContainerSpec spec = Spec();
  DeviceNode node;
  node.path = "/dev/nvidia0";
  node.type = "c";
  node.major = 195;
  spec.device_nodes = {node};
  REQUIRE(WriteBundle(bundle, spec, Host()).ok());  // all said: no host node needed

  ContainerSpec bad = spec;
  bad.device_nodes[0].path = "dev/nvidia0";
  CHECK_THAT(refusal(bad), Catch::Contains("not absolute"));
  bad = spec;
  bad.device_nodes[0].type = "x";
  CHECK_THAT(refusal(bad), Catch::Contains("none of c, b, u, p"));
  bad = spec;
  bad.device_nodes[0].permissions = "rwx";
  CHECK_THAT(refusal(bad), Catch::Contains("permissions"));
  bad = spec;
  bad.device_nodes[0].major.reset();
  CHECK_THAT(refusal(bad), Catch::Contains("/dev/nvidia0"));  // not on this host
  bad = spec;
  bad.device_nodes[0].type.clear();
  bad.device_nodes[0].host_path = "/dev/null";
  bad.device_nodes[0].type = "b";  // /dev/null is a character device
  CHECK_THAT(refusal(bad), Catch::Contains("of type c, not b"));
  bad = spec;
  bad.hooks = {{HookStage::kCreateContainer, "nvidia-cdi-hook", {}, {}, {}}};
  CHECK_THAT(refusal(bad), Catch::Contains("not an absolute path"));
  bad.hooks = {{HookStage::kCreateContainer, "/usr/bin/nvidia-cdi-hook", {}, {}, 0}};
  CHECK_THAT(refusal(bad), Catch::Contains("timeout"));
}

std::string Slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

// What CDI asks of runc, run for real: hooks at three stages (a
// createContainer hook runs in the container's namespaces before
// pivot_root, so the host's paths are still there, as nvidia-cdi-hook
// needs), a device node under another name, a bind mount with its own
// options. Skipped without root or runc.
TEST_CASE("runc runs a bundle's hooks, renamed device nodes and optioned mounts",
          "[runtime_spec][runc]") {
  if (!tests::RootOrSkip("runc needs root")) return;
  std::filesystem::path runc;
  for (const char* candidate : {"/usr/local/sbin/runc", "/usr/sbin/runc", "/usr/bin/runc"}) {
    if (access(candidate, X_OK) == 0) {
      runc = candidate;
      break;
    }
  }
  if (runc.empty()) {
    tests::Skip("runc is not installed");
    return;
  }
  namespace fs = std::filesystem;
  tests::TempDir temp;
  const fs::path rootfs = temp.path() / "rootfs";
  REQUIRE(fs::exists("/bin/busybox"));
  fs::create_directories(rootfs / "bin");
  fs::copy_file("/bin/busybox", rootfs / "bin/busybox");
  for (const char* applet : {"sh", "cat", "echo"})
    fs::create_symlink("busybox", rootfs / "bin" / applet);
  const fs::path driver = temp.Write("driver.txt", "driver 550\n");
  const fs::path out = temp.path() / "hooks";
  fs::create_directories(out);

  ContainerSpec spec;
  spec.id = "gantry-test-" + std::to_string(getpid()) + "-cdi-hooks";
  spec.rootfs = rootfs;
  spec.args = {"sh", "-c",
               "test -c /dev/gantry-null && echo gone > /dev/gantry-null && cat /etc/driver.txt "
               "&& ! echo x 2>/dev/null > /etc/driver.txt && echo ok"};
  spec.env = {"PATH=/bin"};
  DeviceNode null;
  null.path = "/dev/gantry-null";
  null.host_path = "/dev/null";
  spec.device_nodes = {null};
  spec.mounts.push_back({driver, "/etc/driver.txt", false, {"ro", "nosuid", "nodev", "bind"}});
  auto shell = [&](HookStage stage, const std::string& script) {
    return Hook{stage, "/bin/sh", {"sh", "-c", script}, {"PATH=/usr/bin:/bin"}, 30};
  };
  spec.hooks = {
      shell(HookStage::kCreateRuntime, "cat > " + (out / "create-runtime.json").string()),
      shell(HookStage::kCreateContainer,
            "echo in-container-namespace > " + (out / "create-container").string()),
      shell(HookStage::kPoststop, "echo stopped > " + (out / "poststop").string()),
  };
  const HostLimits limits = DetectHostLimits();
  const fs::path bundle = temp.path() / "bundle";
  REQUIRE(WriteBundle(bundle, spec, limits).ok());

  RuncRuntime runtime(runc, temp.path() / "state");
  RunOptions options;
  options.stdout_file = temp.path() / "stdout";
  options.stderr_file = temp.path() / "stderr";
  options.timeout = std::chrono::seconds(60);
  auto exit = runtime.Run(bundle, spec.id, options);
  REQUIRE(exit.ok());
  INFO(Slurp(options.stderr_file));
  CHECK(exit->exit_code == 0);
  CHECK(Slurp(options.stdout_file) == "driver 550\nok\n");
  // Each hook got the container's state on stdin.
  json state = json::parse(Slurp(out / "create-runtime.json"), nullptr, false);
  CHECK(state["id"] == spec.id);
  CHECK(Slurp(out / "create-container") == "in-container-namespace\n");
  CHECK(Slurp(out / "poststop") == "stopped\n");
}

}  // namespace
}  // namespace agents
