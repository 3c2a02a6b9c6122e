#include "agents/cdi_spec.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <string>
#include <vector>

#include "tests/temp_dir.h"

namespace agents {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr char kUuid0[] = "GPU-4cf8db2d-06c0-7d70-1a51-e59b25b2c16c";
constexpr char kUuid1[] = "GPU-9a1e52b1-3b4e-8f2c-77d0-0c5e2f6a9d11";

// What `nvidia-ctk cdi generate --device-name-strategy=index
// --device-name-strategy=uuid` (toolkit 1.17) writes for a host with two
// H100s, cut to a few of its driver files.
constexpr char kNvidiaCtkYaml[] = R"(---
cdiVersion: 0.5.0
containerEdits:
  deviceNodes:
  - path: /dev/nvidia-modeset
  - path: /dev/nvidia-uvm
  - path: /dev/nvidia-uvm-tools
  - path: /dev/nvidiactl
  env:
  - NVIDIA_VISIBLE_DEVICES=void
  hooks:
  - args:
    - nvidia-cdi-hook
    - create-symlinks
    - --link
    - libnvidia-allocator.so.1::/usr/lib/x86_64-linux-gnu/gbm/nvidia-drm_gbm.so
    env:
    - NVIDIA_CTK_DEBUG=false
    hookName: createContainer
    path: /usr/bin/nvidia-cdi-hook
  - args:
    - nvidia-cdi-hook
    - enable-cuda-compat
    - --host-driver-version=550.90.07
    hookName: createContainer
    path: /usr/bin/nvidia-cdi-hook
  - args:
    - nvidia-cdi-hook
    - update-ldcache
    - --folder
    - /usr/lib/x86_64-linux-gnu
    hookName: createContainer
    path: /usr/bin/nvidia-cdi-hook
  mounts:
  - containerPath: /usr/lib/x86_64-linux-gnu/libcuda.so.550.90.07
    hostPath: /usr/lib/x86_64-linux-gnu/libcuda.so.550.90.07
    options:
    - ro
    - nosuid
    - nodev
    - bind
  - containerPath: /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.550.90.07
    hostPath: /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.550.90.07
    options:
    - ro
    - nosuid
    - nodev
    - bind
  - containerPath: /usr/bin/nvidia-smi
    hostPath: /usr/bin/nvidia-smi
    options:
    - ro
    - nosuid
    - nodev
    - bind
  - containerPath: /run/nvidia-persistenced/socket
    hostPath: /run/nvidia-persistenced/socket
    options:
    - ro
    - nosuid
    - nodev
    - bind
    - noexec
devices:
- containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
    - path: /dev/dri/card1
    - path: /dev/dri/renderD128
    hooks:
    - args:
      - nvidia-cdi-hook
      - create-symlinks
      - --link
      - ../card1::/dev/dri/by-path/pci-0000:18:00.0-card
      hookName: createContainer
      path: /usr/bin/nvidia-cdi-hook
    - args:
      - nvidia-cdi-hook
      - chmod
      - --mode
      - "755"
      - --path
      - /dev/dri
      hookName: createContainer
      path: /usr/bin/nvidia-cdi-hook
  name: "0"
- containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
    - path: /dev/dri/card1
    - path: /dev/dri/renderD128
  name: GPU-4cf8db2d-06c0-7d70-1a51-e59b25b2c16c
- containerEdits:
    deviceNodes:
    - path: /dev/nvidia1
    - path: /dev/dri/card2
    - path: /dev/dri/renderD129
  name: "1"
- containerEdits:
    deviceNodes:
    - path: /dev/nvidia1
    - path: /dev/dri/card2
    - path: /dev/dri/renderD129
  name: GPU-9a1e52b1-3b4e-8f2c-77d0-0c5e2f6a9d11
- containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
    - path: /dev/dri/card1
    - path: /dev/dri/renderD128
    - path: /dev/nvidia1
    - path: /dev/dri/card2
    - path: /dev/dri/renderD129
  name: all
kind: nvidia.com/gpu
)";

