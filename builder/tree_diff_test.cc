#include "builder/tree_diff.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/skip.h"

namespace builder {
namespace {

namespace fs = std::filesystem;

/// A tree under /tmp for one test, removed with all it holds.
class TempTree {
 public:
  TempTree() {
    std::string pattern = (fs::temp_directory_path() / "gantry-tree-diff-test-XXXXXX").string();
    root_ = mkdtemp(pattern.data());
    Write("a/file", "hello");
    Write("a/other", "other");
    Write("b/c/d/e", "deep");
    Write("b/c/f", "deep");
    Write("r/old", "old");
    Write("s/x", "x");
    Write("t/kept", "kept");
    Write("plain", "plain");
    fs::create_symlink("plain", root_ / "link");
  }
  ~TempTree() {
    std::error_code ignored;
    fs::remove_all(root_, ignored);
  }

  const fs::path& root() const { return root_; }
  fs::path operator/(const std::string& path) const { return root_ / path; }

  void Write(const std::string& path, const std::string& content) const {
    fs::create_directories((root_ / path).parent_path());
    std::ofstream(root_ / path, std::ios::binary | std::ios::trunc) << content;
  }

  TreeSnapshot Snapshot() const {
    auto snapshot = TreeSnapshot::Take(root_);
    REQUIRE(snapshot.ok());
    return *snapshot;
  }

  /// The diff as "PATH TYPE" lines, with a hardlink's or symlink's target.
  std::vector<std::string> Diff(const TreeSnapshot& before) const {
    auto entries = DiffTree(before, root_);
    REQUIRE(entries.ok());
    std::vector<std::string> lines;
    for (const LayerEntry& entry : *entries) {
      switch (entry.type) {
        case LayerEntry::Type::kFile:
          lines.push_back(entry.path + " file");
          if (entry.path.find(".wh.") == std::string::npos)
            CHECK(entry.source == root_ / entry.path);
          break;
        case LayerEntry::Type::kDirectory:
          lines.push_back(entry.path + " dir");
          break;
        case LayerEntry::Type::kSymlink:
          lines.push_back(entry.path + " symlink " + entry.link_target);
          break;
        case LayerEntry::Type::kHardlink:
          lines.push_back(entry.path + " hardlink " + entry.link_target);
          break;
      }
    }
    return lines;
  }

  std::vector<LayerEntry> Entries(const TreeSnapshot& before) const {
    auto entries = DiffTree(before, root_);
    REQUIRE(entries.ok());
    return *entries;
  }

