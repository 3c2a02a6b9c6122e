#include "builder/rootfs.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "builder/layer_writer.h"
#include "core/unique_fd.h"

namespace builder {
namespace {

using core::UniqueFd;

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kOpaqueWhiteout = ".wh..wh..opq";

struct ArchiveReadFree {
  void operator()(struct archive* archive) const { archive_read_free(archive); }
};

/// A path inside the root as its components: never empty strings, `.` or `..`.
using Components = std::vector<std::string>;

std::string Join(const Components& components, std::size_t count) {
  std::string path;
  for (std::size_t i = 0; i < count; ++i) {
    if (i > 0) path += '/';
    path += components[i];
  }
  return path;
}

std::string Join(const Components& components) {
  return Join(components, components.size());
}

/// Cleans a name from a tar header the way the layer means it: relative to
/// the root whether it starts with `/` or not, `.` and empty components
/// dropped, `..` taking back one component. Nothing when `..` would climb
/// above the root.
std::optional<Components> CleanName(std::string_view name) {
  Components components;
  std::size_t start = 0;
  while (start <= name.size()) {
    std::size_t end = name.find('/', start);
    if (end == std::string_view::npos) end = name.size();
    std::string_view part = name.substr(start, end - start);
    if (part == "..") {
      if (components.empty()) return std::nullopt;
      components.pop_back();
    } else if (!part.empty() && part != ".") {
      components.emplace_back(part);
    }
    start = end + 1;
  }
  return components;
}

/// openat2 with `root_fd` as `/`: symlinks and `..` met on the way are
/// resolved inside it, whatever they say.
int OpenInRoot(int root_fd, const std::string& path, int flags) {
  struct open_how how {};
  how.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  const char* name = path.empty() ? "." : path.c_str();
  for (int attempt = 0;; ++attempt) {
    long fd = syscall(SYS_openat2, root_fd, name, &how, sizeof how);
    // EAGAIN: a rename raced the lookup; the kernel asks for a retry.
    if (fd < 0 && errno == EAGAIN && attempt < 16) continue;
    return static_cast<int>(fd);
  }
}

/// Opens the folder `components[0, count)` inside the root, creating what is
/// missing (0755, root-owned) when `create`; -1 with errno set on failure.
int OpenFolder(int root_fd, const Components& components, std::size_t count, bool create) {
  UniqueFd current(OpenInRoot(root_fd, "", O_RDONLY | O_DIRECTORY));
  if (!current.valid()) return -1;
  for (std::size_t i = 1; i <= count; ++i) {
    std::string prefix = Join(components, i);
    int fd = OpenInRoot(root_fd, prefix, O_RDONLY | O_DIRECTORY);
    if (fd < 0 && errno == ENOENT && create) {
      // `current` is where prefix[0, i - 1) resolved to, so the component
      // made here is what the prefix resolves to next time.
      if (mkdirat(current.get(), components[i - 1].c_str(), 0755) != 0 && errno != EEXIST)
        return -1;
      fd = OpenInRoot(root_fd, prefix, O_RDONLY | O_DIRECTORY);
    }
    if (fd < 0) return -1;
    current = UniqueFd(fd);
  }
  return current.release();
}

/// The names in a folder, `.` and `..` left out; false with errno on failure.
bool ListFolder(int dir_fd, std::vector<std::string>* names) {
  int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  DIR* dir = fdopendir(fd);
  if (dir == nullptr) {
    close(fd);
    return false;
  }
  errno = 0;
  while (dirent* item = readdir(dir)) {
    std::string_view name = item->d_name;
    if (name != "." && name != "..") names->emplace_back(name);
  }
  int saved = errno;
  closedir(dir);
  errno = saved;
  return saved == 0;
}

/// Removes `name` in `dir_fd`, a folder with everything in it, never
/// following a symlink; a missing name is not an error.
bool RemoveAt(int dir_fd, const std::string& name) {
  struct stat info {};
  if (fstatat(dir_fd, name.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0) return errno == ENOENT;
  if (S_ISDIR(info.st_mode)) {
    UniqueFd folder(openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!folder.valid()) return false;
    std::vector<std::string> children;
    if (!ListFolder(folder.get(), &children)) return false;
    for (const std::string& child : children) {
      if (!RemoveAt(folder.get(), child)) return false;
    }
    return unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT;
  }
  return unlinkat(dir_fd, name.c_str(), 0) == 0 || errno == ENOENT;
}

/// Applies one layer; the state that lives across its entries.
class LayerUnpacker {
 public:
  LayerUnpacker(std::filesystem::path blob, int root_fd, WhiteoutMode whiteouts)
      : blob_(std::move(blob)), root_fd_(root_fd), whiteouts_(whiteouts) {}

  core::Status Run() {
    std::unique_ptr<struct archive, ArchiveReadFree> archive(archive_read_new());
    archive_read_support_filter_all(archive.get());
    archive_read_support_format_tar(archive.get());
    if (archive_read_open_filename(archive.get(), blob_.c_str(), 1 << 16) != ARCHIVE_OK) {
      return Fail("", std::string("cannot open the layer: ") + archive_error_string(archive.get()));
    }
    archive_entry* entry = nullptr;
    while (true) {
      int status = archive_read_next_header(archive.get(), &entry);
      if (status == ARCHIVE_EOF) break;
      if (status < ARCHIVE_WARN) {
        return Fail("",
                    std::string("cannot read the layer: ") + archive_error_string(archive.get()));
      }
      auto applied = Apply(archive.get(), entry);
      if (!applied) return applied;
    }
    return SetFolderTimes();
  }

 private:
  core::Status Fail(const std::string& entry, const std::string& message,
                    core::ErrorCode code = core::ErrorCode::kIo) const {
    std::string text = entry.empty() ? message : "layer entry " + entry + ": " + message;
    return core::Error{code, text, core::Location{blob_.string(), 0, 0}};
  }

  core::Status FailErrno(const std::string& entry, const std::string& what) const {
    return Fail(entry, what + ": " + std::strerror(errno));
  }

  static std::string Name(const char* locale_name, const char* utf8_name) {
    if (locale_name != nullptr) return locale_name;
    return utf8_name != nullptr ? utf8_name : "";
  }

  void MarkUnpacked(const Components& components) {
    for (std::size_t i = 1; i <= components.size(); ++i) unpacked_.insert(Join(components, i));
  }

  core::Status Apply(struct archive* archive, archive_entry* entry) {
    std::string name = Name(archive_entry_pathname(entry), archive_entry_pathname_utf8(entry));
    std::optional<Components> components = CleanName(name);
    if (!components) {
      return Fail(name, "the name climbs out of the image root", core::ErrorCode::kInvalidArgument);
    }
    if (components->empty()) return core::Ok{};  // the root itself: it is the caller's folder
    const std::string base = components->back();
    if (std::string_view(base).starts_with(kWhiteoutPrefix)) return Whiteout(name, *components);

    UniqueFd parent(OpenFolder(root_fd_, *components, components->size() - 1, true));
    if (!parent.valid()) return FailErrno(name, "cannot open or create its folder");
    MarkUnpacked(*components);

    const char* hardlink = archive_entry_hardlink(entry);
    if (hardlink == nullptr) hardlink = archive_entry_hardlink_utf8(entry);
    if (hardlink != nullptr) return Hardlink(name, parent.get(), base, hardlink);

    struct stat existing {};
    bool exists = fstatat(parent.get(), base.c_str(), &existing, AT_SYMLINK_NOFOLLOW) == 0;
    if (!exists && errno != ENOENT) return FailErrno(name, "cannot inspect what is there");
    const mode_t type = archive_entry_filetype(entry);
    if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK)
      return core::Ok{};  // devices, fifos, sockets
    if (exists && !(type == AE_IFDIR && S_ISDIR(existing.st_mode))) {
      if (!RemoveAt(parent.get(), base)) return FailErrno(name, "cannot remove what it replaces");
    }

    const uid_t uid = static_cast<uid_t>(archive_entry_uid(entry));
    const gid_t gid = static_cast<gid_t>(archive_entry_gid(entry));
    const mode_t mode = archive_entry_perm(entry) & 07777;
    struct timespec times[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
    if (archive_entry_mtime_is_set(entry)) {
      times[1] = {archive_entry_mtime(entry), archive_entry_mtime_nsec(entry)};
      times[0] = times[1];
    }

    if (type == AE_IFLNK) {
      std::string target = Name(archive_entry_symlink(entry), archive_entry_symlink_utf8(entry));
      if (symlinkat(target.c_str(), parent.get(), base.c_str()) != 0)
        return FailErrno(name, "cannot create the symlink");
      if (fchownat(parent.get(), base.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0 &&
          !MayIgnoreChown()) {
        return FailErrno(name, "cannot set the owner");
      }
      if (utimensat(parent.get(), base.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
        return FailErrno(name, "cannot set the mtime");
      }
      return core::Ok{};
    }

    if (type == AE_IFDIR) {
      if (!(exists && S_ISDIR(existing.st_mode)) &&
          mkdirat(parent.get(), base.c_str(), 0700) != 0) {
        return FailErrno(name, "cannot create the folder");
      }
      UniqueFd folder(
          openat(parent.get(), base.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!folder.valid()) return FailErrno(name, "cannot open the folder");
      auto owned = SetOwnerAndMode(name, folder.get(), uid, gid, mode);
      if (!owned) return owned;
      auto attributes = SetXattrs(name, folder.get(), entry);
      if (!attributes) return attributes;
      folder_times_.push_back({*components, times[1]});
      return core::Ok{};
    }

    UniqueFd file(openat(parent.get(), base.c_str(),
                         O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!file.valid()) return FailErrno(name, "cannot create the file");
    const void* data = nullptr;
    size_t size = 0;
    la_int64_t offset = 0;
    while (true) {
      int status = archive_read_data_block(archive, &data, &size, &offset);
      if (status == ARCHIVE_EOF) break;
      if (status < ARCHIVE_WARN) {
        return Fail(name, std::string("cannot read its content: ") + archive_error_string(archive));
      }
      const char* bytes = static_cast<const char*>(data);
      while (size > 0) {
        ssize_t written = pwrite(file.get(), bytes, size, offset);
        if (written < 0 && errno == EINTR) continue;
        if (written <= 0) return FailErrno(name, "cannot write its content");
        bytes += written;
        offset += written;
        size -= static_cast<size_t>(written);
      }
    }
    // Sparse entries end in a hole that no block above wrote.
    if (archive_entry_size_is_set(entry) && ftruncate(file.get(), archive_entry_size(entry)) != 0) {
      return FailErrno(name, "cannot set its size");
    }
    auto owned = SetOwnerAndMode(name, file.get(), uid, gid, mode);
    if (!owned) return owned;
    auto attributes = SetXattrs(name, file.get(), entry);
    if (!attributes) return attributes;
    if (futimens(file.get(), times) != 0) return FailErrno(name, "cannot set the mtime");
    return core::Ok{};
  }

  // The owner first: chown clears setuid and setgid bits.
  core::Status SetOwnerAndMode(const std::string& name, int fd, uid_t uid, gid_t gid,
                               mode_t mode) const {
    if (fchown(fd, uid, gid) != 0 && !MayIgnoreChown())
      return FailErrno(name, "cannot set the owner");
    if (fchmod(fd, mode) != 0) return FailErrno(name, "cannot set the mode");
    return core::Ok{};
  }

  // The entry's extended attributes that layers carry (IsLayerXattr), on
  // the file or folder open as `fd`; after its owner and content, since
  // chown and writes drop file capabilities. Any other name (trusted.*,
  // security.selinux, ...) is skipped: a layer never sets overlayfs's
  // markers or the host's labels.
  core::Status SetXattrs(const std::string& name, int fd, archive_entry* entry) const {
    archive_entry_xattr_reset(entry);
    const char* key = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    while (archive_entry_xattr_next(entry, &key, &value, &size) == ARCHIVE_OK) {
      if (!IsLayerXattr(key)) continue;
      if (fsetxattr(fd, key, value, size, 0) != 0 && !MayIgnoreChown() &&
          !(errno == ENOTSUP && std::string_view(key).starts_with("user.")))  // e.g. tmpfs
        return FailErrno(name, std::string("cannot set the extended attribute ") + key);
    }
    return core::Ok{};
  }

  // Without root, files keep the unpacking user as owner.
  static bool MayIgnoreChown() { return errno == EPERM && geteuid() != 0; }

  core::Status Hardlink(const std::string& name, int parent_fd, const std::string& base,
                        const char* target) {
    std::optional<Components> target_components = CleanName(target);
    if (!target_components || target_components->empty()) {
      return Fail(name, std::string("the hardlink target ") + target + " is outside the image root",
                  core::ErrorCode::kInvalidArgument);
    }
    UniqueFd target_parent(
        OpenFolder(root_fd_, *target_components, target_components->size() - 1, false));
    if (!target_parent.valid())
      return FailErrno(name, std::string("cannot find the hardlink target ") + target);
    const std::string& target_base = target_components->back();
    struct stat target_info {};
    if (fstatat(target_parent.get(), target_base.c_str(), &target_info, AT_SYMLINK_NOFOLLOW) != 0) {
      return FailErrno(name, std::string("cannot find the hardlink target ") + target);
    }
    if (S_ISDIR(target_info.st_mode)) {
      return Fail(name, std::string("the hardlink target ") + target + " is a folder",
                  core::ErrorCode::kInvalidArgument);
    }
    struct stat existing {};
    if (fstatat(parent_fd, base.c_str(), &existing, AT_SYMLINK_NOFOLLOW) == 0) {
      if (existing.st_dev == target_info.st_dev && existing.st_ino == target_info.st_ino)
        return core::Ok{};
      if (!RemoveAt(parent_fd, base)) return FailErrno(name, "cannot remove what it replaces");
    }
    // Flags 0: a symlink target is linked itself, never followed.
    if (linkat(target_parent.get(), target_base.c_str(), parent_fd, base.c_str(), 0) != 0) {
      return FailErrno(name, std::string("cannot link to ") + target);
    }
    return core::Ok{};
  }

  core::Status Whiteout(const std::string& name, const Components& components) {
    const std::string& base = components.back();
    if (whiteouts_ == WhiteoutMode::kOverlay) return OverlayWhiteout(name, components);
    UniqueFd parent(OpenFolder(root_fd_, components, components.size() - 1, false));
    if (base == kOpaqueWhiteout) {
      if (!parent.valid()) return core::Ok{};  // no folder, nothing below to hide
      if (!HideLower(parent.get(), Join(components, components.size() - 1))) {
        return FailErrno(name, "cannot clear the folder");
      }
      return core::Ok{};
    }
    auto hidden = WhiteoutTarget(name, base);
    if (!hidden) return hidden.error();
    if (!parent.valid()) return core::Ok{};  // its folder is gone, so is it
    if (!RemoveAt(parent.get(), *hidden)) return FailErrno(name, "cannot delete " + *hidden);
    return core::Ok{};
  }

  /// A whiteout kept in overlayfs's form (see WhiteoutMode::kOverlay).
  core::Status OverlayWhiteout(const std::string& name, const Components& components) {
    const std::string& base = components.back();
    std::string hidden;  // NAME of `.wh.NAME`; empty for the opaque marker
    if (base != kOpaqueWhiteout) {
      auto target = WhiteoutTarget(name, base);
      if (!target) return target.error();
      hidden = std::move(target).value();
    }
    UniqueFd parent(OpenFolder(root_fd_, components, components.size() - 1, true));
    if (!parent.valid()) return FailErrno(name, "cannot open or create its folder");
    if (base == kOpaqueWhiteout) {
      if (fsetxattr(parent.get(), kOverlayOpaqueXattr, kOverlayOpaqueValue,
                    sizeof kOverlayOpaqueValue - 1, 0) != 0) {
        return FailErrno(name, std::string("cannot set ") + kOverlayOpaqueXattr);
      }
      return core::Ok{};
    }
    if (!RemoveAt(parent.get(), hidden)) return FailErrno(name, "cannot remove " + hidden);
    if (mknodat(parent.get(), hidden.c_str(), S_IFCHR | 0, makedev(0, 0)) != 0)
      return FailErrno(name, "cannot make the whiteout device " + hidden);
    return core::Ok{};
  }

  /// NAME of a `.wh.NAME` whiteout, refused when it is no entry of a folder.
  core::Result<std::string> WhiteoutTarget(const std::string& name, const std::string& base) const {
    std::string hidden = base.substr(kWhiteoutPrefix.size());
    if (hidden.empty() || hidden == "." || hidden == "..") {
      return Fail(name, "a whiteout must name an entry of its folder",
                  core::ErrorCode::kInvalidArgument)
          .error();
    }
    return hidden;
  }

  /// Removes what lower layers put under `path` (open as `dir_fd`), keeping
  /// what this layer unpacked there before the opaque whiteout came.
  bool HideLower(int dir_fd, const std::string& path) {
    std::vector<std::string> children;
    if (!ListFolder(dir_fd, &children)) return false;
    for (const std::string& child : children) {
      std::string child_path = path.empty() ? child : path + "/" + child;
      if (!unpacked_.contains(child_path)) {
        if (!RemoveAt(dir_fd, child)) return false;
        continue;
      }
      struct stat info {};
      if (fstatat(dir_fd, child.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0) return false;
      if (!S_ISDIR(info.st_mode)) continue;
      UniqueFd folder(
          openat(dir_fd, child.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!folder.valid() || !HideLower(folder.get(), child_path)) return false;
    }
    return true;
  }

  core::Status SetFolderTimes() {
    for (const auto& [components, mtime] : folder_times_) {
      if (mtime.tv_nsec == UTIME_OMIT) continue;
      std::string name = Join(components);
      UniqueFd parent(OpenFolder(root_fd_, components, components.size() - 1, false));
      struct stat info {};
      if (!parent.valid() ||
          fstatat(parent.get(), components.back().c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0 ||
          !S_ISDIR(info.st_mode)) {
        continue;  // replaced or whited out by a later entry
      }
      struct timespec times[2] = {mtime, mtime};
      if (utimensat(parent.get(), components.back().c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
        return FailErrno(name, "cannot set the mtime");
      }
    }
    return core::Ok{};
  }

  struct FolderTime {
    Components components;
    struct timespec mtime;
  };

  std::filesystem::path blob_;
  int root_fd_;
  WhiteoutMode whiteouts_;
  std::set<std::string> unpacked_;  // every path this layer put in place, with its parents
  std::vector<FolderTime> folder_times_;
};

}  // namespace

core::Status UnpackLayer(const std::filesystem::path& blob, const std::filesystem::path& root,
                         WhiteoutMode whiteouts) {
  UniqueFd root_fd(open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root_fd.valid()) {
    return core::Error{core::ErrorCode::kIo,
                       "cannot open the image root: " + std::string(std::strerror(errno)),
                       core::Location{root.string(), 0, 0}};
  }
  return LayerUnpacker(blob, root_fd.get(), whiteouts).Run();
}

}  // namespace builder