// The same host as an older toolkit (1.14, `nvidia-ctk cdi generate
// --format=json`, index names only) writes it: hooks through `nvidia-ctk
// hook`, and a device node with its numbers spelled out.
constexpr char kNvidiaCtkJson[] = R"({
  "cdiVersion": "0.6.0",
  "kind": "nvidia.com/gpu",
  "devices": [
    {"name": "0", "containerEdits": {"deviceNodes": [{"path": "/dev/nvidia0", "type": "c", "major": 195, "minor": 0}]}},
    {"name": "1", "containerEdits": {"deviceNodes": [{"path": "/dev/nvidia1", "type": "c", "major": 195, "minor": 1}]}},
    {"name": "all", "containerEdits": {"deviceNodes": [{"path": "/dev/nvidia0"}, {"path": "/dev/nvidia1"}]}}
  ],
  "containerEdits": {
    "env": ["NVIDIA_VISIBLE_DEVICES=void"],
    "deviceNodes": [{"path": "/dev/nvidiactl"}, {"path": "/dev/nvidia-uvm"}],
    "hooks": [
      {"hookName": "createContainer", "path": "/usr/bin/nvidia-ctk",
       "args": ["nvidia-ctk", "hook", "update-ldcache", "--folder", "/usr/lib/x86_64-linux-gnu"],
       "timeout": 10}
    ],
    "mounts": [
      {"hostPath": "/usr/lib/x86_64-linux-gnu/libcuda.so.535.104.05",
       "containerPath": "/usr/lib/x86_64-linux-gnu/libcuda.so.535.104.05",
       "options": ["ro", "nosuid", "nodev", "bind"]}
    ]
  }
})";

constexpr char kOtherKind[] = R"(cdiVersion: 0.6.0
kind: vendor.com/fpga
devices:
- name: fpga0
  containerEdits:
    deviceNodes:
    - path: relative/is/not/our/business
)";

Gpu H100(int index, std::string uuid) {
  return Gpu{index, "H100", "NVIDIA H100 80GB HBM3", 80ull << 30, std::move(uuid)};
}

// A spec folder in a temp dir: /etc/cdi, or /var/run/cdi.
struct SpecDirs {
  tests::TempDir temp;
  fs::path etc() const { return temp.path() / "etc/cdi"; }
  fs::path run() const { return temp.path() / "run/cdi"; }
  std::vector<fs::path> dirs() const { return {etc(), run()}; }
  fs::path Write(const std::string& relative, const std::string& content) const {
    return temp.Write(relative, content);
  }
};

CdiEdits EditsOf(const std::vector<Gpu>& gpus, const std::vector<fs::path>& dirs) {
  auto edits = CdiEditsForGpus(gpus, dirs);
  REQUIRE(edits.ok());
  REQUIRE(edits->has_value());
  return **edits;
}

std::vector<std::string> NodePaths(const std::vector<DeviceNode>& nodes) {
  std::vector<std::string> paths;
  for (const DeviceNode& node : nodes) paths.push_back(node.path);
  return paths;
}

std::vector<std::string> Destinations(const std::vector<BindMount>& mounts) {
  std::vector<std::string> destinations;
  for (const BindMount& mount : mounts) destinations.push_back(mount.destination);
  return destinations;
}

// The second argument of each hook: create-symlinks, update-ldcache, ...
std::vector<std::string> HookVerbs(const std::vector<Hook>& hooks) {
  std::vector<std::string> verbs;
  for (const Hook& hook : hooks) verbs.push_back(hook.args.size() > 1 ? hook.args[1] : "");
  return verbs;
}

core::Error ErrorOf(const SpecDirs& dirs) {
  auto edits = CdiEditsForGpus({H100(0, kUuid0)}, dirs.dirs());
  REQUIRE_FALSE(edits.ok());
  return edits.error();
}

