#include "builder/rootfs.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "tests/skip.h"
#include "tests/tar_builder.h"
#include "tests/temp_dir.h"

namespace builder {
namespace {

namespace fs = std::filesystem;

using tests::TempDir;

using tests::Device;
using tests::File;
using tests::Folder;
using tests::Hardlink;
using tests::Item;
using tests::Symlink;
using tests::TarItem;

void WriteTar(const fs::path& path, const std::vector<TarItem>& items, bool gzip = true) {
  std::string err;
  bool written = tests::WriteTar(path, items, gzip, &err);
  INFO(err);
  REQUIRE(written);
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

struct stat Lstat(const fs::path& path) {
  struct stat info {};
  REQUIRE(lstat(path.c_str(), &info) == 0);
  return info;
}

/// A root to unpack into and, beside it, a sentinel folder that no layer may
/// touch, whatever its entries say. Unpack() works in `mode`.
class Sandbox {
 public:
  explicit Sandbox(WhiteoutMode mode = WhiteoutMode::kApply) : mode_(mode) {
    fs::create_directories(root());
    fs::create_directories(outside() / "sub" / "dir");
    std::ofstream(outside() / "victim") << "precious";
    std::ofstream(outside() / "sub" / "dir" / "file") << "also precious";
    fs::permissions(outside() / "victim", fs::perms(0640));
    before_ = tests::TreeFingerprint(outside());
    passwd_ = Lstat("/etc/passwd");
  }

  fs::path root() const { return temp_.path() / "root"; }
  fs::path outside() const { return temp_.path() / "outside"; }
  /// The sentinel's absolute path without its leading '/': where a symlink
  /// to the sentinel lands when resolved inside the root.
  std::string outside_in_root() const { return outside().string().substr(1); }
  fs::path layer() const { return temp_.path() / "layer.tar.gz"; }

  core::Status Unpack(const std::vector<TarItem>& items, bool gzip = true) const {
    WriteTar(layer(), items, gzip);
    return UnpackLayer(layer(), root(), mode_);
  }

  /// Unpacks in overlay form (WhiteoutMode::kOverlay).
  core::Status UnpackOverlay(const std::vector<TarItem>& items) const {
    WriteTar(layer(), items);
    return UnpackLayer(layer(), root(), WhiteoutMode::kOverlay);
  }

  /// Nothing outside the root moved: the sentinel is as it was (see
  /// tests::TreeFingerprint), nothing new sits beside the root, /etc/passwd
  /// has no new link.
  void RequireOutsideUntouched() const {
    CHECK(tests::TreeFingerprint(outside()) == before_);
    std::vector<std::string> beside;
    for (const auto& item : fs::directory_iterator(temp_.path()))
      beside.push_back(item.path().filename());
    std::sort(beside.begin(), beside.end());
    CHECK(beside == std::vector<std::string>{"layer.tar.gz", "outside", "root"});
    struct stat passwd = Lstat("/etc/passwd");
    CHECK(passwd.st_nlink == passwd_.st_nlink);
    CHECK(passwd.st_ctim.tv_sec == passwd_.st_ctim.tv_sec);
    CHECK(passwd.st_ctim.tv_nsec == passwd_.st_ctim.tv_nsec);
  }

 private:
  WhiteoutMode mode_;
  TempDir temp_;
  std::map<std::string, std::string> before_;
  struct stat passwd_ {};
};

TEST_CASE("UnpackLayer writes files, folders, symlinks and hardlinks with their metadata",
          "[rootfs]") {
  if (!tests::RootOrSkip("entries owned by other users need root")) return;
  Sandbox sandbox;
  TarItem bin = Folder("usr/bin/", 0711);
  bin.uid = 1;
  bin.gid = 2;
  bin.mtime = 1000;
  TarItem tool = File("./usr/bin/tool", "#!/bin/sh\necho tool\n", 04755);
  tool.uid = 1000;
  tool.gid = 1001;
  tool.mtime = 12345;
  TarItem fifo = Item("pipe", 'p', 0644);
  TarItem device = Item("null", 'c', 0666);
  auto unpacked =
      sandbox.Unpack({Folder("./"), Folder("usr/"), bin, tool, Symlink("usr/bin/alias", "tool"),
                      Hardlink("usr/bin/tool2", "usr/bin/tool"), File("deep/implicit/file", "x"),
                      fifo, device, File("/absolute", "abs")});
  REQUIRE(unpacked.ok());
  const fs::path root = sandbox.root();

  CHECK(ReadFile(root / "usr/bin/tool") == "#!/bin/sh\necho tool\n");
  struct stat info = Lstat(root / "usr/bin/tool");
  CHECK((info.st_mode & 07777) == 04755);
  CHECK(info.st_uid == 1000);
  CHECK(info.st_gid == 1001);
  CHECK(info.st_mtim.tv_sec == 12345);
  CHECK(info.st_nlink == 2);

  struct stat link = Lstat(root / "usr/bin/tool2");
  CHECK(link.st_ino == info.st_ino);
  CHECK(fs::read_symlink(root / "usr/bin/alias") == "tool");

  // The folder's mtime is the layer's, though its entries came after it.
  struct stat folder = Lstat(root / "usr/bin");
  CHECK(S_ISDIR(folder.st_mode));
  CHECK((folder.st_mode & 07777) == 0711);
  CHECK(folder.st_uid == 1);
  CHECK(folder.st_gid == 2);
  CHECK(folder.st_mtim.tv_sec == 1000);

  CHECK(ReadFile(root / "deep/implicit/file") == "x");
  CHECK((Lstat(root / "deep/implicit").st_mode & 07777) == 0755);
  CHECK(ReadFile(root / "absolute") == "abs");
  CHECK_FALSE(fs::exists(fs::symlink_status(root / "pipe")));
  CHECK_FALSE(fs::exists(fs::symlink_status(root / "null")));
  sandbox.RequireOutsideUntouched();
}

TEST_CASE("UnpackLayer replaces what lower layers left, a folder over a folder keeps its content",
          "[rootfs]") {
  Sandbox sandbox;
  REQUIRE(sandbox
              .Unpack({Folder("a"), File("a/keep", "kept"), File("b", "file"), Symlink("c", "a"),
                       Folder("d"), File("d/gone", "gone"), File("e", "old")})
              .ok());
  // A plain tar this time: the format is detected.
  REQUIRE(sandbox
              .Unpack({Folder("a", 0700), Folder("b"), File("b/inside"), File("c", "now a file"),
                       File("d", "was a folder"), File("e", "new"), Symlink("f", "e"),
                       File("f", "last wins")},
                      false)
              .ok());
  const fs::path root = sandbox.root();
  CHECK(ReadFile(root / "a/keep") == "kept");
  CHECK((Lstat(root / "a").st_mode & 07777) == 0700);
  CHECK(fs::is_directory(fs::symlink_status(root / "b")));
  CHECK(fs::is_regular_file(root / "b/inside"));
  CHECK(fs::is_regular_file(fs::symlink_status(root / "c")));
  CHECK(ReadFile(root / "c") == "now a file");
  CHECK(ReadFile(root / "d") == "was a folder");
  CHECK(ReadFile(root / "e") == "new");
  CHECK(fs::is_regular_file(fs::symlink_status(root / "f")));
  CHECK(ReadFile(root / "f") == "last wins");
  sandbox.RequireOutsideUntouched();
}

TEST_CASE("UnpackLayer applies whiteouts and does not extract them", "[rootfs]") {
  Sandbox sandbox;
  REQUIRE(sandbox
              .Unpack({File("a/x", "x"), File("a/y", "y"), File("d/sub/file"),
                       Symlink("d/link", "/a"), File("keep"), Symlink("s", "a")})
              .ok());
  REQUIRE(sandbox
              .Unpack({File("a/.wh.x"), File(".wh.d"), File(".wh.s"), File(".wh.never-there"),
                       File("missing-folder/.wh.thing")})
              .ok());
  const fs::path root = sandbox.root();
  CHECK_FALSE(fs::exists(fs::symlink_status(root / "a/x")));
  CHECK(ReadFile(root / "a/y") == "y");
  CHECK_FALSE(fs::exists(fs::symlink_status(root / "d")));
  // The whiteout removed the symlink, not the folder it points to.
  CHECK_FALSE(fs::exists(fs::symlink_status(root / "s")));
  CHECK(fs::is_directory(root / "a"));
  CHECK(fs::is_regular_file(root / "keep"));
  CHECK_FALSE(fs::exists(root / "a/.wh.x"));
  CHECK_FALSE(fs::exists(root / ".wh.d"));
  CHECK_FALSE(fs::exists(root / "missing-folder"));
  sandbox.RequireOutsideUntouched();
}

TEST_CASE("UnpackLayer's opaque whiteout hides only what lower layers put in the folder",
          "[rootfs]") {
  Sandbox sandbox;
  REQUIRE(sandbox
              .Unpack({File("o/old"), File("o/sub/old2"), File("o/sub/kept-name"), File("p/old"),
                       File("q")})
              .ok());
  SECTION("the whiteout after some of the layer's own entries") {
    REQUIRE(sandbox
                .Unpack({File("o/new", "new"), File("o/sub/kept-name", "from upper"),
                         File("o/.wh..wh..opq"), File("o/later", "later"), File("p/.wh..wh..opq")})
                .ok());
  }
  SECTION("the whiteout first") {
    REQUIRE(sandbox
                .Unpack({File("o/.wh..wh..opq"), File("o/new", "new"),
                         File("o/sub/kept-name", "from upper"), File("o/later", "later"),
                         File("p/.wh..wh..opq")})
                .ok());
  }
  const fs::path root = sandbox.root();
  std::vector<std::string> names;
  for (const auto& item : fs::recursive_directory_iterator(root / "o"))
    names.push_back(fs::relative(item.path(), root));
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"o/later", "o/new", "o/sub", "o/sub/kept-name"});
  CHECK(ReadFile(root / "o/sub/kept-name") == "from upper");
  CHECK(fs::is_directory(root / "p"));
  CHECK(fs::is_empty(root / "p"));
  CHECK(fs::exists(root / "q"));
  sandbox.RequireOutsideUntouched();
}

TEST_CASE("UnpackLayer refuses names that climb out of the root", "[rootfs][hostile]") {
  const WhiteoutMode mode = GENERATE(WhiteoutMode::kApply, WhiteoutMode::kOverlay);
  Sandbox sandbox(mode);
  for (std::string name :
       {"../escape", "a/../../escape", "./../outside/victim", "/../outside/victim"}) {
    INFO(name);
    auto unpacked = sandbox.Unpack({File(name, "owned")});
    REQUIRE_FALSE(unpacked.ok());
    CHECK(unpacked.error().message.find(name) != std::string::npos);
    sandbox.RequireOutsideUntouched();
  }
  CHECK(fs::is_empty(sandbox.root()));
}

TEST_CASE("UnpackLayer keeps absolute names inside the root", "[rootfs][hostile]") {
  const WhiteoutMode mode = GENERATE(WhiteoutMode::kApply, WhiteoutMode::kOverlay);
  Sandbox sandbox(mode);
  std::string host_path = "/gantry-rootfs-test-" + std::to_string(getpid());
  REQUIRE(sandbox
              .Unpack({File(host_path, "inside"),
                       File("/" + sandbox.outside().string() + "/victim", "inside")})
              .ok());
  CHECK_FALSE(fs::exists(host_path));
  CHECK(ReadFile(sandbox.root() / host_path.substr(1)) == "inside");
  CHECK(ReadFile(sandbox.root() / sandbox.outside_in_root() / "victim") == "inside");
  sandbox.RequireOutsideUntouched();
}

TEST_CASE("UnpackLayer resolves symlinks in parent paths inside the root", "[rootfs][hostile]") {
  const WhiteoutMode mode = GENERATE(WhiteoutMode::kApply, WhiteoutMode::kOverlay);
  Sandbox sandbox(mode);
  const fs::path root = sandbox.root();
  const std::string outside = sandbox.outside().string();

  SECTION("an absolute symlink whose target exists in the root too") {
    REQUIRE(sandbox
                .Unpack({Folder(sandbox.outside_in_root()), Symlink("evil", outside),
                         File("evil/file", "owned"), File("evil/victim", "owned")})
                .ok());
    CHECK(ReadFile(root / sandbox.outside_in_root() / "file") == "owned");
    CHECK(ReadFile(root / sandbox.outside_in_root() / "victim") == "owned");
  }
  SECTION("an absolute symlink whose target is missing in the root") {
    auto unpacked = sandbox.Unpack({Symlink("evil", outside), File("evil/file", "owned")});
    REQUIRE_FALSE(unpacked.ok());
    CHECK(unpacked.error().message.find("evil/file") != std::string::npos);
  }
  SECTION("a relative symlink that climbs above the root") {
    REQUIRE(sandbox.Unpack({Symlink("up", "../../../../../.."), File("up/outside/victim", "owned")})
                .ok());
    CHECK(ReadFile(root / "outside/victim") == "owned");
  }
  SECTION("a chain of symlinks") {
    REQUIRE(sandbox
                .Unpack({Folder("real"), Symlink("c1", "c2"), Symlink("c2", "c3/../c4"),
                         Folder("c3"), Symlink("c4", "/../../../.."), File("c1/real/file", "owned"),
                         Symlink("hop", "c1/real"), File("hop/second", "owned")})
                .ok());
    CHECK(ReadFile(root / "real/file") == "owned");
    CHECK(ReadFile(root / "real/second") == "owned");
  }
  SECTION("a symlink to a folder, then a folder by that name") {
    REQUIRE(sandbox.Unpack({Symlink("linkdir", outside), Folder("linkdir", 0777)}).ok());
    CHECK(fs::is_directory(fs::symlink_status(root / "linkdir")));
  }
  SECTION("a symlink to a file, then a file by that name") {
    REQUIRE(sandbox.Unpack({Symlink("link", outside + "/victim"), File("link", "owned")}).ok());
    CHECK(fs::is_regular_file(fs::symlink_status(root / "link")));
    CHECK(ReadFile(root / "link") == "owned");
  }
  sandbox.RequireOutsideUntouched();
}

TEST_CASE("UnpackLayer links hardlinks only to files inside the root", "[rootfs][hostile]") {
  const WhiteoutMode mode = GENERATE(WhiteoutMode::kApply, WhiteoutMode::kOverlay);
  Sandbox sandbox(mode);
  const fs::path root = sandbox.root();
  SECTION("a target missing in the root") {
    auto unpacked = sandbox.Unpack({Hardlink("passwd", "/etc/passwd")});
    REQUIRE_FALSE(unpacked.ok());
    CHECK(unpacked.error().message.find("passwd") != std::string::npos);
  }
  SECTION("an absolute target is the root's file") {
    REQUIRE(sandbox
                .Unpack({File("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
                         Hardlink("passwd", "/etc/passwd")})
                .ok());
    CHECK(Lstat(root / "passwd").st_ino == Lstat(root / "etc/passwd").st_ino);
  }
  SECTION("a target that climbs out") {
    for (std::string target : {"../x", "../outside/victim", "a/../../outside/victim"}) {
      INFO(target);
      auto unpacked = sandbox.Unpack({Hardlink("h", target)});
      REQUIRE_FALSE(unpacked.ok());
      CHECK(unpacked.error().message.find("outside the image root") != std::string::npos);
    }
  }
  SECTION("a target reached through a symlinked folder") {
    REQUIRE(sandbox
                .Unpack({Folder(sandbox.outside_in_root()),
                         File(sandbox.outside_in_root() + "/victim", "mine"),
                         Symlink("evil", sandbox.outside().string()), Hardlink("h", "evil/victim")})
                .ok());
    CHECK(ReadFile(root / "h") == "mine");
  }
  SECTION("a target that is a symlink out is linked itself, not followed") {
    REQUIRE(
        sandbox.Unpack({Symlink("s", sandbox.outside().string() + "/victim"), Hardlink("h", "s")})
            .ok());
    CHECK(fs::is_symlink(fs::symlink_status(root / "h")));
    REQUIRE(sandbox.Unpack({File("h", "replaced")}).ok());
    CHECK(ReadFile(root / "h") == "replaced");
  }
  SECTION("a hardlink through a symlinked parent") {
    REQUIRE(
        sandbox
            .Unpack({File("target", "t"), Symlink("up", "../.."), Hardlink("up/linked", "target")})
            .ok());
    CHECK(Lstat(root / "linked").st_ino == Lstat(root / "target").st_ino);
  }
  sandbox.RequireOutsideUntouched();
}

TEST_CASE("UnpackLayer keeps whiteouts inside the root", "[rootfs][hostile]") {
  Sandbox sandbox;
  const fs::path root = sandbox.root();
  REQUIRE(sandbox.Unpack({File("a/x", "x"), File("keep", "keep")}).ok());
  SECTION("whiteouts of . and ..") {
    for (std::string name : {".wh..", ".wh...", "a/.wh..", "a/.wh...", ".wh."}) {
      INFO(name);
      auto unpacked = sandbox.Unpack({File(name)});
      REQUIRE_FALSE(unpacked.ok());
      CHECK(unpacked.error().message.find("whiteout") != std::string::npos);
    }
    CHECK(ReadFile(root / "a/x") == "x");
    CHECK(ReadFile(root / "keep") == "keep");
  }
  SECTION("a whiteout name with .. after it is a plain name") {
    REQUIRE(sandbox.Unpack({File("a/.wh.../../x", "replaced")}).ok());
    CHECK(ReadFile(root / "a/x") == "replaced");
  }
  SECTION("a whiteout that climbs out") {
    REQUIRE_FALSE(sandbox.Unpack({File("../outside/.wh.victim")}).ok());
    REQUIRE_FALSE(sandbox.Unpack({File("a/../../outside/.wh..wh..opq")}).ok());
  }
  SECTION("whiteouts through a symlink out") {
    REQUIRE(sandbox
                .Unpack({Symlink("evil", sandbox.outside().string()), File("evil/.wh.victim"),
                         File("evil/.wh..wh..opq"), Symlink("up", "../../.."),
                         File("up/outside/.wh.victim"), File("up/outside/sub/.wh..wh..opq")})
                .ok());
    CHECK(ReadFile(root / "keep") == "keep");
  }
  SECTION("an opaque whiteout does not follow symlinks in the folder") {
    REQUIRE(sandbox.Unpack({Symlink("a/out", sandbox.outside().string())}).ok());
    REQUIRE(sandbox.Unpack({File("a/.wh..wh..opq")}).ok());
    CHECK(fs::is_empty(root / "a"));
  }
  sandbox.RequireOutsideUntouched();
}

// The value of the overlay opaque marker on `folder`; "" when it has none.
std::string OpaqueMark(const fs::path& folder) {
  char value[16];
  ssize_t size = lgetxattr(folder.c_str(), kOverlayOpaqueXattr, value, sizeof value);
  return size < 0 ? std::string() : std::string(value, static_cast<std::size_t>(size));
}

bool IsWhiteoutDevice(const fs::path& path) {
  struct stat info {};
  return lstat(path.c_str(), &info) == 0 && S_ISCHR(info.st_mode) &&
         info.st_rdev == makedev(0, 0) && info.st_uid == 0 && info.st_gid == 0;
}

TEST_CASE("UnpackLayer in overlay form keeps whiteouts as overlayfs markers", "[rootfs]") {
  if (!tests::RootOrSkip("whiteout devices and trusted.* attributes need root")) return;
  Sandbox sandbox;
  REQUIRE(
      sandbox
          .UnpackOverlay({Folder("a"), File("a/keep", "kept"), File("a/.wh.gone"), File(".wh.top"),
                          File("o/.wh..wh..opq"), File("o/new", "new"), Folder("p", 0700),
                          File("p/.wh..wh..opq"), File("q", "replaced"), File(".wh.q")})
          .ok());
  const fs::path root = sandbox.root();
  CHECK(IsWhiteoutDevice(root / "a/gone"));
  CHECK(IsWhiteoutDevice(root / "top"));
  CHECK(IsWhiteoutDevice(root / "q"));  // the layer's own file, whited out after it
  CHECK(ReadFile(root / "a/keep") == "kept");
  CHECK(OpaqueMark(root / "a").empty());
  CHECK(OpaqueMark(root / "o") == "y");
  CHECK(ReadFile(root / "o/new") == "new");
  CHECK(OpaqueMark(root / "p") == "y");
  CHECK((Lstat(root / "p").st_mode & 07777) == 0700);
  for (const auto& item : fs::recursive_directory_iterator(root))
    CHECK(item.path().filename().string().rfind(".wh.", 0) != 0);
  sandbox.RequireOutsideUntouched();
}

std::string Xattr(const fs::path& path, const char* name) {
  char value[256];
  ssize_t size = lgetxattr(path.c_str(), name, value, sizeof value);
  return size < 0 ? "" : std::string(value, static_cast<std::size_t>(size));
}

// security.capability for cap_net_bind_service=ep, as setcap writes it.
const std::string kNetBindCapability(
    "\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 20);

TEST_CASE("UnpackLayer sets capabilities and user xattrs, and no other attribute",
          "[rootfs][hostile]") {
  if (!tests::RootOrSkip("security.capability and trusted.* attributes need root")) return;
  const WhiteoutMode mode = GENERATE(WhiteoutMode::kApply, WhiteoutMode::kOverlay);
  Sandbox sandbox(mode);
  const fs::path root = sandbox.root();
  // Capabilities outlive the owner and content being set (both drop them).
  TarItem tool = File("bin/tool", "#!/bin/sh\n", 0755);
  tool.uid = 1000;
  tool.xattrs = {{"security.capability", kNetBindCapability}, {"user.origin", "build"}};
  TarItem folder = Folder("srv");
  folder.xattrs = {{"user.role", "data"},
                   {"trusted.overlay.opaque", "y"},
                   {"trusted.overlay.redirect", "/etc"},
                   {"security.selinux", "system_u:object_r:shadow_t:s0"}};
  REQUIRE(sandbox.Unpack({tool, folder, File("srv/file", "kept")}).ok());
  CHECK(Xattr(root / "bin/tool", "security.capability") == kNetBindCapability);
  CHECK(Xattr(root / "bin/tool", "user.origin") == "build");
  CHECK(Lstat(root / "bin/tool").st_uid == 1000);
  CHECK(Xattr(root / "srv", "user.role") == "data");
  CHECK(Xattr(root / "srv", "trusted.overlay.opaque").empty());
  CHECK(Xattr(root / "srv", "trusted.overlay.redirect").empty());
  CHECK(Xattr(root / "srv", "security.selinux") != "system_u:object_r:shadow_t:s0");
  sandbox.RequireOutsideUntouched();
}

TEST_CASE("UnpackLayer sets xattrs only inside the root", "[rootfs][hostile]") {
  if (!tests::RootOrSkip("security.capability needs root")) return;
  const WhiteoutMode mode = GENERATE(WhiteoutMode::kApply, WhiteoutMode::kOverlay);
  Sandbox sandbox(mode);
  const fs::path root = sandbox.root();
  const std::string outside = sandbox.outside().string();
  auto with_xattrs = [](TarItem item) {
    item.xattrs = {{"security.capability", kNetBindCapability}, {"user.owned", "yes"}};
    return item;
  };
  REQUIRE(
      sandbox
          .Unpack({Folder(sandbox.outside_in_root()), Symlink("evil", outside),
                   with_xattrs(File("evil/victim", "owned")), with_xattrs(Folder("evil/sub")),
                   Symlink("file-link", outside + "/victim"),
                   with_xattrs(File("file-link", "owned")), Symlink("dir-link", outside + "/sub"),
                   with_xattrs(Folder("dir-link")), Symlink("up", "../../../.."),
                   with_xattrs(File("up" + outside + "/sub/dir/file", "owned"))})
          .ok());
  CHECK(Xattr(root / sandbox.outside_in_root() / "victim", "user.owned") == "yes");
  CHECK(Xattr(root / "file-link", "security.capability") == kNetBindCapability);
  CHECK(fs::is_directory(fs::symlink_status(root / "dir-link")));
  sandbox.RequireOutsideUntouched();
}

TEST_CASE("UnpackLayer in overlay form keeps whiteouts inside the root", "[rootfs][hostile]") {
  if (!tests::RootOrSkip("whiteout devices and trusted.* attributes need root")) return;
  Sandbox sandbox;
  const fs::path root = sandbox.root();
  // Through a symlink that climbs out: it resolves to the root itself.
  REQUIRE(sandbox
              .UnpackOverlay({Symlink("up", "../../.."), File("up/outside/.wh.victim"),
                              File("up/outside/sub/.wh..wh..opq")})
              .ok());
  CHECK(IsWhiteoutDevice(root / "outside/victim"));
  CHECK(OpaqueMark(root / "outside/sub") == "y");
  // Through an absolute symlink: resolved inside the root, where nothing is,
  // so the layer fails; either way nothing outside changes.
  (void)sandbox.UnpackOverlay({Symlink("evil", sandbox.outside().string()), File("evil/.wh.victim"),
                               File("evil/sub/.wh..wh..opq")});
  CHECK(OpaqueMark(sandbox.outside() / "sub").empty());
  for (std::string name : {".wh..", ".wh...", "a/.wh..", ".wh."}) {
    INFO(name);
    REQUIRE_FALSE(sandbox.UnpackOverlay({File(name)}).ok());
  }
  REQUIRE_FALSE(sandbox.UnpackOverlay({File("../outside/.wh.victim")}).ok());
  sandbox.RequireOutsideUntouched();
}

// Whiteouts in overlay form need root (mknod, trusted.* attributes): false,
// skipped (tests::Skip), where a test cannot run in `mode`.
bool CanMakeWhiteouts(WhiteoutMode mode) {
  if (mode == WhiteoutMode::kOverlay && geteuid() != 0) {
    tests::Skip("in overlay form: whiteout devices and trusted.* attributes need root");
    return false;
  }
  return true;
}

// No device node, fifo or socket in `root` but whiteouts in overlay form
// (character devices 0/0, mode 0, owned by 0:0).
void RequireNoDevices(const fs::path& root) {
  for (const auto& item : fs::recursive_directory_iterator(root)) {
    struct stat info = Lstat(item.path());
    INFO(item.path());
    CHECK_FALSE(S_ISBLK(info.st_mode));
    CHECK_FALSE(S_ISFIFO(info.st_mode));
    CHECK_FALSE(S_ISSOCK(info.st_mode));
    if (S_ISCHR(info.st_mode)) CHECK(IsWhiteoutDevice(item.path()));
    if (S_ISCHR(info.st_mode)) CHECK((info.st_mode & 07777) == 0);
  }
}

// CVE-2021-29136 (umoci before 0.4.7, GHSA-9m95-8hx6-7p9v): a layer held a
// symlink named "." (or "/"). umoci removes what is at a path when an entry
// of another type comes for it, so it replaced the root folder itself with
// the layer's symlink, and every later entry, and every later layer, was
// then unpacked under the symlink's target: any host folder the unpacking
// user could write. Here a name that cleans to the root itself ("." "/"
// "./" "a/..") is skipped whatever its type: the root stays the folder it
// was (same inode, mode and owner) and what comes after lands in it.
TEST_CASE("UnpackLayer never replaces the root with a symlink named . or / (CVE-2021-29136)",
          "[rootfs][hostile]") {
  const WhiteoutMode mode = GENERATE(WhiteoutMode::kApply, WhiteoutMode::kOverlay);
  Sandbox sandbox(mode);
  const fs::path root = sandbox.root();
  const std::string outside = sandbox.outside().string();
  const struct stat before = Lstat(root);

  SECTION("the root's own entry, in every form") {
    TarItem root_folder = Folder(".", 0777);
    root_folder.uid = 4242;
    REQUIRE(sandbox
                .Unpack({Symlink(".", outside), Symlink("/", outside), Symlink("./", outside),
                         Symlink("a/..", outside), Symlink("//./", outside), root_folder,
                         File(".", "not the root"), Hardlink(".", "victim"),
                         File("victim", "owned"), File("sub/dir/file", "owned")})
                .ok());
    // A later layer goes where the first went: into the root.
    REQUIRE(sandbox.Unpack({Symlink(".", outside), File("sub/dir/file", "owned again")}).ok());
    struct stat after = Lstat(root);
    CHECK(S_ISDIR(after.st_mode));
    CHECK(after.st_ino == before.st_ino);
    CHECK(after.st_mode == before.st_mode);
    CHECK(after.st_uid == before.st_uid);
    CHECK(ReadFile(root / "victim") == "owned");
    CHECK(ReadFile(root / "sub/dir/file") == "owned again");
  }
  SECTION("a symlink named DIR/. replaces DIR, inside the root") {
    REQUIRE(sandbox
                .Unpack({Folder("d"), File("d/keep"), Symlink("d/.", "../../.."),
                         File("d/outside/victim", "owned")})
                .ok());
    CHECK(fs::is_symlink(fs::symlink_status(root / "d")));
    CHECK(ReadFile(root / "outside/victim") == "owned");
  }
  SECTION("a hardlink to the root itself") {
    for (std::string target : {".", "/", "a/..", "./b/../"}) {
      INFO(target);
      auto unpacked = sandbox.Unpack({Hardlink("h", target)});
      REQUIRE_FALSE(unpacked.ok());
      CHECK(unpacked.error().message.find("layer entry h:") != std::string::npos);
    }
  }
  sandbox.RequireOutsideUntouched();
}

// CVE-2021-32760 (containerd before 1.4.8 and 1.5.4, GHSA-c72p-9xmj-rx3w):
// after extracting a hardlink entry, containerd chmod'ed (and set the times
// of) the new link by path, following symlinks, unless the link's target was
// a symlink; but it told that with os.Lstat(hdr.Linkname), the target's name
// taken relative to the process's working folder instead of the unpack
// root. A layer with a symlink to a host file and then a hardlink to that
// symlink thus had the host file chmod'ed to the hardlink's mode, setuid and
// setgid included. Here a hardlink's mode, owner and mtime are never applied
// (it shares its target's inode), everything else is chmod'ed and chown'ed
// through a descriptor opened with O_NOFOLLOW, and a symlink keeps mode 0777.
TEST_CASE("UnpackLayer never chmods through a symlink (CVE-2021-32760)", "[rootfs][hostile]") {
  if (!tests::RootOrSkip("entries owned by other users need root")) return;
  const WhiteoutMode mode = GENERATE(WhiteoutMode::kApply, WhiteoutMode::kOverlay);
  Sandbox sandbox(mode);
  const fs::path root = sandbox.root();
  const std::string outside = sandbox.outside().string();
  auto with = [](TarItem item, unsigned item_mode, std::int64_t owner) {
    item.mode = item_mode;
    item.uid = owner;
    item.gid = owner;
    item.mtime = 1;
    return item;
  };

  SECTION("a hardlink to a symlink out, with a mode") {
    REQUIRE(
        sandbox
            .Unpack({Symlink("s", outside + "/victim"), with(Hardlink("h", "s"), 06777, 4242),
                     Symlink("rel", "../outside/victim"), with(Hardlink("h2", "rel"), 04777, 4242),
                     Symlink("dir", outside + "/sub"), with(Hardlink("h3", "dir"), 01777, 4242)})
            .ok());
    CHECK(fs::read_symlink(root / "h") == outside + "/victim");
    CHECK(Lstat(root / "h").st_ino == Lstat(root / "s").st_ino);
    CHECK(fs::read_symlink(root / "h2") == "../outside/victim");
    CHECK(fs::read_symlink(root / "h3") == outside + "/sub");
  }
  SECTION("a symlink out, then an entry of the same name with a mode") {
    REQUIRE(sandbox
                .Unpack({Symlink("f", outside + "/victim"), with(File("f", "", 04777), 04777, 4242),
                         Symlink("d", outside + "/sub"), with(Folder("d"), 07777, 4242),
                         Symlink("e", outside + "/sub/dir"), with(Folder("e/"), 0777, 4242),
                         Symlink("g", outside + "/sub/dir"), with(Folder("g/."), 0777, 4242)})
                .ok());
    for (const char* name : {"f", "d", "e", "g"}) {
      INFO(name);
      struct stat info = Lstat(root / name);
      CHECK_FALSE(S_ISLNK(info.st_mode));
      CHECK(info.st_uid == 4242);
    }
    CHECK((Lstat(root / "f").st_mode & 07777) == 04777);
    CHECK((Lstat(root / "d").st_mode & 07777) == 07777);
  }
  SECTION("a mode for a path through a symlinked folder") {
    REQUIRE(sandbox
                .Unpack({Symlink("up", "../../.."), with(Folder("up/outside/sub"), 0777, 4242),
                         with(File("up/outside/victim", "owned"), 04777, 4242),
                         Folder(sandbox.outside_in_root()), Symlink("abs", outside),
                         with(Folder("abs/sub/dir"), 0777, 4242)})
                .ok());
    CHECK((Lstat(root / "outside/sub").st_mode & 07777) == 0777);
    CHECK((Lstat(root / "outside/victim").st_mode & 07777) == 04777);
    CHECK(Lstat(root / sandbox.outside_in_root() / "sub/dir").st_uid == 4242);
  }
  sandbox.RequireOutsideUntouched();
}

TEST_CASE("UnpackLayer applies whiteouts reached through symlinks inside the root",
          "[rootfs][hostile]") {
  const WhiteoutMode mode = GENERATE(WhiteoutMode::kApply, WhiteoutMode::kOverlay);
  if (!CanMakeWhiteouts(mode)) return;
  Sandbox sandbox(mode);
  const fs::path root = sandbox.root();
  const std::string outside = sandbox.outside().string();
  const fs::path copy = root / sandbox.outside_in_root();  // where symlinks to it land
  // A lower layer leaves a copy of the sentinel's path in the root.
  REQUIRE(sandbox
              .Unpack({File(sandbox.outside_in_root() + "/victim", "copy"),
                       File(sandbox.outside_in_root() + "/sub/lower", "lower")})
              .ok());

  SECTION("a .wh. name and an opaque whiteout whose folder is a chain of symlinks out") {
    REQUIRE(sandbox
                .Unpack({Symlink("c1", "c2"), Symlink("c2", outside), File("c1/.wh.victim"),
                         Symlink("c3", "../../../../../../../.." + outside),
                         File("c3/sub/.wh..wh..opq")})
                .ok());
    if (mode == WhiteoutMode::kApply) {
      CHECK_FALSE(fs::exists(fs::symlink_status(copy / "victim")));
      CHECK(fs::is_empty(copy / "sub"));
    } else {
      CHECK(IsWhiteoutDevice(copy / "victim"));
      CHECK(OpaqueMark(copy / "sub") == "y");
      CHECK(ReadFile(copy / "sub/lower") == "lower");
    }
  }
  SECTION("a whiteout of a symlink out removes the link, not its target") {
    REQUIRE(sandbox.Unpack({Symlink("link", outside), Symlink("flink", outside + "/victim")}).ok());
    REQUIRE(sandbox.Unpack({File(".wh.link"), File(".wh.flink")}).ok());
    for (const char* name : {"link", "flink"}) {
      INFO(name);
      if (mode == WhiteoutMode::kApply) {
        CHECK_FALSE(fs::exists(fs::symlink_status(root / name)));
      } else {
        CHECK(IsWhiteoutDevice(root / name));
      }
    }
  }
  SECTION("an opaque whiteout in a folder that is a symlink out") {
    REQUIRE(sandbox.Unpack({Symlink("opq", outside + "/sub")}).ok());
    REQUIRE(sandbox.Unpack({File("opq/.wh..wh..opq"), File("opq/dir/.wh.file")}).ok());
    CHECK(fs::is_symlink(fs::symlink_status(root / "opq")));
    if (mode == WhiteoutMode::kApply) {
      CHECK(fs::is_empty(copy / "sub"));
    } else {
      CHECK(OpaqueMark(copy / "sub") == "y");
      CHECK(IsWhiteoutDevice(copy / "sub/dir/file"));
    }
  }
  SECTION("a whiteout in a folder that is a symlink to a file out") {
    REQUIRE(sandbox.Unpack({Symlink("f", outside + "/victim")}).ok());
    // The link resolves to the root's copy, a file: nothing to whiteout in
    // it (kApply) or no folder to put the marker in (kOverlay).
    (void)sandbox.Unpack({File("f/.wh.x")});
    (void)sandbox.Unpack({File("f/.wh..wh..opq")});
    CHECK(ReadFile(copy / "victim") == "copy");
  }
  sandbox.RequireOutsideUntouched();
}

TEST_CASE("UnpackLayer never makes device nodes, and whiteout devices are always 0/0",
          "[rootfs][hostile]") {
  const WhiteoutMode mode = GENERATE(WhiteoutMode::kApply, WhiteoutMode::kOverlay);
  if (!CanMakeWhiteouts(mode)) return;
  Sandbox sandbox(mode);
  const fs::path root = sandbox.root();

  SECTION("devices, fifos and whiteout-like devices are skipped") {
    REQUIRE(sandbox
                .Unpack({File("dev/keep", "keep"), Device("dev/null", 'c', 1, 3),
                         Device("dev/sda", 'b', 8, 0), Device("dev/fake-whiteout", 'c', 0, 0),
                         Item("dev/fifo", 'p', 0666), Device("dev/keep", 'c', 1, 3),
                         Device("dev/keep", 'b', 8, 0), Item("dev/keep", 'p', 0666),
                         Device("/dev/mem", 'c', 1, 1)})
                .ok());
    CHECK(ReadFile(root / "dev/keep") == "keep");
    for (const char* name : {"null", "sda", "fake-whiteout", "fifo", "mem"}) {
      INFO(name);
      CHECK_FALSE(fs::exists(fs::symlink_status(root / "dev" / name)));
    }
  }
  SECTION("a whiteout written as a device is a whiteout, never that device") {
    TarItem as_device = Device(".wh.gone", 'c', 1, 3);
    TarItem as_block = Device("dir/.wh.disk", 'b', 8, 0);
    TarItem owned = File(".wh.owned", "data", 06777);
    owned.uid = 1000;
    owned.gid = 1000;
    REQUIRE(sandbox.Unpack({File("gone"), File("dir/disk"), File("owned")}).ok());
    REQUIRE(sandbox.Unpack({as_device, as_block, owned}).ok());
    for (const char* name : {"gone", "dir/disk", "owned"}) {
      INFO(name);
      if (mode == WhiteoutMode::kApply) {
        CHECK_FALSE(fs::exists(fs::symlink_status(root / name)));
      } else {
        CHECK(IsWhiteoutDevice(root / name));
      }
    }
  }
  SECTION("a device entry over a whiteout, and a hardlink to a whiteout") {
    auto unpacked = sandbox.Unpack(
        {File(".wh.n"), Device("n", 'c', 1, 3), Device("n", 'b', 8, 0), Hardlink("m", "n")});
    if (mode == WhiteoutMode::kApply) {
      // The whiteout left nothing to link to.
      REQUIRE_FALSE(unpacked.ok());
      CHECK(unpacked.error().message.find("layer entry m:") != std::string::npos);
    } else {
      REQUIRE(unpacked.ok());
      CHECK(IsWhiteoutDevice(root / "n"));
      CHECK(IsWhiteoutDevice(root / "m"));
    }
  }
  SECTION("a hardlink to a skipped device") {
    auto unpacked = sandbox.Unpack({Device("null", 'c', 1, 3), Hardlink("h", "null")});
    REQUIRE_FALSE(unpacked.ok());
    CHECK(unpacked.error().message.find("layer entry h:") != std::string::npos);
  }
  RequireNoDevices(root);
  sandbox.RequireOutsideUntouched();
}

TEST_CASE("UnpackLayer cleans .. in the middle of names and refuses it above the root",
          "[rootfs][hostile]") {
  const WhiteoutMode mode = GENERATE(WhiteoutMode::kApply, WhiteoutMode::kOverlay);
  Sandbox sandbox(mode);
  const fs::path root = sandbox.root();
  for (TarItem item :
       {File("a/b/../../../outside/victim", "owned"), File("a/./b/../../../x"),
        Folder("a/../../newdir"), Symlink("../evil", "/"), Symlink("a/b/../../../evil", "/"),
        Hardlink("../h", "x"), Hardlink("a/../../h", "x"), Item("a/../../fifo", 'p', 0644),
        Device("a/../../null", 'c', 1, 3)}) {
    INFO(item.name);
    auto unpacked = sandbox.Unpack({File("x", "x"), item});
    REQUIRE_FALSE(unpacked.ok());
    // (libarchive writes a folder's name with a trailing '/'.)
    CHECK(unpacked.error().message.find("layer entry " + item.name) != std::string::npos);
    CHECK(unpacked.error().message.find("climbs out") != std::string::npos);
  }
  REQUIRE(sandbox
              .Unpack({File("a/b/../../c", "c"), File("./a/./b/.././c", "ac"),
                       Symlink("a/b/../l", "../c"), Hardlink("a/x/../../h", "a/b/../../c")})
              .ok());
  CHECK(ReadFile(root / "c") == "c");
  CHECK(ReadFile(root / "a/c") == "ac");
  CHECK(ReadFile(root / "a/l") == "c");
  CHECK(Lstat(root / "h").st_ino == Lstat(root / "c").st_ino);
  sandbox.RequireOutsideUntouched();
}

TEST_CASE("UnpackLayer handles very long names without leaving the root", "[rootfs][hostile]") {
  const WhiteoutMode mode = GENERATE(WhiteoutMode::kApply, WhiteoutMode::kOverlay);
  if (!CanMakeWhiteouts(mode)) return;
  Sandbox sandbox(mode);
  const fs::path root = sandbox.root();
  auto repeat = [](const std::string& part, int times) {
    std::string joined;
    for (int i = 0; i < times; ++i) joined += part;
    return joined;
  };
  const std::string component(250, 'n');
  // 15 components of 250: about 3,800 characters, under PATH_MAX.
  std::string deep = repeat(component + "/", 14) + component;

  SECTION("names the kernel refuses fail the layer") {
    for (std::string name : {std::string(300, 'n'), repeat(component + "/", 20) + "file",
                             std::string(".wh.") + std::string(300, 'n')}) {
      INFO(name.size());
      auto unpacked = sandbox.Unpack({File(name, "x")});
      REQUIRE_FALSE(unpacked.ok());
    }
  }
  SECTION("a long name that climbs out at its end") {
    auto unpacked =
        sandbox.Unpack({File(repeat("a/", 2000) + repeat("../", 2001) + "outside/victim", "x")});
    REQUIRE_FALSE(unpacked.ok());
    CHECK(unpacked.error().message.find("climbs out") != std::string::npos);
  }
  SECTION("long names that stay inside") {
    REQUIRE(sandbox
                .Unpack({File(deep + "/file", "deep"), File(repeat("x/../", 1000) + "inside", "in"),
                         Symlink("link", "/" + deep), File("link/through", "through"),
                         Symlink("long-target", repeat("../", 1300) + "outside/victim"),
                         File("long-target", "replaced")})
                .ok());
    CHECK(ReadFile(root / deep / "file") == "deep");
    CHECK(ReadFile(root / "inside") == "in");
    CHECK(ReadFile(root / deep / "through") == "through");
    CHECK(ReadFile(root / "long-target") == "replaced");
  }
  SECTION("a tree deeper than PATH_MAX, made through a symlink") {
    REQUIRE(sandbox
                .Unpack({Folder(deep), Symlink("hop", "/" + deep),
                         File("hop/" + deep + "/file", "x"), File("hop/" + deep + "/.wh.file")})
                .ok());
  }
  sandbox.RequireOutsideUntouched();
}

TEST_CASE("UnpackLayer reports a damaged layer", "[rootfs]") {
  TempDir temp;
  std::ofstream(temp.path() / "broken") << "this is not a tar";
  fs::create_directories(temp.path() / "root");
  auto unpacked = UnpackLayer(temp.path() / "broken", temp.path() / "root");
  REQUIRE_FALSE(unpacked.ok());
  CHECK(unpacked.error().location.file == (temp.path() / "broken").string());

  auto missing_root = UnpackLayer(temp.path() / "broken", temp.path() / "no-root");
  REQUIRE_FALSE(missing_root.ok());
}

}  // namespace
}  // namespace builder
