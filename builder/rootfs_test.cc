#include "builder/rootfs.h"

#include <archive.h>
#include <archive_entry.h>
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

#include "tests/temp_dir.h"

namespace builder {
namespace {

namespace fs = std::filesystem;

using tests::TempDir;

/// One tar entry as a test writes it: 'f' file, 'd' folder, 'l' symlink,
/// 'h' hardlink, 'p' fifo, 'c' character device.
struct TarItem {
  std::string name;
  char type = 'f';
  std::string data;
  unsigned mode = 0644;
  std::int64_t uid = 0;
  std::int64_t gid = 0;
  std::int64_t mtime = 1700000000;
  std::string link;
};

TarItem Item(std::string name, char type, unsigned mode) {
  TarItem item;
  item.name = std::move(name);
  item.type = type;
  item.mode = mode;
  return item;
}
TarItem File(std::string name, std::string data = "", unsigned mode = 0644) {
  TarItem item = Item(std::move(name), 'f', mode);
  item.data = std::move(data);
  return item;
}
TarItem Folder(std::string name, unsigned mode = 0755) {
  return Item(std::move(name), 'd', mode);
}
TarItem Symlink(std::string name, std::string target) {
  TarItem item = Item(std::move(name), 'l', 0777);
  item.link = std::move(target);
  return item;
}
TarItem Hardlink(std::string name, std::string target) {
  TarItem item = Item(std::move(name), 'h', 0644);
  item.link = std::move(target);
  return item;
}

struct ArchiveWriteFree {
  void operator()(struct archive* archive) const { archive_write_free(archive); }
};

void WriteTar(const fs::path& path, const std::vector<TarItem>& items, bool gzip = true) {
  std::unique_ptr<struct archive, ArchiveWriteFree> archive(archive_write_new());
  archive_write_set_format_pax_restricted(archive.get());
  if (gzip) archive_write_add_filter_gzip(archive.get());
  REQUIRE(archive_write_open_filename(archive.get(), path.c_str()) == ARCHIVE_OK);
  for (const TarItem& item : items) {
    archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, item.name.c_str());
    archive_entry_set_perm(entry, item.mode);
    archive_entry_set_uid(entry, item.uid);
    archive_entry_set_gid(entry, item.gid);
    archive_entry_set_mtime(entry, item.mtime, 0);
    switch (item.type) {
      case 'f':
        archive_entry_set_filetype(entry, AE_IFREG);
        archive_entry_set_size(entry, static_cast<la_int64_t>(item.data.size()));
        break;
      case 'd':
        archive_entry_set_filetype(entry, AE_IFDIR);
        break;
      case 'l':
        archive_entry_set_filetype(entry, AE_IFLNK);
        archive_entry_set_symlink(entry, item.link.c_str());
        break;
      case 'h':
        archive_entry_set_filetype(entry, AE_IFREG);
        archive_entry_set_hardlink(entry, item.link.c_str());
        archive_entry_set_size(entry, 0);
        break;
      case 'p':
        archive_entry_set_filetype(entry, AE_IFIFO);
        break;
      case 'c':
        archive_entry_set_filetype(entry, AE_IFCHR);
        archive_entry_set_rdev(entry, makedev(1, 3));
        break;
    }
    REQUIRE(archive_write_header(archive.get(), entry) == ARCHIVE_OK);
    if (item.type == 'f' && !item.data.empty()) {
      REQUIRE(archive_write_data(archive.get(), item.data.data(), item.data.size()) ==
              static_cast<la_ssize_t>(item.data.size()));
    }
    archive_entry_free(entry);
  }
  REQUIRE(archive_write_close(archive.get()) == ARCHIVE_OK);
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

/// Everything about a tree that a hostile layer could change: per path the
/// type, mode, owner, size, mtime and content or link target.
std::map<std::string, std::string> Fingerprint(const fs::path& root) {
  std::map<std::string, std::string> prints;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    struct stat info = Lstat(it->path());
    std::ostringstream print;
    print << std::oct << info.st_mode << std::dec << ' ' << info.st_uid << ':' << info.st_gid << ' '
          << info.st_size << ' ' << info.st_mtim.tv_sec << '.' << info.st_mtim.tv_nsec << ' '
          << info.st_nlink << ' ';
    if (S_ISREG(info.st_mode)) print << ReadFile(it->path());
    if (S_ISLNK(info.st_mode)) print << fs::read_symlink(it->path()).string();
    prints[fs::relative(it->path(), root).string()] = print.str();
  }
  return prints;
}

/// A root to unpack into and, beside it, a sentinel folder that no layer may
/// touch, whatever its entries say.
class Sandbox {
 public:
  Sandbox() {
    fs::create_directories(root());
    fs::create_directories(outside() / "sub" / "dir");
    std::ofstream(outside() / "victim") << "precious";
    std::ofstream(outside() / "sub" / "dir" / "file") << "also precious";
    fs::permissions(outside() / "victim", fs::perms(0640));
    before_ = Fingerprint(outside());
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
    return UnpackLayer(layer(), root());
  }

  /// Unpacks in overlay form (WhiteoutMode::kOverlay).
  core::Status UnpackOverlay(const std::vector<TarItem>& items) const {
    WriteTar(layer(), items);
    return UnpackLayer(layer(), root(), WhiteoutMode::kOverlay);
  }

  /// Nothing outside the root moved: the sentinel is as it was, nothing new
  /// sits beside the root, /etc/passwd has no new link.
  void RequireOutsideUntouched() const {
    CHECK(Fingerprint(outside()) == before_);
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
  TempDir temp_;
  std::map<std::string, std::string> before_;
  struct stat passwd_ {};
};

TEST_CASE("UnpackLayer writes files, folders, symlinks and hardlinks with their metadata",
          "[rootfs]") {
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
  Sandbox sandbox;
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
  Sandbox sandbox;
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
  Sandbox sandbox;
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
  Sandbox sandbox;
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
  if (geteuid() != 0) {
    WARN("skipped: whiteout devices and trusted.* attributes need root");
    return;
  }
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

TEST_CASE("UnpackLayer in overlay form keeps whiteouts inside the root", "[rootfs][hostile]") {
  if (geteuid() != 0) {
    WARN("skipped: whiteout devices and trusted.* attributes need root");
    return;
  }
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