TEST_CASE("CdiEditsForGpus gives one GPU of an nvidia-ctk YAML spec, found by UUID", "[cdi]") {
  SpecDirs dirs;
  dirs.Write("etc/cdi/nvidia.yaml", kNvidiaCtkYaml);
  // Index 0 but GPU 1's UUID: the UUID decides (CUDA's order need not be NVML's).
  CdiEdits edits = EditsOf({H100(0, kUuid1)}, dirs.dirs());
  CHECK(NodePaths(edits.device_nodes) ==
        std::vector<std::string>{"/dev/nvidia-modeset", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools",
                                 "/dev/nvidiactl", "/dev/nvidia1", "/dev/dri/card2",
                                 "/dev/dri/renderD129"});
  CHECK(edits.env == std::vector<std::string>{"NVIDIA_VISIBLE_DEVICES=void",
                                              std::string("CUDA_VISIBLE_DEVICES=") + kUuid1});
  CHECK(Destinations(edits.mounts) ==
        std::vector<std::string>{"/usr/lib/x86_64-linux-gnu/libcuda.so.550.90.07",
                                 "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.550.90.07",
                                 "/usr/bin/nvidia-smi", "/run/nvidia-persistenced/socket"});
  const BindMount& libcuda = edits.mounts[0];
  CHECK(libcuda.source == "/usr/lib/x86_64-linux-gnu/libcuda.so.550.90.07");
  CHECK(libcuda.options == std::vector<std::string>{"ro", "nosuid", "nodev", "bind"});
  CHECK(edits.mounts[3].options.back() == "noexec");
  REQUIRE(edits.hooks.size() == 3);  // the spec's; device "GPU-9a1e…" has none
  CHECK(HookVerbs(edits.hooks) ==
        std::vector<std::string>{"create-symlinks", "enable-cuda-compat", "update-ldcache"});
  const Hook& symlinks = edits.hooks[0];
  CHECK(symlinks.stage == HookStage::kCreateContainer);
  CHECK(symlinks.path == "/usr/bin/nvidia-cdi-hook");
  CHECK(symlinks.env == std::vector<std::string>{"NVIDIA_CTK_DEBUG=false"});
  CHECK_FALSE(symlinks.timeout_seconds.has_value());
  for (const DeviceNode& node : edits.device_nodes) {
    INFO(node.path);
    CHECK(node.host_path.empty());
    CHECK(node.type.empty());  // taken from the host's node when the bundle is written
    CHECK_FALSE(node.major.has_value());
    CHECK(node.permissions == "rwm");
  }
}

TEST_CASE("CdiEditsForGpus merges two GPUs: the spec's edits once, each device's after", "[cdi]") {
  SpecDirs dirs;
  dirs.Write("etc/cdi/nvidia.yaml", kNvidiaCtkYaml);
  CdiEdits edits = EditsOf({H100(0, kUuid0), H100(1, kUuid1)}, dirs.dirs());
  CHECK(NodePaths(edits.device_nodes) ==
        std::vector<std::string>{"/dev/nvidia-modeset", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools",
                                 "/dev/nvidiactl", "/dev/nvidia0", "/dev/dri/card1",
                                 "/dev/dri/renderD128", "/dev/nvidia1", "/dev/dri/card2",
                                 "/dev/dri/renderD129"});
  CHECK(edits.mounts.size() == 4);
  CHECK(edits.hooks.size() == 3);  // by UUID: device "0"'s two hooks are not GPU-4cf8…'s
  CHECK(edits.env ==
        std::vector<std::string>{"NVIDIA_VISIBLE_DEVICES=void",
                                 std::string("CUDA_VISIBLE_DEVICES=") + kUuid0 + "," + kUuid1});
}

