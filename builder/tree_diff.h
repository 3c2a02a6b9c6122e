#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "builder/layer_writer.h"
#include "core/result.h"

namespace builder {

/// One path of a TreeSnapshot: what lstat said about it, and a symlink's target.
struct TreeNode {
  enum class Type { kFile, kDirectory, kSymlink };

  Type type = Type::kFile;
  std::uint32_t mode = 0;  // permission bits, 07777
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::int64_t size = 0;
  std::int64_t mtime_ns = 0;
  std::int64_t ctime_ns = 0;
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  std::uint64_t link_count = 0;
  std::string link_target;                    // kSymlink
  std::map<std::string, std::string> xattrs;  // kFile, kDirectory: the IsLayerXattr ones
};

/// What a folder held at one moment: per path the type, mode, uid, gid,
/// size, mtime, inode, ctime (ns), link target and the extended attributes
/// layers carry (IsLayerXattr) — enough to tell afterwards
/// what changed without reading contents (ctime changes on any write, chmod,
/// chown or link and cannot be set by users). A `run` step takes one of its
/// root before the command and hands it to DiffTree after.
///
/// Paths are relative and '/'-separated ("usr/bin/env"); the root itself is
/// not in it. Fifos, sockets and device nodes are left out: a layer cannot
/// carry them (see UnpackLayer), so for a diff they do not exist.
class TreeSnapshot {
 public:
  /// Walks `root` without following symlinks.
  static core::Result<TreeSnapshot> Take(const std::filesystem::path& root);

  const std::map<std::string, TreeNode>& nodes() const { return nodes_; }

 private:
  std::map<std::string, TreeNode> nodes_;
};

/// The layer entries that turn `before` into the current content of `root`:
/// - new and changed files, folders and symlinks, each with its parent
///   folders (so that their modes and owners are right when unpacked);
///   files compare by inode, size, mtime, ctime, mode, owner and xattrs,
///   folders by inode, mode, owner, mtime and xattrs (a folder's ctime moves
///   with every entry added or removed, which the entries themselves already
///   say), so a command that only sets a capability changes the file;
/// - a whiteout `DIR/.wh.NAME` for each deleted path, only the topmost one
///   (nothing inside a deleted folder), and none where the path now holds
///   something of another type (the new entry replaces it when unpacked);
/// - for a folder that was deleted and made again (its inode changed), an
///   opaque whiteout `DIR/.wh..wh..opq` and everything now in it;
/// - files of the new set that share an inode: the first path (in sorted
///   order) as a file, the others as kHardlink to it.
/// `source` of file entries points into `root`, mtimes are in seconds; the
/// entries are sorted by path. An unchanged tree gives no entries.
core::Result<std::vector<LayerEntry>> DiffTree(const TreeSnapshot& before,
                                               const std::filesystem::path& root);

}  // namespace builder
