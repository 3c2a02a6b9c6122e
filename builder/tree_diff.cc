#include "builder/tree_diff.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <utility>

namespace builder {
namespace {

constexpr char kWhiteoutPrefix[] = ".wh.";
constexpr char kOpaqueWhiteout[] = ".wh..wh..opq";

/// Owns a file descriptor.
class UniqueFd {
 public:
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

 private:
  int fd_;
};

std::int64_t Nanoseconds(const struct timespec& time) {
  return static_cast<std::int64_t>(time.tv_sec) * 1000000000 + time.tv_nsec;
}

std::string Child(const std::string& folder, const std::string& name) {
  return folder.empty() ? name : folder + "/" + name;
}

std::string ParentOf(const std::string& path) {
  std::size_t slash = path.rfind('/');
  return slash == std::string::npos ? "" : path.substr(0, slash);
}

std::string BaseOf(const std::string& path) {
  std::size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

core::Error WalkError(const std::filesystem::path& root, const std::string& path,
                      const std::string& what) {
  std::string where = path.empty() ? root.string() : (root / path).string();
  return core::Error{
      core::ErrorCode::kIo, "cannot " + what + " " + where + ": " + std::strerror(errno), {}};
}

/// Reads `size` bytes or fewer of a list or value into `buffer`, growing it
/// while the attribute grows under it.
template <typename Read>
bool ReadGrowing(std::string* buffer, Read read) {
  for (int attempt = 0; attempt < 8; ++attempt) {
    ssize_t size = read(nullptr, 0);
    if (size < 0) return false;
    buffer->resize(static_cast<std::size_t>(size));
    if (size == 0) return true;
    size = read(buffer->data(), buffer->size());
    if (size >= 0) {
      buffer->resize(static_cast<std::size_t>(size));
      return true;
    }
    if (errno != ERANGE) return false;
  }
  return false;
}

/// The extended attributes of `path` that layers carry (IsLayerXattr),
/// without following a symlink. A file system without xattrs has none.
core::Result<std::map<std::string, std::string>> LayerXattrs(const std::filesystem::path& root,
                                                             const std::string& path) {
  std::map<std::string, std::string> xattrs;
  const std::string full = (root / path).string();
  std::string names;
  if (!ReadGrowing(&names, [&](char* list, std::size_t size) {
        return llistxattr(full.c_str(), list, size);
      })) {
    if (errno == ENOTSUP) return xattrs;
    return WalkError(root, path, "list the extended attributes of");
  }
  for (std::size_t start = 0; start < names.size();) {
    std::size_t end = names.find('\0', start);
    if (end == std::string::npos) end = names.size();
    std::string name = names.substr(start, end - start);
    start = end + 1;
    if (!IsLayerXattr(name)) continue;
    std::string value;
    if (!ReadGrowing(&value, [&](char* data, std::size_t size) {
          return lgetxattr(full.c_str(), name.c_str(), data, size);
        })) {
      if (errno == ENODATA) continue;  // removed since it was listed
      return WalkError(root, path, "read the extended attribute " + name + " of");
    }
    xattrs.emplace(std::move(name), std::move(value));
  }
  return xattrs;
}

/// Records every entry under `dir_fd` (the folder `folder` of `root`).
core::Status Walk(const std::filesystem::path& root, int dir_fd, const std::string& folder,
                  std::map<std::string, TreeNode>* nodes) {
  int list_fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (list_fd < 0) return WalkError(root, folder, "open");
  DIR* dir = fdopendir(list_fd);
  if (dir == nullptr) {
    close(list_fd);
    return WalkError(root, folder, "list");
  }
  std::vector<std::string> names;
  errno = 0;
  while (dirent* item = readdir(dir)) {
    std::string name = item->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  int list_errno = errno;
  closedir(dir);
  errno = list_errno;
  if (list_errno != 0) return WalkError(root, folder, "list");

  for (const std::string& name : names) {
    const std::string path = Child(folder, name);
    struct stat info {};
    if (fstatat(dir_fd, name.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0)
      return WalkError(root, path, "inspect");
    TreeNode node;
    if (S_ISREG(info.st_mode)) {
      node.type = TreeNode::Type::kFile;
    } else if (S_ISDIR(info.st_mode)) {
      node.type = TreeNode::Type::kDirectory;
    } else if (S_ISLNK(info.st_mode)) {
      node.type = TreeNode::Type::kSymlink;
      std::string target(static_cast<std::size_t>(info.st_size) + 1, '\0');
      while (true) {
        ssize_t length = readlinkat(dir_fd, name.c_str(), target.data(), target.size());
        if (length < 0) return WalkError(root, path, "read the symlink");
        if (static_cast<std::size_t>(length) < target.size()) {
          target.resize(static_cast<std::size_t>(length));
          break;
        }
        target.resize(target.size() * 2);
      }
      node.link_target = std::move(target);
    } else {
      continue;  // fifos, sockets, devices: no layer carries them
    }
    node.mode = info.st_mode & 07777;
    node.uid = info.st_uid;
    node.gid = info.st_gid;
    node.size = info.st_size;
    node.mtime_ns = Nanoseconds(info.st_mtim);
    node.ctime_ns = Nanoseconds(info.st_ctim);
    node.device = info.st_dev;
    node.inode = info.st_ino;
    node.link_count = info.st_nlink;
    if (node.type != TreeNode::Type::kSymlink) {
      auto xattrs = LayerXattrs(root, path);
      if (!xattrs) return xattrs.error();
      node.xattrs = std::move(xattrs).value();
    }
    const bool is_folder = node.type == TreeNode::Type::kDirectory;
    nodes->emplace(path, std::move(node));
    if (is_folder) {
      UniqueFd child(openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!child.valid()) return WalkError(root, path, "open");
      auto walked = Walk(root, child.get(), path, nodes);
      if (!walked) return walked;
    }
  }
  return core::Ok{};
}

/// Whether a path that kept its type and (for a folder) its inode changed.
bool Changed(const TreeNode& before, const TreeNode& after) {
  if (before.mode != after.mode || before.uid != after.uid || before.gid != after.gid ||
      before.mtime_ns != after.mtime_ns || before.xattrs != after.xattrs) {
    return true;
  }
  switch (after.type) {
    case TreeNode::Type::kDirectory:
      return false;
    case TreeNode::Type::kSymlink:
      return before.link_target != after.link_target || before.inode != after.inode ||
             before.ctime_ns != after.ctime_ns;
    case TreeNode::Type::kFile:
      return before.inode != after.inode || before.device != after.device ||
             before.size != after.size || before.ctime_ns != after.ctime_ns;
  }
  return true;
}

LayerEntry EntryFor(const std::filesystem::path& root, const std::string& path,
                    const TreeNode& node) {
  LayerEntry entry;
  entry.path = path;
  entry.mode = node.mode;
  entry.uid = node.uid;
  entry.gid = node.gid;
  // Seconds, rounded down also before 1970.
  entry.mtime = node.mtime_ns >= 0 ? node.mtime_ns / 1000000000
                                   : -((-node.mtime_ns + 999999999) / 1000000000);
  switch (node.type) {
    case TreeNode::Type::kFile:
      entry.type = LayerEntry::Type::kFile;
      entry.source = root / path;
      entry.xattrs = node.xattrs;
      break;
    case TreeNode::Type::kDirectory:
      entry.type = LayerEntry::Type::kDirectory;
      entry.xattrs = node.xattrs;
      break;
    case TreeNode::Type::kSymlink:
      entry.type = LayerEntry::Type::kSymlink;
      entry.link_target = node.link_target;
      break;
  }
  return entry;
}

LayerEntry Whiteout(const std::string& path) {
  LayerEntry entry;
  entry.path = path;
  entry.type = LayerEntry::Type::kFile;
  entry.mode = 0;
  return entry;
}

}  // namespace

core::Result<TreeSnapshot> TreeSnapshot::Take(const std::filesystem::path& root) {
  UniqueFd root_fd(open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root_fd.valid()) return WalkError(root, "", "open");
  TreeSnapshot snapshot;
  auto walked = Walk(root, root_fd.get(), "", &snapshot.nodes_);
  if (!walked) return walked.error();
  return snapshot;
}

core::Result<std::vector<LayerEntry>> DiffTree(const TreeSnapshot& before,
                                               const std::filesystem::path& root) {
  auto taken = TreeSnapshot::Take(root);
  if (!taken) return taken.error();
  const std::map<std::string, TreeNode>& old_nodes = before.nodes();
  const std::map<std::string, TreeNode>& new_nodes = taken->nodes();

  std::set<std::string> replaced;  // folders made again: opaque, all their content new
  auto under_replaced = [&replaced](const std::string& path) {
    for (std::string folder = ParentOf(path); !folder.empty(); folder = ParentOf(folder)) {
      if (replaced.contains(folder)) return true;
    }
    return false;
  };

  std::set<std::string> changed;  // paths of new_nodes to write
  std::vector<std::string> whiteouts;
  for (const auto& [path, node] : new_nodes) {
    auto old = old_nodes.find(path);
    if (old == old_nodes.end() || under_replaced(path)) {
      changed.insert(path);
    } else if (old->second.type != node.type ||
               (node.type == TreeNode::Type::kDirectory &&
                (old->second.inode != node.inode || old->second.device != node.device))) {
      changed.insert(path);
      if (node.type == TreeNode::Type::kDirectory) {
        replaced.insert(path);
        whiteouts.push_back(path + "/" + kOpaqueWhiteout);
      }
    } else if (Changed(old->second, node)) {
      changed.insert(path);
    }
  }

  for (const auto& [path, node] : old_nodes) {
    // Still there: kept, changed, or of another type that replaces it.
    if (new_nodes.contains(path)) continue;
    const std::string folder = ParentOf(path);
    if (!folder.empty()) {
      // Only the topmost deleted path: a folder that is gone, is no folder
      // any more or was made again already hides this one.
      auto parent = new_nodes.find(folder);
      if (parent == new_nodes.end() || parent->second.type != TreeNode::Type::kDirectory) continue;
      if (replaced.contains(folder) || under_replaced(folder)) continue;
    }
    whiteouts.push_back(Child(folder, kWhiteoutPrefix + BaseOf(path)));
  }

  // Each entry comes with its parent folders, so that their modes and owners
  // are the ones in the tree when the layer is unpacked.
  std::set<std::string> written = changed;
  auto add_parents = [&](const std::string& path) {
    for (std::string folder = ParentOf(path); !folder.empty(); folder = ParentOf(folder)) {
      if (!written.insert(folder).second) break;
    }
  };
  for (const std::string& path : changed) add_parents(path);
  for (const std::string& path : whiteouts) add_parents(path);

  std::vector<LayerEntry> entries;
  entries.reserve(written.size() + whiteouts.size());
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::string>
      first_link;  // (device, inode) -> path
  for (const std::string& path : written) {
    const TreeNode& node = new_nodes.at(path);
    LayerEntry entry = EntryFor(root, path, node);
    if (node.type == TreeNode::Type::kFile && node.link_count > 1) {
      auto [first, inserted] = first_link.emplace(std::make_pair(node.device, node.inode), path);
      if (!inserted) {
        entry.type = LayerEntry::Type::kHardlink;
        entry.link_target = first->second;
        entry.source.clear();
        entry.xattrs.clear();  // the inode's, written with the first path
      }
    }
    entries.push_back(std::move(entry));
  }
  for (const std::string& path : whiteouts) entries.push_back(Whiteout(path));
  std::sort(entries.begin(), entries.end(),
            [](const LayerEntry& a, const LayerEntry& b) { return a.path < b.path; });
  return entries;
}

}  // namespace builder