TEST_CASE("CdiEditsForGpus finds a GPU by its index when the spec has no UUID names", "[cdi]") {
  SpecDirs dirs;
  dirs.Write("etc/cdi/nvidia.json", kNvidiaCtkJson);
  CdiEdits edits = EditsOf({H100(1, kUuid1)}, dirs.dirs());
  CHECK(NodePaths(edits.device_nodes) ==
        std::vector<std::string>{"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia1"});
  const DeviceNode& gpu = edits.device_nodes.back();
  CHECK(gpu.type == "c");
  CHECK(gpu.major == 195);
  CHECK(gpu.minor == 1);
  REQUIRE(edits.hooks.size() == 1);
  CHECK(edits.hooks[0].path == "/usr/bin/nvidia-ctk");
  CHECK(edits.hooks[0].args == std::vector<std::string>{"nvidia-ctk", "hook", "update-ldcache",
                                                        "--folder", "/usr/lib/x86_64-linux-gnu"});
  CHECK(edits.hooks[0].timeout_seconds == 10);
  CHECK(Destinations(edits.mounts) ==
        std::vector<std::string>{"/usr/lib/x86_64-linux-gnu/libcuda.so.535.104.05"});

  // A device that is the index's and the UUID's both: "0" carries hooks.
  fs::remove(dirs.etc() / "nvidia.json");
  dirs.Write("etc/cdi/nvidia.yaml", kNvidiaCtkYaml);
  CdiEdits by_index = EditsOf({H100(0, "GPU-not-in-the-spec")}, dirs.dirs());
  CHECK(HookVerbs(by_index.hooks) ==
        std::vector<std::string>{"create-symlinks", "enable-cuda-compat", "update-ldcache",
                                 "create-symlinks", "chmod"});
  CHECK(by_index.hooks.back().args == std::vector<std::string>{"nvidia-cdi-hook", "chmod", "--mode",
                                                               "755", "--path", "/dev/dri"});
}

TEST_CASE("CdiEditsForGpus falls back (nullopt) where CDI cannot give the GPUs", "[cdi]") {
  SpecDirs dirs;
  SECTION("no spec folders") {
    auto edits = CdiEditsForGpus({H100(0, kUuid0)}, dirs.dirs());
    REQUIRE(edits.ok());
    CHECK_FALSE(edits->has_value());
  }
  SECTION("only specs of other kinds, and files that are not specs") {
    dirs.Write("etc/cdi/fpga.yaml", kOtherKind);
    dirs.Write("etc/cdi/README", "not a spec");
    dirs.Write("etc/cdi/nvidia.yaml.bak", "{not: [json");
    auto edits = CdiEditsForGpus({H100(0, kUuid0)}, dirs.dirs());
    REQUIRE(edits.ok());
    CHECK_FALSE(edits->has_value());
  }
  SECTION("a GPU the spec does not have") {
    dirs.Write("run/cdi/nvidia.yaml", kNvidiaCtkYaml);
    auto edits = CdiEditsForGpus({H100(0, kUuid0), H100(7, "GPU-elsewhere")}, dirs.dirs());
    REQUIRE(edits.ok());
    CHECK_FALSE(edits->has_value());
  }
  SECTION("no GPUs") {
    dirs.Write("etc/cdi/nvidia.yaml", kNvidiaCtkYaml);
    auto edits = CdiEditsForGpus({}, dirs.dirs());
    REQUIRE(edits.ok());
    CHECK_FALSE(edits->has_value());
  }
}

TEST_CASE("CdiEditsForGpus ignores specs of other kinds beside an NVIDIA one", "[cdi]") {
  SpecDirs dirs;
  dirs.Write("etc/cdi/a-fpga.yml", kOtherKind);
  dirs.Write("etc/cdi/nvidia.yaml", kNvidiaCtkYaml);
  CdiEdits edits = EditsOf({H100(0, kUuid0)}, dirs.dirs());
  CHECK(edits.device_nodes.size() == 7);
}

