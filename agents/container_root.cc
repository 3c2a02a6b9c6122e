#include "agents/container_root.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "builder/rootfs.h"

namespace agents {
namespace {

namespace fs = std::filesystem;

core::Error IoError(const std::string& what, const fs::path& path, const std::string& reason) {
  return core::Error{core::ErrorCode::kIo, what + " " + path.string() + ": " + reason, {}};
}

core::Error ErrnoError(const std::string& what, const fs::path& path) {
  return IoError(what, path, std::strerror(errno));
}

// overlayfs's mount options for `layers` (bottom first) under `dir`, or
// nothing when they cannot be said: a path with a character that separates
// options or lowerdirs, or more than the one page the kernel reads.
std::optional<std::string> OverlayOptions(const std::vector<fs::path>& layers,
                                          const fs::path& dir) {
  std::string lower;
  for (auto layer = layers.rbegin(); layer != layers.rend(); ++layer) {
    if (!lower.empty()) lower += ':';
    lower += layer->string();
  }
  std::string options = "lowerdir=" + lower + ",upperdir=" + (dir / "upper").string() +
                        ",workdir=" + (dir / "work").string();
  for (const fs::path& layer : layers) {
    if (layer.string().find_first_of(",:\\") != std::string::npos) return std::nullopt;
  }
  if (dir.string().find_first_of(",:\\") != std::string::npos) return std::nullopt;
  if (options.size() + 1 > static_cast<std::size_t>(sysconf(_SC_PAGESIZE))) return std::nullopt;
  return options;
}

bool IsWhiteout(const struct stat& info) {
  return S_ISCHR(info.st_mode) && info.st_rdev == makedev(0, 0);
}

bool IsOpaque(const fs::path& folder) {
  char value[8];
  ssize_t size = lgetxattr(folder.c_str(), builder::kOverlayOpaqueXattr, value, sizeof value);
  return size == 1 && value[0] == builder::kOverlayOpaqueValue[0];
}

// Removes `path` with all it holds, never following a symlink; missing is fine.
core::Status RemoveTree(const fs::path& path) {
  std::error_code error;
  fs::remove_all(path, error);
  if (error) return IoError("cannot remove", path, error.message());
  return core::Ok{};
}

// Applies one layer folder in overlay form (builder::WhiteoutMode::kOverlay)
// onto `root` as overlayfs would show it above what is there: a whiteout
// device deletes its name, an opaque folder is emptied first, a folder over
// a folder merges, anything else replaces. Copies keep symlinks, owners,
// modes, mtimes and the hardlinks within the layer.
class LayerCopier {
 public:
  LayerCopier(fs::path layer, fs::path root) : layer_(std::move(layer)), root_(std::move(root)) {}

  core::Status Run() {
    auto copied = CopyFolder(layer_, root_);
    if (!copied) return copied;
    // Folders' mtimes last: copying their content bumped them.
    for (const auto& [target, source] : folder_times_) {
      auto timed = CopyTimes(source, target);
      if (!timed) return timed;
    }
    return core::Ok{};
  }

 private:
  // `target` is a real folder (made or checked by the caller): merges the
  // content of the layer's folder `source` into it.
  core::Status CopyFolder(const fs::path& source, const fs::path& target) {
    std::error_code error;
    for (fs::directory_iterator it(source, error), end; !error && it != end; it.increment(error)) {
      auto copied = CopyEntry(it->path(), target / it->path().filename());
      if (!copied) return copied;
    }
    if (error) return IoError("cannot list", source, error.message());
    return core::Ok{};
  }

  core::Status CopyEntry(const fs::path& source, const fs::path& target) {
    struct stat info {};
    if (lstat(source.c_str(), &info) != 0) return ErrnoError("cannot inspect", source);
    struct stat existing {};
    const bool exists = lstat(target.c_str(), &existing) == 0;
    if (IsWhiteout(info)) return RemoveTree(target);

    if (S_ISDIR(info.st_mode)) {
      // A folder over a folder merges, unless it is opaque: then it is all there is.
      const bool merge = exists && S_ISDIR(existing.st_mode) && !IsOpaque(source);
      if (!merge) {
        auto removed = exists ? RemoveTree(target) : core::Status(core::Ok{});
        if (!removed) return removed;
        if (mkdir(target.c_str(), 0700) != 0) return ErrnoError("cannot make", target);
      }
      auto owned = CopyOwnerAndMode(info, target);
      if (!owned) return owned;
      folder_times_.emplace_back(target, source);
      return CopyFolder(source, target);
    }

    if (exists) {
      auto removed = RemoveTree(target);
      if (!removed) return removed;
    }
    if (S_ISLNK(info.st_mode)) {
      std::error_code error;
      fs::copy_symlink(source, target, error);
      if (error) return IoError("cannot copy the symlink", source, error.message());
      if (lchown(target.c_str(), info.st_uid, info.st_gid) != 0)
        return ErrnoError("cannot set the owner of", target);
      return CopyTimes(source, target);
    }
    if (!S_ISREG(info.st_mode)) return core::Ok{};  // layers hold no devices, fifos or sockets
    if (info.st_nlink > 1) {
      auto linked = hardlinks_.find({info.st_dev, info.st_ino});
      if (linked != hardlinks_.end()) {
        if (link(linked->second.c_str(), target.c_str()) != 0)
          return ErrnoError("cannot link", target);
        return core::Ok{};
      }
      hardlinks_.emplace(std::pair{info.st_dev, info.st_ino}, target);
    }
    std::error_code error;
    fs::copy_file(source, target, error);
    if (error) return IoError("cannot copy", source, error.message());
    auto owned = CopyOwnerAndMode(info, target);
    if (!owned) return owned;
    return CopyTimes(source, target);
  }

