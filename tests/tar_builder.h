#pragma once

// Hand-made layer tars for tests: entries written one by one with
// libarchive, so that a test can say exactly what a hostile layer holds
// (names with `..`, symlinks out, hardlinks, devices, whiteouts), which no
// well-behaved layer writer would produce. Shared by the unpacker's tests
// (builder/rootfs_test.cc) and the agent's (agents/image_layers_test.cc).
//
// Beside it, TreeFingerprint: what a hostile layer could have changed in a
// folder it must not touch, to compare before and after.

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace tests {

/// One tar entry as a test writes it: 'f' file, 'd' folder, 'l' symlink,
/// 'h' hardlink, 'p' fifo, 'c' character device, 'b' block device.
struct TarItem {
  std::string name;
  char type = 'f';
  std::string data;
  unsigned mode = 0644;
  std::int64_t uid = 0;
  std::int64_t gid = 0;
  std::int64_t mtime = 1700000000;
  std::string link;           // the target of a symlink or hardlink
  unsigned device_major = 1;  // of a 'c' or 'b' entry: 1/3 is /dev/null
  unsigned device_minor = 3;
  std::map<std::string, std::string> xattrs;  // written as pax xattr records
};

TarItem Item(std::string name, char type, unsigned mode);
TarItem File(std::string name, std::string data = "", unsigned mode = 0644);
TarItem Folder(std::string name, unsigned mode = 0755);
TarItem Symlink(std::string name, std::string target);
TarItem Hardlink(std::string name, std::string target);
/// A character ('c') or block ('b') device node.
TarItem Device(std::string name, char type, unsigned major, unsigned minor);

/// Writes `items` in order as a pax tar at `path`, gzip'd when `gzip`;
/// false with `err` set when libarchive refuses.
bool WriteTar(const std::filesystem::path& path, const std::vector<TarItem>& items, bool gzip,
              std::string* err);

/// Everything a hostile layer could change about the tree at `root`, the
/// root folder included, by path ("" for the root itself): type, mode,
/// owner, size, mtime, ctime (so a chmod or chown back to the same value
/// still shows), link count, extended attributes, and a file's content or
/// a symlink's target. Two equal fingerprints mean nothing was created,
/// deleted, written, chmod'ed, chown'ed or linked in the tree.
std::map<std::string, std::string> TreeFingerprint(const std::filesystem::path& root);

}  // namespace tests
