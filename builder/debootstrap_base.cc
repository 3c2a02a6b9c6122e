#include "builder/debootstrap_base.h"

#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "builder/image_config.h"
#include "builder/platform.h"
#include "builder/tree_diff.h"
#include "core/atomic_file.h"
#include "core/sha256.h"
#include "core/subprocess.h"

namespace builder {
namespace {

namespace fs = std::filesystem;

// How much of debootstrap's log an error shows: the end, where it failed.
constexpr std::size_t kLogTailLines = 20;

std::string_view Trim(std::string_view text) {
  const char* blanks = " \t\r\n";
  std::size_t first = text.find_first_not_of(blanks);
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(blanks) - first + 1);
}

std::vector<std::string> Words(std::string_view text) {
  std::vector<std::string> words;
  std::istringstream stream{std::string(text)};
  for (std::string word; stream >> word;) words.push_back(word);
  return words;
}

std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    std::size_t end = text.find('\n');
    lines.push_back(text.substr(0, end));
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return lines;
}

// A mirror debootstrap can fetch from, without its trailing '/'; nullopt for
// others (cdrom:, mirror+file:, tor+http:...).
std::optional<std::string> UsableMirror(std::string uri) {
  if (uri.rfind("http://", 0) != 0 && uri.rfind("https://", 0) != 0 &&
      uri.rfind("file:/", 0) != 0) {
    return std::nullopt;
  }
  while (uri.size() > 1 && uri.back() == '/') uri.pop_back();
  return uri;
}

// A release (bookworm, stable, sid) rather than one of its pockets
// (bookworm-security, bookworm-updates, bookworm/updates).
bool IsRelease(const std::string& suite) {
  return suite.find('-') == std::string::npos && suite.find('/') == std::string::npos;
}

// Picks among (mirror, suites) candidates in file order: the first that
// serves a release, else the first.
std::optional<std::string> Pick(
    const std::vector<std::pair<std::string, std::vector<std::string>>>& candidates) {
  for (const auto& [mirror, suites] : candidates) {
    if (std::any_of(suites.begin(), suites.end(), IsRelease)) return mirror;
  }
  if (candidates.empty()) return std::nullopt;
  return candidates.front().first;
}

