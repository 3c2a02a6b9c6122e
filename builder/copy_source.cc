#include "builder/copy_source.h"

#include <fnmatch.h>
#include <sys/stat.h>

#include <algorithm>
#include <sstream>

#include "core/atomic_file.h"
#include "core/sha256.h"

namespace builder {
namespace {

core::Error CopyError(const std::string& message) {
  return core::Error{core::ErrorCode::kInvalidSpec, message, {}};
}

struct IgnoreRule {
  std::string pattern;
  bool negate = false;
  bool folders_only = false;
  bool anchored = false;  // contains a '/': matched against the whole relative path
};

std::vector<IgnoreRule> ReadIgnoreRules(const std::string& text) {
  std::vector<IgnoreRule> rules;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    IgnoreRule rule;
    if (line[0] == '!') {
      rule.negate = true;
      line.erase(0, 1);
    }
    if (!line.empty() && line.back() == '/') {
      rule.folders_only = true;
      line.pop_back();
    }
    if (!line.empty() && line[0] == '/') line.erase(0, 1);
    rule.anchored = line.find('/') != std::string::npos;
    rule.pattern = line;
    if (!rule.pattern.empty()) rules.push_back(rule);
  }
  return rules;
}

bool Ignored(const std::vector<IgnoreRule>& rules, const std::string& relative, bool folder) {
  bool ignored = false;
  std::string name = relative.substr(relative.rfind('/') + 1);
  for (const IgnoreRule& rule : rules) {
    if (rule.folders_only && !folder) continue;
    const std::string& subject = rule.anchored ? relative : name;
    if (fnmatch(rule.pattern.c_str(), subject.c_str(), FNM_PATHNAME) == 0) ignored = !rule.negate;
  }
  return ignored;
}

// Adds the entry for `path` (whose name in the image is `image_path`) and
// its description to the input digest.
core::Status AddEntry(const std::filesystem::path& path, const std::string& image_path,
                      std::int64_t epoch, CopySource* source, core::Sha256* inputs) {
  struct stat info {};
  if (lstat(path.c_str(), &info) != 0) return CopyError("cannot read " + path.string());
  LayerEntry entry;
  entry.path = image_path;
  entry.mode = info.st_mode & 07777;
  entry.mtime = epoch;
  std::string description;
  if (S_ISDIR(info.st_mode)) {
    entry.type = LayerEntry::Type::kDirectory;
    description = "dir";
  } else if (S_ISLNK(info.st_mode)) {
    entry.type = LayerEntry::Type::kSymlink;
    entry.mode = 0777;
    entry.link_target = std::filesystem::read_symlink(path).string();
    description = "symlink " + entry.link_target;
  } else if (S_ISREG(info.st_mode)) {
    entry.type = LayerEntry::Type::kFile;
    entry.source = path;
    auto digest = core::Sha256FileDigest(path);
    if (!digest) return digest.error();
    description = "file " + *digest;
  } else {
    return CopyError(path.string() +
                     " is not a file, folder or symlink; only those can be copied into an image");
  }
  // One line per entry: NUL-separated fields cannot be confused with names.
  inputs->Update(image_path + '\0' + std::to_string(entry.mode) + '\0' + description + '\n');
  source->entries.push_back(std::move(entry));
  return core::Ok{};
}

}  // namespace

core::Result<CopySource> CollectCopySource(const std::filesystem::path& context,
                                           const spec::CopyStep& step, std::int64_t epoch) {
  std::error_code error;
  std::filesystem::path context_root = std::filesystem::canonical(context, error);
  if (error)
    return CopyError("cannot open the build context " + context.string() + ": " + error.message());
  std::filesystem::path src = std::filesystem::weakly_canonical(context_root / step.src, error);
  auto relative = src.lexically_relative(context_root);
  if (error || relative.empty() || *relative.begin() == "..") {
    return CopyError("copy source " + step.src + " leaves the build context " +
                     context_root.string());
  }
  if (!std::filesystem::exists(std::filesystem::symlink_status(src))) {
    return CopyError("copy source " + step.src + " does not exist in " + context_root.string());
  }
  std::vector<IgnoreRule> rules;
  if (!step.ignore.empty()) {
    auto text = core::ReadFile(context_root / step.ignore);
    if (!text) return text.error();
    rules = ReadIgnoreRules(*text);
  }
  CopySource source;
  core::Sha256 inputs;
  std::string destination = step.dst == "/" ? "" : step.dst.substr(1);
  auto image_path = [&](const std::string& below) {
    if (destination.empty()) return below;
    return below.empty() ? destination : destination + "/" + below;
  };
  if (!std::filesystem::is_directory(std::filesystem::symlink_status(src))) {
    if (destination.empty())
      return CopyError("copy of the file " + step.src + " needs a file name as dst, not /");
    auto added = AddEntry(src, destination, epoch, &source, &inputs);
    if (!added) return added.error();
  } else {
    if (!destination.empty()) {
      auto added = AddEntry(src, destination, epoch, &source, &inputs);
      if (!added) return added.error();
    }
    std::vector<std::filesystem::path> paths;
    for (auto it = std::filesystem::recursive_directory_iterator(src, error);
         !error && it != std::filesystem::recursive_directory_iterator(); it.increment(error)) {
      std::string below = it->path().lexically_relative(src).generic_string();
      bool folder = it->is_directory() && !it->is_symlink();
      if (Ignored(rules, below, folder)) {
        if (folder) it.disable_recursion_pending();
        continue;
      }
      paths.push_back(it->path());
    }
    if (error) return CopyError("cannot read " + src.string() + ": " + error.message());
    std::sort(paths.begin(), paths.end());
    for (const std::filesystem::path& path : paths) {
      auto added = AddEntry(path, image_path(path.lexically_relative(src).generic_string()), epoch,
                            &source, &inputs);
      if (!added) return added.error();
    }
  }
  source.digest = inputs.Finish();
  return source;
}

}  // namespace builder
