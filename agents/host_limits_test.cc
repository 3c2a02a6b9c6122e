#include "agents/host_limits.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/temp_dir.h"

namespace agents {
namespace {

namespace fs = std::filesystem;

// The file system type /proc/self/mountinfo gives for `mount_point`; "" when
// nothing is mounted there.
std::string MountedType(const std::string& mount_point) {
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::string type;
  for (std::string line; std::getline(mountinfo, line);) {
    std::istringstream fields(line);
    std::string id, parent, device, root, point, word;
    fields >> id >> parent >> device >> root >> point;
    if (point != mount_point) continue;
    while (fields >> word && word != "-") {
    }
    fields >> type;  // the last mount at a point is the one seen
  }
  return type;
}

bool Says(const HostLimits& limits, const std::string& text) {
  return std::any_of(limits.degraded.begin(), limits.degraded.end(),
                     [&](const std::string& line) { return line.find(text) != std::string::npos; });
}

TEST_CASE("DetectHostLimits finds the cgroup layout the mount table shows", "[host_limits]") {
  HostLimits limits = DetectHostLimits();
  for (const std::string& line : limits.degraded) WARN("degraded: " << line);
  const std::string root = MountedType("/sys/fs/cgroup");
  const std::string unified = MountedType("/sys/fs/cgroup/unified");
  const std::string memory = MountedType("/sys/fs/cgroup/memory");
  INFO("cgroups: " << CgroupsName(limits.cgroups) << ", /sys/fs/cgroup: " << root);
  if (root == "cgroup2") {
    CHECK(limits.cgroups == HostLimits::Cgroups::kV2);
  } else if (root == "tmpfs" && memory == "cgroup") {
    CHECK(limits.cgroups ==
          (unified == "cgroup2" ? HostLimits::Cgroups::kHybrid : HostLimits::Cgroups::kV1));
    // runc writes limits in the v1 hierarchies, which root can write.
    if (geteuid() == 0) CHECK(limits.memory_limits);
  } else if (root.empty()) {
    CHECK(limits.cgroups == HostLimits::Cgroups::kNone);
  }
  CHECK(Says(limits, "memory cgroup") ==
        (!limits.memory_limits && limits.cgroups != HostLimits::Cgroups::kNone));
  CHECK(Says(limits, "cpu cgroup") ==
        (!limits.cpu_limits && limits.cgroups != HostLimits::Cgroups::kNone));
}

TEST_CASE("DetectHostLimits takes the hard rlimits and says when they are low", "[host_limits]") {
  HostLimits limits = DetectHostLimits();
  struct rlimit files {};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &files) == 0);
  if (files.rlim_max == RLIM_INFINITY) {
    CHECK(limits.nofile_hard == UINT64_MAX);
  } else {
    CHECK(limits.nofile_hard == files.rlim_max);
  }
  CHECK(limits.nproc_hard > 0);
  CHECK(Says(limits, "RLIMIT_NOFILE is") == (limits.nofile_hard < kContainerOpenFiles));
  CHECK(Says(limits, "RLIMIT_NPROC is") == (limits.nproc_hard < kContainerProcesses));
}

TEST_CASE("ProbeOverlay mounts for real and leaves nothing behind", "[host_limits]") {
  tests::TempDir temp;
  auto probed = ProbeOverlay(temp.path());
  CHECK(fs::is_empty(temp.path()));
  if (geteuid() != 0) {
    REQUIRE_FALSE(probed.ok());
    CHECK(probed.error().message.find("root") != std::string::npos);
    return;
  }
  // Where the temporary folder cannot hold an overlay (itself on overlayfs,
  // say), the error says why; the detection agrees either way.
  if (!probed) WARN(probed.error().message);
  HostLimits limits = DetectHostLimits();
  CHECK(limits.overlayfs == probed.ok());
  CHECK(Says(limits, "overlay") == !limits.overlayfs);

  auto missing = ProbeOverlay(temp.path() / "missing");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message.find("missing") != std::string::npos);
}

TEST_CASE("CgroupsName names every layout", "[host_limits]") {
  CHECK(std::string(CgroupsName(HostLimits::Cgroups::kV1)) == "v1");
  CHECK(std::string(CgroupsName(HostLimits::Cgroups::kV2)) == "v2");
  CHECK(std::string(CgroupsName(HostLimits::Cgroups::kHybrid)) == "hybrid");
  CHECK(std::string(CgroupsName(HostLimits::Cgroups::kNone)) == "none");
}

}  // namespace
TEST_CASE("CheckHostRequirements names a missing runtime and how to install it", "[host_limits]") {
  auto missing = CheckHostRequirements("/nonexistent/crun");
  REQUIRE_FALSE(missing.ok());
  if (geteuid() != 0) {
    CHECK(missing.error().message.find("needs root here: run gantry as root") != std::string::npos);
    return;
  }
  CHECK(missing.error().code == core::ErrorCode::kNotFound);
  CHECK(missing.error().message ==
        "/nonexistent/crun is not installed, and the agent runs containers with it: apt-get "
        "install crun");
  if (access("/usr/sbin/runc", X_OK) == 0) CHECK(CheckHostRequirements("runc").ok());
}

}  // namespace agents