TEST_CASE("CdiEditsForGpus lets /var/run/cdi override /etc/cdi, device by device", "[cdi]") {
  SpecDirs dirs;
  dirs.Write("etc/cdi/nvidia.json", kNvidiaCtkJson);  // a stale one, by index
  dirs.Write("run/cdi/nvidia.yaml", kNvidiaCtkYaml);  // regenerated at boot
  CdiEdits edits = EditsOf({H100(1, kUuid1)}, dirs.dirs());
  CHECK(Destinations(edits.mounts).front() == "/usr/lib/x86_64-linux-gnu/libcuda.so.550.90.07");
  CHECK(edits.device_nodes.size() == 7);

  SECTION("two specs of one folder naming the same device: an error when it is used") {
    dirs.Write("run/cdi/nvidia-copy.json", kNvidiaCtkJson);
    auto used = CdiEditsForGpus({H100(1, "GPU-only-by-index")}, dirs.dirs());
    REQUIRE_FALSE(used.ok());
    CHECK(used.error().code == core::ErrorCode::kConflict);
    CHECK_THAT(used.error().message, Catch::Contains("nvidia.com/gpu=1") &&
                                         Catch::Contains("nvidia-copy.json") &&
                                         Catch::Contains("nvidia.yaml"));
    // GPU 1's UUID is only in nvidia.yaml: no conflict.
    CHECK(EditsOf({H100(1, kUuid1)}, dirs.dirs()).device_nodes.size() == 7);
  }
}

TEST_CASE("CdiEditsForGpus reports a malformed spec file by name", "[cdi]") {
  SpecDirs dirs;
  struct Case {
    const char* file;
    std::string content;
    const char* says;
  };
  const std::string valid_head = "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\n";
  const Case cases[] = {
      {"nvidia.json", "{\"cdiVersion\": \"0.5.0\", \"kind\": ", "invalid JSON"},
      {"nvidia.yaml", "cdiVersion: [0.5.0\nkind: {", "invalid YAML"},
      {"nvidia.yaml", "- just\n- a list\n", "expected an object"},
      {"nvidia.yaml", "cdiVersion: 0.5.0\ndevices: []\n", "kind: missing"},
      {"nvidia.yaml", "kind: nvidia.com/gpu\ndevices: []\n", "cdiVersion: missing"},
      {"nvidia.yaml", "cdiVersion: 2.0.0\nkind: nvidia.com/gpu\ndevices: []\n",
       "\"2.0.0\" is not a version"},
      {"nvidia.yaml", valid_head, "devices: missing"},
      {"nvidia.yaml", valid_head + "devices:\n- containerEdits: {}\n", "devices[0].name: missing"},
      {"nvidia.yaml", valid_head + "devices:\n- name: \"0\"\n- name: \"0\"\n", "names two devices"},
      {"nvidia.yaml",
       valid_head + "devices:\n- name: \"0\"\n  containerEdits:\n    deviceNodes:\n    - path: "
                    "dev/nvidia0\n",
       "devices[0].containerEdits.deviceNodes[0].path: not an absolute path"},
      {"nvidia.yaml",
       valid_head + "devices:\n- name: \"0\"\n  containerEdits:\n    deviceNodes:\n    - path: "
                    "/dev/nvidia0\n      type: x\n",
       "\"x\" is none of c, b, u, p"},
      {"nvidia.yaml",
       valid_head + "devices:\n- name: \"0\"\n  containerEdits:\n    deviceNodes:\n    - path: "
                    "/dev/nvidia0\n      major: lots\n",
       "major: expected an integer"},
      {"nvidia.yaml", valid_head + "devices: []\ncontainerEdits:\n  env: [NOEQUALS]\n",
       "containerEdits.env[0]: expected KEY=VALUE"},
      {"nvidia.yaml",
       valid_head + "devices: []\ncontainerEdits:\n  env: NVIDIA_VISIBLE_DEVICES=void\n",
       "containerEdits.env: expected a list of strings"},
      {"nvidia.yaml",
       valid_head + "devices: []\ncontainerEdits:\n  hooks:\n  - hookName: beforeEverything\n    "
                    "path: /bin/true\n",
       "\"beforeEverything\" is not a hook name"},
      {"nvidia.yaml",
       valid_head + "devices: []\ncontainerEdits:\n  hooks:\n  - hookName: poststop\n    path: "
                    "/bin/true\n    timeout: 0\n",
       "containerEdits.hooks[0].timeout: out of range"},
      {"nvidia.yaml",
       valid_head + "devices: []\ncontainerEdits:\n  mounts:\n  - hostPath: /usr/lib/libcuda.so\n",
       "containerEdits.mounts[0].containerPath: missing"},
      {"nvidia.yaml",
       valid_head + "devices: []\ncontainerEdits:\n  mounts:\n  - hostPath: tmpfs\n    "
                    "containerPath: /scratch\n    type: tmpfs\n",
       "containerEdits.mounts[0].hostPath: not an absolute path"},
      {"nvidia.yaml",
       valid_head + "devices: []\ncontainerEdits:\n  mounts:\n  - hostPath: /tmp\n    "
                    "containerPath: /scratch\n    type: tmpfs\n",
       "gantry takes bind mounts only"},
      {"nvidia.yaml", "a: &a [*a, *a]\n", "YAML"},
  };
  for (const Case& bad : cases) {
    INFO(bad.content);
    fs::remove_all(dirs.etc());
    const fs::path file = dirs.Write(std::string("etc/cdi/") + bad.file, bad.content);
    core::Error error = ErrorOf(dirs);
    CHECK(error.code == core::ErrorCode::kParse);
    CHECK_THAT(error.message, Catch::Contains(file.string()) && Catch::Contains(bad.says));
  }
}

