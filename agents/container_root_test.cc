#include "agents/container_root.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "agents/host_limits.h"
#include "builder/rootfs.h"
#include "tests/skip.h"
#include "tests/temp_dir.h"

namespace agents {
namespace {

namespace fs = std::filesystem;

std::string Slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

void Write(const fs::path& path, const std::string& content) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << content;
}

// A whiteout in overlay form, as builder::UnpackLayer(kOverlay) makes it.
void Whiteout(const fs::path& path) {
  fs::create_directories(path.parent_path());
  REQUIRE(mknod(path.c_str(), S_IFCHR, makedev(0, 0)) == 0);
}

void MarkOpaque(const fs::path& folder) {
  fs::create_directories(folder);
  REQUIRE(setxattr(folder.c_str(), builder::kOverlayOpaqueXattr, "y", 1, 0) == 0);
}

// Per path: type, mode, owner, content or link target; what a container sees.
std::map<std::string, std::string> View(const fs::path& root) {
  std::map<std::string, std::string> view;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    struct stat info {};
    REQUIRE(lstat(it->path().c_str(), &info) == 0);
    std::ostringstream print;
    print << std::oct << info.st_mode << std::dec << ' ' << info.st_uid << ':' << info.st_gid
          << ' ';
    if (S_ISREG(info.st_mode)) print << Slurp(it->path());
    if (S_ISLNK(info.st_mode)) print << fs::read_symlink(it->path()).string();
    if (S_ISREG(info.st_mode) || S_ISLNK(info.st_mode)) print << ' ' << info.st_mtim.tv_sec;
    view[fs::relative(it->path(), root).string()] = print.str();
  }
  return view;
}

bool IsMounted(const fs::path& point) {
  std::ifstream mountinfo("/proc/self/mountinfo");
  for (std::string line; std::getline(mountinfo, line);) {
    std::istringstream fields(line);
    std::string id, parent, device, root, mounted;
    fields >> id >> parent >> device >> root >> mounted;
    if (mounted == point.string()) return true;
  }
  return false;
}

bool CanTest() {
  if (geteuid() == 0) return true;
  tests::Skip("container roots (mounts, whiteout devices, trusted.* attributes) need root");
  return false;
}

/// Two layers in overlay form: the upper replaces, deletes and hides.
struct TwoLayers {
  tests::TempDir temp;
  fs::path lower = temp.path() / "layers" / "lower";
  fs::path upper = temp.path() / "layers" / "upper";

  TwoLayers() {
    Write(lower / "etc/a", "lower a");
    Write(lower / "etc/b", "lower b");
    Write(lower / "etc/gone", "deleted above");
    Write(lower / "opaque/old", "hidden above");
    Write(lower / "opaque/sub/older", "hidden above");
    Write(lower / "bin/tool", "#!/bin/sh\n");
    REQUIRE(chown((lower / "bin/tool").c_str(), 1000, 1001) == 0);
    fs::permissions(lower / "bin/tool", fs::perms(04755));
    fs::create_symlink("etc/a", lower / "link");
    fs::create_hard_link(lower / "etc/b", lower / "etc/b-again");
    Write(lower / "was-file", "a file below");

    Write(upper / "etc/a", "upper a");
    Whiteout(upper / "etc/gone");
    MarkOpaque(upper / "opaque");
    Write(upper / "opaque/new", "new");
    Write(upper / "was-file/now-folder", "inside");
  }

  std::vector<fs::path> layers() const { return {lower, upper}; }
  fs::path dir(const std::string& name) const { return temp.path() / "roots" / name; }

  void RequireView(const fs::path& rootfs) const {
    CHECK(Slurp(rootfs / "etc/a") == "upper a");
    CHECK(Slurp(rootfs / "etc/b") == "lower b");
    CHECK_FALSE(fs::exists(fs::symlink_status(rootfs / "etc/gone")));
    CHECK(fs::is_directory(rootfs / "opaque"));
    CHECK_FALSE(fs::exists(rootfs / "opaque/old"));
    CHECK_FALSE(fs::exists(rootfs / "opaque/sub"));
    CHECK(Slurp(rootfs / "opaque/new") == "new");
    CHECK(fs::read_symlink(rootfs / "link") == "etc/a");
    CHECK(Slurp(rootfs / "link") == "upper a");
    CHECK(Slurp(rootfs / "was-file/now-folder") == "inside");
    struct stat tool {};
    REQUIRE(lstat((rootfs / "bin/tool").c_str(), &tool) == 0);
    CHECK((tool.st_mode & 07777) == 04755);
    CHECK(tool.st_uid == 1000);
    CHECK(tool.st_gid == 1001);
  }
};

