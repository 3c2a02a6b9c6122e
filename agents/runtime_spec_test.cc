#include "agents/runtime_spec.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "core/atomic_file.h"
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

}  // namespace
}  // namespace agents