TEST_CASE("CdiEditsForGpus reads YAML as the CDI tools do", "[cdi]") {
  SpecDirs dirs;
  // Unquoted names and numbers, octal file modes, nulls, fields gantry does
  // not use, a newer cdiVersion.
  dirs.Write("etc/cdi/nvidia.yml", R"(cdiVersion: 1.0.0
kind: nvidia.com/gpu
annotations:
  generated-by: hand
devices:
- name: 0
  annotations: {}
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
      hostPath: /dev/nvidia-host0
      type: c
      major: 195
      minor: 0
      fileMode: 0666
      permissions: rw
      uid: 0
      gid: 44
    additionalGids: [44]
    intelRdt: null
containerEdits:
  env: ~
)");
  CdiEdits edits = EditsOf({H100(0, kUuid0)}, dirs.dirs());
  REQUIRE(edits.device_nodes.size() == 1);
  const DeviceNode& node = edits.device_nodes[0];
  CHECK(node.path == "/dev/nvidia0");
  CHECK(node.host_path == "/dev/nvidia-host0");
  CHECK(node.major == 195);
  CHECK(node.minor == 0);  // a 0 minor beside a major
  CHECK(node.file_mode == 0666u);
  CHECK(node.permissions == "rw");
  CHECK(node.uid == 0u);
  CHECK(node.gid == 44u);
  CHECK(edits.env == std::vector<std::string>{std::string("CUDA_VISIBLE_DEVICES=") + kUuid0});
}