TEST_CASE("ContainerRoot shows the layers as overlayfs would, mounted or copied",
          "[container_root]") {
  if (!CanTest()) return;
  TwoLayers layers;
  const auto lower_before = View(layers.lower);

  auto copied = ContainerRoot::Create(layers.layers(), layers.dir("copied"), false);
  REQUIRE(copied.ok());
  CHECK_FALSE(IsMounted(copied->rootfs()));
  layers.RequireView(copied->rootfs());
  struct stat b {
  }, b_again{};
  REQUIRE(lstat((copied->rootfs() / "etc/b").c_str(), &b) == 0);
  REQUIRE(lstat((copied->rootfs() / "etc/b-again").c_str(), &b_again) == 0);
  CHECK(b.st_ino == b_again.st_ino);  // a hardlink stays one

  if (!DetectHostLimits().overlayfs) {
    WARN("overlayfs does not work here: only the copy was checked");
  } else {
    auto mounted = ContainerRoot::Create(layers.layers(), layers.dir("mounted"), true);
    REQUIRE(mounted.ok());
    CHECK(IsMounted(mounted->rootfs()));
    layers.RequireView(mounted->rootfs());
    CHECK(View(mounted->rootfs()) == View(copied->rootfs()));
    REQUIRE(mounted->Remove().ok());
  }
  REQUIRE(copied->Remove().ok());
  CHECK(View(layers.lower) == lower_before);
}

TEST_CASE("ContainerRoot writes go to its upper folder only", "[container_root]") {
  if (!CanTest()) return;
  TwoLayers layers;
  const auto lower_before = View(layers.lower);
  const auto upper_before = View(layers.upper);
  const bool overlay = DetectHostLimits().overlayfs;
  auto root = ContainerRoot::Create(layers.layers(), layers.dir("one"), overlay);
  REQUIRE(root.ok());
  const fs::path rootfs = root->rootfs();
  Write(rootfs / "etc/new", "written");
  Write(rootfs / "etc/b", "changed");
  fs::remove(rootfs / "etc/a");
  fs::remove_all(rootfs / "bin");
  CHECK(Slurp(rootfs / "etc/new") == "written");
  CHECK(Slurp(rootfs / "etc/b") == "changed");
  CHECK_FALSE(fs::exists(rootfs / "etc/a"));
  CHECK(View(layers.lower) == lower_before);
  CHECK(View(layers.upper) == upper_before);
  if (overlay) {
    CHECK(Slurp(root->dir() / "upper/etc/new") == "written");
    // A second root over the same layers sees none of it.
    auto other = ContainerRoot::Create(layers.layers(), layers.dir("two"), true);
    REQUIRE(other.ok());
    layers.RequireView(other->rootfs());
    REQUIRE(other->Remove().ok());
  }
  REQUIRE(root->Remove().ok());
}

TEST_CASE("ContainerRoot::Remove unmounts and leaves nothing, adopted or not", "[container_root]") {
  if (!CanTest()) return;
  TwoLayers layers;
  const bool overlay = DetectHostLimits().overlayfs;
  fs::path rootfs;
  {
    auto root = ContainerRoot::Create(layers.layers(), layers.dir("adopted"), overlay);
    REQUIRE(root.ok());
    rootfs = root->rootfs();
    // Dropped without Remove, as by an agent that is killed: still there.
  }
  CHECK(IsMounted(rootfs) == overlay);
  CHECK(Slurp(rootfs / "etc/a") == "upper a");
  // A symlink out of the root is removed, not followed.
  fs::create_symlink(layers.lower, rootfs / "escape");
  ContainerRoot adopted = ContainerRoot::Adopt(layers.dir("adopted"));
  CHECK(adopted.rootfs() == rootfs);
  REQUIRE(adopted.Remove().ok());
  CHECK_FALSE(IsMounted(rootfs));
  CHECK_FALSE(fs::exists(layers.dir("adopted")));
  CHECK(Slurp(layers.lower / "etc/a") == "lower a");
  // Removing twice is fine.
  CHECK(adopted.Remove().ok());
}

TEST_CASE("ContainerRoot refuses a folder that holds a root and keeps it", "[container_root]") {
  if (!CanTest()) return;
  TwoLayers layers;
  auto first = ContainerRoot::Create(layers.layers(), layers.dir("x"), false);
  REQUIRE(first.ok());
  auto second = ContainerRoot::Create(layers.layers(), layers.dir("x"), false);
  REQUIRE_FALSE(second.ok());
  CHECK(second.error().message.find("already") != std::string::npos);
  CHECK(Slurp(first->rootfs() / "etc/a") == "upper a");

  auto missing =
      ContainerRoot::Create({layers.temp.path() / "no-such-layer"}, layers.dir("y"), false);
  REQUIRE_FALSE(missing.ok());
  CHECK_FALSE(fs::exists(layers.dir("y")));
  REQUIRE(first->Remove().ok());
}

TEST_CASE("ContainerRoot copies when the layers do not fit in the mount options",
          "[container_root]") {
  if (!CanTest()) return;
  tests::TempDir temp;
  std::vector<fs::path> layers;
  for (int i = 0; i < 40; ++i) {
    // 40 layers of over 100 characters each: more than a page of lowerdir.
    fs::path layer = temp.path() / (std::string(100, 'l') + std::to_string(i));
    Write(layer / ("file" + std::to_string(i)), std::to_string(i));
    Write(layer / "top", std::to_string(i));
    layers.push_back(layer);
  }
  auto root = ContainerRoot::Create(layers, temp.path() / "root", true);
  REQUIRE(root.ok());
  CHECK_FALSE(IsMounted(root->rootfs()));
  CHECK(Slurp(root->rootfs() / "file0") == "0");
  CHECK(Slurp(root->rootfs() / "file39") == "39");
  CHECK(Slurp(root->rootfs() / "top") == "39");
  REQUIRE(root->Remove().ok());
}

}  // namespace
}  // namespace agents