std::string Lowercase(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

// The whole file, or "" when it cannot be read.
std::string ReadOrEmpty(const fs::path& path) {
  auto text = core::ReadFile(path);
  return text ? *text : std::string();
}

std::string LastLines(std::string_view text, std::size_t count) {
  std::vector<std::string_view> lines = Lines(Trim(text));
  std::size_t first = lines.size() > count ? lines.size() - count : 0;
  std::string tail;
  for (std::size_t i = first; i < lines.size(); ++i) tail += "\n  " + std::string(lines[i]);
  return tail;
}

// An executable named `name` in $PATH or the sbin folders root's PATH has
// (debootstrap lives in /usr/sbin, which a user's PATH often lacks).
std::optional<fs::path> FindProgram(const std::string& name) {
  std::string search = "/usr/sbin:/sbin:/usr/local/sbin";
  if (const char* path = std::getenv("PATH"); path != nullptr)
    search = std::string(path) + ":" + search;
  std::istringstream folders(search);
  for (std::string folder; std::getline(folders, folder, ':');) {
    if (folder.empty()) continue;
    fs::path candidate = fs::path(folder) / name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

// mountinfo writes ' ', '\t', '\n' and '\\' in paths as \ooo.
std::string UnescapeMountPath(const std::string& text) {
  std::string path;
  for (std::size_t i = 0; i < text.size(); ++i) {
    auto octal = [&](std::size_t at) {
      return at < text.size() && text[at] >= '0' && text[at] <= '7';
    };
    if (text[i] == '\\' && octal(i + 1) && octal(i + 2) && octal(i + 3)) {
      path += static_cast<char>((text[i + 1] - '0') * 64 + (text[i + 2] - '0') * 8 +
                                (text[i + 3] - '0'));
      i += 3;
    } else {
      path += text[i];
    }
  }
  return path;
}

// Detaches whatever is mounted at or below `folder`, deepest first. debootstrap
// runs in a mount namespace of its own so that there is nothing; this is for
// hosts where that namespace could not be made.
void UnmountBelow(const fs::path& folder) {
  std::error_code error;
  const std::string prefix = fs::weakly_canonical(folder, error).string();
  if (error || prefix.empty()) return;
  std::vector<std::string> mounts;
  std::ifstream mountinfo("/proc/self/mountinfo");
  for (std::string line; std::getline(mountinfo, line);) {
    std::vector<std::string> fields = Words(line);
    if (fields.size() < 5) continue;
    std::string point = UnescapeMountPath(fields[4]);
    if (point == prefix || point.rfind(prefix + "/", 0) == 0) mounts.push_back(point);
  }
  std::sort(mounts.begin(), mounts.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  for (const std::string& point : mounts) umount2(point.c_str(), MNT_DETACH);
}

// The scratch folder of one debootstrap run, unmounted below and removed with
// the object.
class ScratchFolder {
 public:
  // Made by the caller, which reports when it cannot be.
  explicit ScratchFolder(fs::path path) {
    std::error_code error;
    path_ = fs::absolute(path, error);
    if (error) path_ = std::move(path);
  }
  ~ScratchFolder() {
    UnmountBelow(path_);
    std::error_code ignored;  // a leftover scratch folder is not worth failing a build for
    fs::remove_all(path_, ignored);
  }
  ScratchFolder(const ScratchFolder&) = delete;
  ScratchFolder& operator=(const ScratchFolder&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Runs `program` with `arguments` and a fixed environment, stdin from
// /dev/null, stdout and stderr to `output`, in a mount namespace of its own;
// its exit code, or 128 + N when signal N killed it.
core::Result<int> RunProgram(const fs::path& program, const std::vector<std::string>& arguments,
                             const fs::path& output) {
  core::SubprocessOptions options;
  options.argv = {program.string()};
  options.argv.insert(options.argv.end(), arguments.begin(), arguments.end());
  options.env = {std::string("PATH=") + kDefaultPath, "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive",
                 "HOME=/root"};
  for (const char* name :
       {"http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"}) {
    if (const char* value = std::getenv(name); value != nullptr)
      options.env.push_back(std::string(name) + "=" + value);
  }
  options.stdout_to = core::Output::File(output);
  options.stderr_to = core::Output::File(output);
  options.private_mount_namespace = true;
  auto ran = core::RunSubprocess(std::move(options));
  if (!ran) return ran.error();
  return ran->exit.code;
}

// `relative` under `root` when no folder on the way is a symlink (which would
// resolve on the host, not in the root); nullopt otherwise or when missing.
std::optional<fs::path> InRoot(const fs::path& root, const fs::path& relative) {
  fs::path path = root;
  for (const fs::path& part : relative.parent_path()) {
    path /= part;
    std::error_code error;
    if (!fs::is_directory(fs::symlink_status(path, error))) return std::nullopt;
  }
  return path / relative.filename();
}

bool IsRegularFile(const fs::path& path) {
  std::error_code error;
  return fs::is_regular_file(fs::symlink_status(path, error));
}

// `reason`: what the failing call said; errno's text by default.
core::Error CleanupError(const fs::path& path, const std::string& what,
                         const std::string& reason = std::strerror(errno)) {
  return core::Error{core::ErrorCode::kIo,
                     "cannot " + what + " " + path.string() + " in the debootstrap root: " + reason,
                     {}};
}

core::Status Truncate(const fs::path& path) {
  if (truncate(path.c_str(), 0) != 0) return CleanupError(path, "empty");
  return core::Ok{};
}

// Removes the entries of `folder` (in the root) whose names end with
// `suffix` ("" for all), each with all it holds.
core::Status RemoveEntries(const fs::path& root, const fs::path& folder,
                           const std::string& suffix) {
  auto path = InRoot(root, folder / "x");
  if (!path) return core::Ok{};
  std::error_code error;
  fs::path parent = path->parent_path();
  if (!fs::is_directory(fs::symlink_status(parent, error))) return core::Ok{};
  std::vector<fs::path> doomed;
  for (const fs::directory_entry& entry : fs::directory_iterator(parent, error)) {
    const std::string name = entry.path().filename().string();
    if (name.size() >= suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      doomed.push_back(entry.path());
  }
  if (error) return CleanupError(parent, "list", error.message());
  for (const fs::path& entry : doomed) {
    fs::remove_all(entry, error);
    if (error) return CleanupError(entry, "remove", error.message());
  }
  return core::Ok{};
}

// Sets the third field of every account in a shadow file (the day of the
// last password change, which passwd writes as today) to `day`.
core::Status FixPasswordChangeDay(const fs::path& path, const std::string& day) {
  if (!IsRegularFile(path)) return core::Ok{};
  auto text = core::ReadFile(path);
  if (!text) return text.error();
  std::string fixed;
  for (std::string_view line : Lines(*text)) {
    std::string account(line);
    std::size_t first = account.find(':');
    std::size_t second = first == std::string::npos ? first : account.find(':', first + 1);
    std::size_t third = second == std::string::npos ? second : account.find(':', second + 1);
    if (third != std::string::npos && third > second + 1)
      account.replace(second + 1, third - second - 1, day);
    fixed += account + "\n";
  }
  // Rewritten in place: the file keeps its inode, mode and owner.
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << fixed;
  out.flush();
  if (!out) return CleanupError(path, "rewrite");
  return core::Ok{};
}

// Makes a fresh debootstrap root the same from run to run and free of the
// host's identity (see BuildDebootstrapBase).
core::Status MakeReproducible(const fs::path& root, std::int64_t source_date_epoch) {
  for (const auto& [folder, suffix] :
       std::vector<std::pair<fs::path, std::string>>{{"var/cache/apt", ".bin"},
                                                     {"var/cache/apt/archives", ".deb"},
                                                     {"var/lib/apt/lists", ""}}) {
    auto removed = RemoveEntries(root, folder, suffix);
    if (!removed) return removed;
  }
  for (const char* relative : {"var/cache/ldconfig/aux-cache", "etc/hostname", "etc/resolv.conf"}) {
    auto path = InRoot(root, relative);
    std::error_code error;
    if (path && fs::exists(fs::symlink_status(*path, error)) && !fs::remove(*path, error))
      return CleanupError(*path, "remove", error.message());
  }
  if (auto machine_id = InRoot(root, "etc/machine-id"); machine_id && IsRegularFile(*machine_id)) {
    auto emptied = Truncate(*machine_id);
    if (!emptied) return emptied;
  }
  if (auto logs = InRoot(root, "var/log/x")) {
    std::error_code error;
    fs::path folder = logs->parent_path();
    if (fs::is_directory(fs::symlink_status(folder, error))) {
      // The iterator does not follow symlinks to folders: nothing outside is touched.
      for (auto it = fs::recursive_directory_iterator(folder, error);
           !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
        if (it->is_regular_file() && !it->is_symlink()) {
          auto emptied = Truncate(it->path());
          if (!emptied) return emptied;
        }
      }
      if (error) return CleanupError(folder, "list", error.message());
    }
  }
  const std::int64_t days = source_date_epoch / 86400;
  const std::string day = days > 0 ? std::to_string(days) : "";
  for (const char* relative : {"etc/shadow", "etc/shadow-"}) {
    if (auto path = InRoot(root, relative)) {
      auto fixed = FixPasswordChangeDay(*path, day);
      if (!fixed) return fixed;
    }
  }
  return core::Ok{};
}

}  // namespace

DebootstrapRecipe DebootstrapRecipe::ForHost(const std::string& suite) {
  DebootstrapRecipe recipe;
  recipe.suite = suite;
  recipe.mirror = HostDebianMirror();
  recipe.arch = kArchitecture;
  return recipe;
}

std::string DebootstrapRecipe::CacheKey() const {
  return core::Sha256Digest("gantry base: debootstrap\n" + suite + "\n" + mirror + "\n" + variant +
                            "\n" + arch);
}

std::optional<std::string> MirrorFromDeb822(std::string_view text) {
  std::vector<std::pair<std::string, std::vector<std::string>>> candidates;
  std::map<std::string, std::string> fields;  // lowercase name -> value
  std::string last_field;
  auto end_stanza = [&] {
    std::vector<std::string> types = Words(fields["types"]);
    bool enabled = Lowercase(std::string(Trim(fields["enabled"]))) != "no";
    if (enabled && std::find(types.begin(), types.end(), "deb") != types.end()) {
      for (const std::string& uri : Words(fields["uris"])) {
        if (auto mirror = UsableMirror(uri)) {
          candidates.emplace_back(*mirror, Words(fields["suites"]));
          break;
        }
      }
    }
    fields.clear();
    last_field.clear();
  };
  for (std::string_view line : Lines(text)) {
    if (Trim(line).empty()) {
      end_stanza();
      continue;
    }
    if (line.front() == '#') continue;
    if (line.front() == ' ' || line.front() == '\t') {  // a continuation line
      if (!last_field.empty()) fields[last_field] += " " + std::string(Trim(line));
      continue;
    }
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    last_field = Lowercase(std::string(Trim(line.substr(0, colon))));
    fields[last_field] = std::string(Trim(line.substr(colon + 1)));
  }
  end_stanza();
  return Pick(candidates);
}

std::optional<std::string> MirrorFromSourcesList(std::string_view text) {
  std::vector<std::pair<std::string, std::vector<std::string>>> candidates;
  for (std::string_view line : Lines(text)) {
    std::string content(line.substr(0, line.find('#')));
    // "deb [option=value ...] URI SUITE COMPONENT...": the options go first.
    std::size_t open = content.find('[');
    if (open != std::string::npos) {
      std::size_t close = content.find(']', open);
      if (close == std::string::npos) continue;
      content.erase(open, close - open + 1);
    }
    std::vector<std::string> words = Words(content);
    if (words.size() < 3 || words[0] != "deb") continue;
    if (auto mirror = UsableMirror(words[1]))
      candidates.emplace_back(*mirror, std::vector{words[2]});
  }
  return Pick(candidates);
}

std::string HostDebianMirror(const fs::path& deb822_path, const fs::path& sources_list_path) {
  if (auto mirror = MirrorFromDeb822(ReadOrEmpty(deb822_path))) return *mirror;
  if (auto mirror = MirrorFromSourcesList(ReadOrEmpty(sources_list_path))) return *mirror;
  return kDefaultDebianMirror;
}

core::Result<Layer> BuildDebootstrapBase(const DebootstrapRecipe& recipe, ContentStore& store,
                                         const LayerOptions& options) {
  const std::string base = "the {debootstrap: " + recipe.suite + "} base";
  std::optional<fs::path> program = FindProgram("debootstrap");
  if (!program) {
    return core::Error{
        core::ErrorCode::kNotFound,
        base + " needs debootstrap, which is not installed: apt-get install debootstrap",
        {}};
  }
  if (geteuid() != 0) {
    return core::Error{core::ErrorCode::kInvalidArgument,
                       base +
                           " needs root (debootstrap chroots and sets owners): run the build as "
                           "root, e.g. sudo gantry build",
                       {}};
  }
  ScratchFolder scratch(store.TempPath("debootstrap"));
  const fs::path root = scratch.path() / "root";
  const fs::path output = scratch.path() / "debootstrap.out";
  const fs::path empty = scratch.path() / "empty";
  std::error_code error;
  fs::create_directories(root, error);
  if (!error) fs::create_directories(empty, error);
  if (error)
    return core::Error{
        core::ErrorCode::kIo, "cannot make a folder for debootstrap: " + error.message(), {}};

  auto exit_code = RunProgram(*program,
                              {"--variant=" + recipe.variant, "--arch=" + recipe.arch, recipe.suite,
                               root.string(), recipe.mirror},
                              output);
  if (!exit_code) return exit_code.error();
  if (*exit_code != 0) {
    // debootstrap says what failed on its output (E: ...) and how in its log.
    std::string message = "debootstrap " + recipe.suite + " from " + recipe.mirror +
                          " failed with exit code " + std::to_string(*exit_code) + ":" +
                          LastLines(ReadOrEmpty(output), 5);
    std::string log = ReadOrEmpty(root / "debootstrap" / "debootstrap.log");
    if (!Trim(log).empty())
      message += "\nthe end of debootstrap.log:" + LastLines(log, kLogTailLines);
    return core::Error{core::ErrorCode::kIo, message, {}};
  }

  auto fixed = MakeReproducible(root, options.source_date_epoch);
  if (!fixed) return fixed.error();
  // Everything in the root is new: its difference from an empty folder.
  auto nothing = TreeSnapshot::Take(empty);
  if (!nothing) return nothing.error();
  auto entries = DiffTree(*nothing, root);
  if (!entries) return entries.error();
  return WriteLayer(std::move(entries).value(), store, options);
}

}  // namespace builder