TEST_CASE("ApplyCdiEdits puts the edits into a container and its config.json", "[cdi]") {
  SpecDirs dirs;
  dirs.Write("etc/cdi/nvidia.yaml", kNvidiaCtkYaml);
  CdiEdits edits = EditsOf({H100(0, kUuid0)}, dirs.dirs());
  // A node with its numbers given, and one made from the host's /dev/null.
  edits.device_nodes.push_back(DeviceNode{"/dev/nvidia0", "", "c", 195, 0, 0666, 0, 0, "rwm"});
  edits.device_nodes.push_back(
      DeviceNode{"/dev/nvidia-caps-test", "/dev/null", "", {}, {}, {}, {}, {}, "rw"});

  ContainerSpec spec;
  spec.id = "fn-cdi.1";
  spec.rootfs = "/var/lib/gantry/roots/fn-cdi.1/rootfs";
  spec.args = {"nvidia-smi"};
  spec.env = {"PATH=/usr/bin:/bin", "NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_DRIVER_CAPABILITIES=all"};
  spec.mounts.push_back({"/srv/volumes/app/data", "/data", false, {}});
  spec.mounts.push_back({"/opt/old-driver/nvidia-smi", "/usr/bin/nvidia-smi", true, {}});
  ApplyCdiEdits(edits, &spec);

  CHECK(spec.env == std::vector<std::string>{"PATH=/usr/bin:/bin", "NVIDIA_VISIBLE_DEVICES=void",
                                             "NVIDIA_DRIVER_CAPABILITIES=all",
                                             std::string("CUDA_VISIBLE_DEVICES=") + kUuid0});
  CHECK(Destinations(spec.mounts) ==
        std::vector<std::string>{"/data", "/usr/lib/x86_64-linux-gnu/libcuda.so.550.90.07",
                                 "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.550.90.07",
                                 "/usr/bin/nvidia-smi", "/run/nvidia-persistenced/socket"});
  CHECK(spec.mounts[3].source == "/usr/bin/nvidia-smi");  // the CDI one replaced the image's
  CHECK(spec.hooks.size() == 3);         // GPU-4cf8…'s device has none of its own
  CHECK(spec.device_nodes.size() == 8);  // /dev/nvidia0 once, the one with numbers

  HostLimits limits;
  json config = RuntimeConfig(spec, limits);
  const json& created = config["hooks"]["createContainer"];
  REQUIRE(created.size() == 3);
  CHECK(created[0] == json{{"path", "/usr/bin/nvidia-cdi-hook"},
                           {"args",
                            {"nvidia-cdi-hook", "create-symlinks", "--link",
                             "libnvidia-allocator.so.1::/usr/lib/x86_64-linux-gnu/gbm/"
                             "nvidia-drm_gbm.so"}},
                           {"env", {"NVIDIA_CTK_DEBUG=false"}}});
  CHECK(created[2]["args"][1] == "update-ldcache");
  CHECK_FALSE(config["hooks"].contains("prestart"));
  json libcuda;
  for (const json& mount : config["mounts"]) {
    if (mount["destination"] == "/usr/lib/x86_64-linux-gnu/libcuda.so.550.90.07") libcuda = mount;
  }
  CHECK(libcuda == json{{"destination", "/usr/lib/x86_64-linux-gnu/libcuda.so.550.90.07"},
                        {"type", "bind"},
                        {"source", "/usr/lib/x86_64-linux-gnu/libcuda.so.550.90.07"},
                        {"options", {"ro", "nosuid", "nodev", "bind"}}});
  // Nodes this host lacks (it may have no GPU) are left out; those with their
  // numbers given, or found on the host, are in.
  std::map<std::string, json> devices;
  for (const json& device : config["linux"]["devices"]) devices[device["path"]] = device;
  CHECK(devices["/dev/nvidia0"] == json{{"path", "/dev/nvidia0"},
                                        {"type", "c"},
                                        {"major", 195},
                                        {"minor", 0},
                                        {"fileMode", 0666},
                                        {"uid", 0},
                                        {"gid", 0}});
  CHECK(devices["/dev/nvidia-caps-test"]["major"] == 1);
  CHECK(devices["/dev/nvidia-caps-test"]["minor"] == 3);
  const json& rules = config["linux"]["resources"]["devices"];
  auto has_rule = [&](const json& rule) {
    return std::find(rules.begin(), rules.end(), rule) != rules.end();
  };
  CHECK(
      has_rule({{"allow", true}, {"type", "c"}, {"major", 195}, {"minor", 0}, {"access", "rwm"}}));
  CHECK(has_rule({{"allow", true}, {"type", "c"}, {"major", 1}, {"minor", 3}, {"access", "rw"}}));
}

}  // namespace
}  // namespace agents