  // The owner first: chown clears setuid and setgid bits.
  static core::Status CopyOwnerAndMode(const struct stat& info, const fs::path& target) {
    if (lchown(target.c_str(), info.st_uid, info.st_gid) != 0)
      return ErrnoError("cannot set the owner of", target);
    if (chmod(target.c_str(), info.st_mode & 07777) != 0)
      return ErrnoError("cannot set the mode of", target);
    return core::Ok{};
  }

  static core::Status CopyTimes(const fs::path& source, const fs::path& target) {
    struct stat info {};
    if (lstat(source.c_str(), &info) != 0) return ErrnoError("cannot inspect", source);
    struct timespec times[2] = {info.st_atim, info.st_mtim};
    if (utimensat(AT_FDCWD, target.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0)
      return ErrnoError("cannot set the times of", target);
    return core::Ok{};
  }

  fs::path layer_;
  fs::path root_;
  std::vector<std::pair<fs::path, fs::path>> folder_times_;  // target, source
  std::map<std::pair<dev_t, ino_t>, fs::path> hardlinks_;    // first copy of each
};

core::Status Build(const std::vector<fs::path>& layers, const fs::path& dir, bool use_overlay) {
  const fs::path rootfs = dir / "rootfs";
  std::error_code error;
  fs::create_directories(rootfs, error);
  if (error) return IoError("cannot make", rootfs, error.message());
  for (const fs::path& layer : layers) {
    if (!fs::is_directory(layer, error))
      return IoError("cannot use the layer", layer, "it is not an unpacked layer folder");
  }

  std::optional<std::string> options = OverlayOptions(layers, dir);
  if (use_overlay && options && !layers.empty()) {
    for (const char* part : {"upper", "work"}) {
      fs::create_directory(dir / part, error);
      if (error) return IoError("cannot make", dir / part, error.message());
    }
    if (mount("overlay", rootfs.c_str(), "overlay", 0, options->c_str()) != 0)
      return ErrnoError("cannot mount the overlay at", rootfs);
    return core::Ok{};
  }
  // A copy: the layers applied in order, bottom first.
  for (const fs::path& layer : layers) {
    auto copied = LayerCopier(layer, rootfs).Run();
    if (!copied) return copied;
  }
  return core::Ok{};
}

}  // namespace

core::Result<ContainerRoot> ContainerRoot::Create(const std::vector<fs::path>& layers,
                                                  const fs::path& dir, bool use_overlay) {
  std::error_code error;
  const fs::path absolute = fs::absolute(dir, error);
  if (error) return IoError("cannot make a container root in", dir, error.message());
  if (fs::exists(fs::symlink_status(absolute / "rootfs", error)))
    return IoError("cannot make a container root in", dir, "it holds one already");
  ContainerRoot root(absolute);
  auto built = Build(layers, absolute, use_overlay);
  if (!built) {
    (void)root.Remove();  // what it made so far; the first error is the one to tell
    return built.error();
  }
  return root;
}

ContainerRoot ContainerRoot::Adopt(const fs::path& dir) {
  return ContainerRoot(dir);
}

core::Status ContainerRoot::Remove() {
  // Lazily: a process still in the root (a container being killed) keeps it
  // busy, but it is gone from the tree at once, so nothing below is deleted
  // through the mount.
  // EINVAL: not a mount (a copy); EPERM without root: nothing was mounted.
  if (umount2(rootfs().c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT &&
      !(errno == EPERM && geteuid() != 0)) {
    return ErrnoError("cannot unmount", rootfs());
  }
  return RemoveTree(dir_);
}

}  // namespace agents
