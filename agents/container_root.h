#pragma once

#include <filesystem>
#include <vector>

#include "core/result.h"

namespace agents {

/// A container's root file system: its image's unpacked layers, read-only and
/// shared by every container of the image, under a private writable upper
/// folder. It is an overlay mount (lowerdir = the layers, top first) where
/// the host has overlayfs, else a full copy of the layers applied in order.
/// `dir` holds everything it makes (rootfs/, upper/, work/); Remove()
/// unmounts and deletes it all. The object does not unmount on destruction:
/// a container outlives an agent that is killed, and the restarted agent
/// adopts or removes its roots by path (Adopt).
///
/// Each layer is a folder in overlay form: one layer unpacked alone by
/// builder::UnpackLayer with WhiteoutMode::kOverlay, its deletions kept as
/// character devices 0/0 and its opaque folders marked with the xattr
/// trusted.overlay.opaque=y. overlayfs reads that form itself; the copy
/// honours it the same way (a 0/0 device deletes its name, an opaque
/// folder replaces the one below instead of merging), so both give the same
/// tree. The copy keeps symlinks, owners, modes, mtimes and hardlinks
/// within a layer, but no extended attributes.
class ContainerRoot {
 public:
  /// `layers` bottom first, as a manifest lists them. With `use_overlay`
  /// it mounts, except where the mount options cannot hold the layers (more
  /// than one page of them, or a path with ',', ':' or '\\'): then it copies.
  /// A failed mount is an error. Refuses a `dir` that holds a root already;
  /// on error removes what it made.
  static core::Result<ContainerRoot> Create(const std::vector<std::filesystem::path>& layers,
                                            const std::filesystem::path& dir, bool use_overlay);
  /// A root made earlier in `dir` (by this or an earlier agent process).
  static ContainerRoot Adopt(const std::filesystem::path& dir);

  std::filesystem::path rootfs() const { return dir_ / "rootfs"; }
  const std::filesystem::path& dir() const { return dir_; }

  /// Unmounts (lazily if busy) and deletes `dir` with all it holds; never
  /// follows a symlink out of it.
  core::Status Remove();

 private:
  explicit ContainerRoot(std::filesystem::path dir) : dir_(std::move(dir)) {}
  std::filesystem::path dir_;
};

}  // namespace agents
