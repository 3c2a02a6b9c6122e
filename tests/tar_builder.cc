#include "tests/tar_builder.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <fstream>
#include <memory>
#include <sstream>

namespace tests {
namespace {

namespace fs = std::filesystem;

struct ArchiveWriteFree {
  void operator()(struct archive* archive) const { archive_write_free(archive); }
};

struct ArchiveEntryFree {
  void operator()(archive_entry* entry) const { archive_entry_free(entry); }
};

std::string ReadWhole(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

// The extended attributes of `path` (not followed), as "name=value;" in
// the order the kernel lists them.
std::string Xattrs(const fs::path& path) {
  ssize_t size = llistxattr(path.c_str(), nullptr, 0);
  if (size <= 0) return "";
  std::string names(static_cast<std::size_t>(size), '\0');
  size = llistxattr(path.c_str(), names.data(), names.size());
  if (size <= 0) return "";
  names.resize(static_cast<std::size_t>(size));
  std::string listed;
  for (std::size_t start = 0; start < names.size();) {
    std::string name = names.c_str() + start;
    start += name.size() + 1;
    char value[256];
    ssize_t length = lgetxattr(path.c_str(), name.c_str(), value, sizeof value);
    listed +=
        name + "=" + (length < 0 ? "?" : std::string(value, static_cast<std::size_t>(length)));
    listed += ";";
  }
  return listed;
}

std::string Print(const fs::path& path) {
  struct stat info {};
  if (lstat(path.c_str(), &info) != 0) return "unreadable";
  std::ostringstream print;
  print << std::oct << info.st_mode << std::dec << ' ' << info.st_uid << ':' << info.st_gid << ' '
        << info.st_size << ' ' << info.st_mtim.tv_sec << '.' << info.st_mtim.tv_nsec << ' '
        << info.st_ctim.tv_sec << '.' << info.st_ctim.tv_nsec << ' ' << info.st_nlink << ' '
        << info.st_rdev << " [" << Xattrs(path) << "] ";
  if (S_ISREG(info.st_mode)) print << ReadWhole(path);
  if (S_ISLNK(info.st_mode)) print << fs::read_symlink(path).string();
  return print.str();
}

}  // namespace

TarItem Item(std::string name, char type, unsigned mode) {
  TarItem item;
  item.name = std::move(name);
  item.type = type;
  item.mode = mode;
  return item;
}

TarItem File(std::string name, std::string data, unsigned mode) {
  TarItem item = Item(std::move(name), 'f', mode);
  item.data = std::move(data);
  return item;
}

TarItem Folder(std::string name, unsigned mode) {
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

TarItem Device(std::string name, char type, unsigned major, unsigned minor) {
  TarItem item = Item(std::move(name), type, 0666);
  item.device_major = major;
  item.device_minor = minor;
  return item;
}

bool WriteTar(const fs::path& path, const std::vector<TarItem>& items, bool gzip,
              std::string* err) {
  std::unique_ptr<struct archive, ArchiveWriteFree> archive(archive_write_new());
  auto failed = [&](const std::string& what) {
    const char* reason = archive_error_string(archive.get());
    *err = what + ": " + (reason != nullptr ? reason : "unknown error");
    return false;
  };
  archive_write_set_format_pax_restricted(archive.get());
  if (gzip) archive_write_add_filter_gzip(archive.get());
  if (archive_write_open_filename(archive.get(), path.c_str()) != ARCHIVE_OK)
    return failed("cannot open " + path.string());
  for (const TarItem& item : items) {
    std::unique_ptr<archive_entry, ArchiveEntryFree> entry(archive_entry_new());
    archive_entry_set_pathname(entry.get(), item.name.c_str());
    archive_entry_set_perm(entry.get(), item.mode);
    archive_entry_set_uid(entry.get(), item.uid);
    archive_entry_set_gid(entry.get(), item.gid);
    archive_entry_set_mtime(entry.get(), item.mtime, 0);
    switch (item.type) {
      case 'f':
        archive_entry_set_filetype(entry.get(), AE_IFREG);
        archive_entry_set_size(entry.get(), static_cast<la_int64_t>(item.data.size()));
        break;
      case 'd':
        archive_entry_set_filetype(entry.get(), AE_IFDIR);
        break;
      case 'l':
        archive_entry_set_filetype(entry.get(), AE_IFLNK);
        archive_entry_set_symlink(entry.get(), item.link.c_str());
        break;
      case 'h':
        archive_entry_set_filetype(entry.get(), AE_IFREG);
        archive_entry_set_hardlink(entry.get(), item.link.c_str());
        archive_entry_set_size(entry.get(), 0);
        break;
      case 'p':
        archive_entry_set_filetype(entry.get(), AE_IFIFO);
        break;
      case 'c':
      case 'b':
        archive_entry_set_filetype(entry.get(), item.type == 'c' ? AE_IFCHR : AE_IFBLK);
        archive_entry_set_rdev(entry.get(), makedev(item.device_major, item.device_minor));
        break;
      default:
        *err = std::string("unknown tar item type '") + item.type + "'";
        return false;
    }
    for (const auto& [name, value] : item.xattrs)
      archive_entry_xattr_add_entry(entry.get(), name.c_str(), value.data(), value.size());
    if (archive_write_header(archive.get(), entry.get()) != ARCHIVE_OK)
      return failed("cannot write the header of " + item.name);
    if (item.type == 'f' && !item.data.empty() &&
        archive_write_data(archive.get(), item.data.data(), item.data.size()) !=
            static_cast<la_ssize_t>(item.data.size())) {
      return failed("cannot write the content of " + item.name);
    }
  }
  if (archive_write_close(archive.get()) != ARCHIVE_OK) return failed("cannot finish the tar");
  return true;
}

std::map<std::string, std::string> TreeFingerprint(const fs::path& root) {
  std::map<std::string, std::string> prints;
  prints[""] = Print(root);
  std::error_code error;
  for (auto it = fs::recursive_directory_iterator(root, error);
       !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
    prints[fs::relative(it->path(), root).string()] = Print(it->path());
  }
  if (error) prints["<error>"] = error.message();
  return prints;
}

}  // namespace tests