 private:
  fs::path root_;
};

using Lines = std::vector<std::string>;

TEST_CASE("TreeSnapshot records types, modes, owners and link targets", "[tree_diff]") {
  TempTree tree;
  mkfifo((tree / "fifo").c_str(), 0644);
  TreeSnapshot snapshot = tree.Snapshot();
  const auto& nodes = snapshot.nodes();
  CHECK(nodes.size() == 16);
  CHECK_FALSE(nodes.contains(""));
  CHECK_FALSE(nodes.contains("fifo"));
  CHECK(nodes.at("a").type == TreeNode::Type::kDirectory);
  CHECK(nodes.at("a/file").type == TreeNode::Type::kFile);
  CHECK(nodes.at("a/file").size == 5);
  CHECK(nodes.at("link").type == TreeNode::Type::kSymlink);
  CHECK(nodes.at("link").link_target == "plain");
  CHECK(nodes.at("b/c/d/e").link_count == 1);

  CHECK_FALSE(TreeSnapshot::Take(tree / "missing").ok());
}

TEST_CASE("DiffTree of an unchanged tree has no entries", "[tree_diff]") {
  TempTree tree;
  TreeSnapshot before = tree.Snapshot();
  CHECK(tree.Diff(before).empty());
  // Reading does not count as a change.
  std::ifstream(tree / "a/file").get();
  CHECK(tree.Diff(before).empty());
}

TEST_CASE("DiffTree finds new, changed and deleted paths", "[tree_diff]") {
  TempTree tree;
  TreeSnapshot before = tree.Snapshot();

  SECTION("a new file comes with its parent folders") {
    tree.Write("b/c/new", "new");
    CHECK(tree.Diff(before) == Lines{"b dir", "b/c dir", "b/c/new file"});
  }
  SECTION("a file rewritten with the same size and its old mtime") {
    struct stat info {};
    REQUIRE(stat((tree / "a/file").c_str(), &info) == 0);
    usleep(20000);
    tree.Write("a/file", "HELLO");
    struct timespec times[2] = {info.st_atim, info.st_mtim};
    REQUIRE(utimensat(AT_FDCWD, (tree / "a/file").c_str(), times, 0) == 0);
    CHECK(tree.Diff(before) == Lines{"a dir", "a/file file"});
  }
  SECTION("a file chmod'ed or chown'ed") {
    if (!tests::RootOrSkip("chown to another owner needs root")) return;
    fs::permissions(tree / "a/file", fs::perms(0600));
    REQUIRE(lchown((tree / "a/other").c_str(), 1234, 5678) == 0);
    auto entries = tree.Entries(before);
    REQUIRE(entries.size() == 3);
    CHECK(entries[1].path == "a/file");
    CHECK(entries[1].mode == 0600);
    CHECK(entries[2].path == "a/other");
    CHECK(entries[2].uid == 1234);
    CHECK(entries[2].gid == 5678);
  }
  SECTION("a folder chmod'ed") {
    fs::permissions(tree / "b/c", fs::perms(0700));
    auto entries = tree.Entries(before);
    REQUIRE(entries.size() == 2);
    CHECK(entries[1].path == "b/c");
    CHECK(entries[1].type == LayerEntry::Type::kDirectory);
    CHECK(entries[1].mode == 0700);
  }
  SECTION("a deleted file is whited out in its folder") {
    fs::remove(tree / "a/file");
    CHECK(tree.Diff(before) == Lines{"a dir", "a/.wh.file file"});
  }
  SECTION("a deleted tree gets one whiteout") {
    fs::remove_all(tree / "b");
    CHECK(tree.Diff(before) == Lines{".wh.b file"});
    auto entries = tree.Entries(before);
    CHECK(entries[0].source.empty());
    CHECK(entries[0].mode == 0);
  }
  SECTION("a deleted subtree gets one whiteout") {
    fs::remove_all(tree / "b/c/d");
    CHECK(tree.Diff(before) == Lines{"b dir", "b/c dir", "b/c/.wh.d file"});
  }
  SECTION("a folder replaced by a file") {
    fs::remove_all(tree / "s");
    tree.Write("s", "now a file");
    CHECK(tree.Diff(before) == Lines{"s file"});
  }
  SECTION("a file replaced by a folder") {
    fs::remove(tree / "plain");
    tree.Write("plain/inside", "in");
    CHECK(tree.Diff(before) == Lines{"plain dir", "plain/.wh..wh..opq file", "plain/inside file"});
  }
  SECTION("a folder replaced by a new folder is opaque, with all its new content") {
    // Made before the old ones are removed, so no inode number is reused.
    fs::rename(tree / "r", tree / "r-old");
    fs::rename(tree / "t", tree / "t-old");
    tree.Write("r/new", "new");
    fs::create_directories(tree / "t");
    fs::rename(tree / "t-old/kept", tree / "t/kept");
    fs::remove_all(tree / "r-old");
    fs::remove_all(tree / "t-old");
    CHECK(tree.Diff(before) == Lines{"r dir", "r/.wh..wh..opq file", "r/new file", "t dir",
                                     "t/.wh..wh..opq file", "t/kept file"});
  }
  SECTION("a new symlink, and a symlink pointed elsewhere") {
    fs::create_symlink("/a/file", tree / "a/to-file");
    fs::remove(tree / "link");
    fs::create_symlink("a", tree / "link");
    CHECK(tree.Diff(before) == Lines{"a dir", "a/to-file symlink /a/file", "link symlink a"});
  }
  SECTION("a symlink replaced by a file") {
    fs::remove(tree / "link");
    tree.Write("link", "file");
    CHECK(tree.Diff(before) == Lines{"link file"});
  }
  SECTION("a fifo is no entry") {
    REQUIRE(mkfifo((tree / "a/fifo").c_str(), 0644) == 0);
    // The folder's mtime moved, which is all there is to write.
    CHECK(tree.Diff(before) == Lines{"a dir"});
  }
}

TEST_CASE("DiffTree writes files sharing an inode as hardlinks to the first", "[tree_diff]") {
  TempTree tree;
  TreeSnapshot before = tree.Snapshot();
  tree.Write("h1", "shared");
  fs::create_hard_link(tree / "h1", tree / "h2");
  fs::create_hard_link(tree / "h1", tree / "a/h0");
  // A new link to an old file changes that file too (its link count).
  fs::create_hard_link(tree / "plain", tree / "plain2");
  CHECK(tree.Diff(before) == Lines{"a dir", "a/h0 file", "h1 hardlink a/h0", "h2 hardlink a/h0",
                                   "plain file", "plain2 hardlink plain"});
}

TEST_CASE("DiffTree gives mtimes in seconds and the owners of the tree", "[tree_diff]") {
  if (!tests::RootOrSkip("chown to another owner needs root")) return;
  TempTree tree;
  TreeSnapshot before = tree.Snapshot();
  tree.Write("stamped", "x");
  REQUIRE(lchown((tree / "stamped").c_str(), 42, 43) == 0);
  struct timespec times[2] = {{1600000000, 999999999}, {1600000000, 999999999}};
  REQUIRE(utimensat(AT_FDCWD, (tree / "stamped").c_str(), times, 0) == 0);
  fs::permissions(tree / "stamped", fs::perms(04751));
  REQUIRE(lchown((tree / "stamped").c_str(), 42, 43) == 0);
  fs::permissions(tree / "stamped", fs::perms(04751));
  auto entries = tree.Entries(before);
  REQUIRE(entries.size() == 1);
  CHECK(entries[0].mtime == 1600000000);
  CHECK(entries[0].uid == 42);
  CHECK(entries[0].gid == 43);
  CHECK(entries[0].mode == 04751);
}

// security.capability for cap_net_bind_service=ep (VFS_CAP_REVISION_2,
// effective), what `setcap cap_net_bind_service=+ep FILE` writes.
const std::string kNetBindCapability(
    "\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 20);

void SetXattr(const fs::path& path, const char* name, const std::string& value) {
  INFO(path << " " << name);
  REQUIRE(lsetxattr(path.c_str(), name, value.data(), value.size(), 0) == 0);
}

TEST_CASE("DiffTree carries capabilities and user xattrs, and a change to one alone is a change",
          "[tree_diff]") {
  if (!tests::RootOrSkip("setting security.capability needs root")) return;
  TempTree tree;
  SetXattr(tree / "a/other", "user.kept", "same");
  TreeSnapshot before = tree.Snapshot();
  CHECK(before.nodes().at("a/other").xattrs ==
        std::map<std::string, std::string>{{"user.kept", "same"}});
  SetXattr(tree / "a/file", "security.capability", kNetBindCapability);
  SetXattr(tree / "b", "user.note", "folder");
  auto entries = tree.Entries(before);
  std::map<std::string, std::map<std::string, std::string>> xattrs;
  for (const LayerEntry& entry : entries) xattrs[entry.path] = entry.xattrs;
  CHECK(xattrs == std::map<std::string, std::map<std::string, std::string>>{
                      {"a", {}},
                      {"a/file", {{"security.capability", kNetBindCapability}}},
                      {"b", {{"user.note", "folder"}}}});
  TreeSnapshot after = tree.Snapshot();
  CHECK(tree.Diff(after).empty());
  SetXattr(tree / "t", "trusted.not-carried", "x");  // not a layer's: no change
  CHECK(tree.Diff(after).empty());
  REQUIRE(lremovexattr((tree / "b").c_str(), "user.note") == 0);
  CHECK(tree.Diff(after) == Lines{"b dir"});
}

}  // namespace
}  // namespace builder
