#include "builder/build_sandbox.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "builder/content_store.h"
#include "builder/layer_writer.h"
#include "builder/rootfs.h"
#include "builder/tree_diff.h"
#include "tests/skip.h"

namespace builder {
namespace {

namespace fs = std::filesystem;

/// The sandbox needs root (namespaces, mounts) and busybox to build an image
/// root from; without them these tests are skipped (tests::Skip).
bool CanSandbox() {
  if (!tests::RootOrSkip("the build sandbox needs root")) return false;
  if (!fs::exists("/bin/busybox")) {
    tests::Skip("needs a static /bin/busybox (Debian busybox-static)");
    return false;
  }
  return true;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::vector<std::string> Listing(const fs::path& folder) {
  std::vector<std::string> names;
  for (const auto& item : fs::directory_iterator(folder)) names.push_back(item.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

struct timespec Mtime(const fs::path& path) {
  struct stat info {};
  REQUIRE(lstat(path.c_str(), &info) == 0);
  return info.st_mtim;
}

bool SameTime(const struct timespec& a, const struct timespec& b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

/// A tiny image root: a static busybox as /bin/sh and its applets, an
/// /etc/passwd, a /tmp. Removed with all it holds.
class BusyboxRoot {
 public:
  BusyboxRoot() {
    std::string pattern = (fs::temp_directory_path() / "gantry-sandbox-test-XXXXXX").string();
    temp_ = mkdtemp(pattern.data());
    fs::create_directories(root() / "bin");
    fs::copy_file("/bin/busybox", root() / "bin/busybox");
    fs::permissions(root() / "bin/busybox", fs::perms(0755));
    for (const char* applet :
         {"sh",    "ls",   "cat",   "echo", "env",   "hostname", "mkdir", "rm",  "id",
          "sleep", "pwd",  "touch", "head", "tr",    "wc",       "grep",  "ps",  "mount",
          "mknod", "true", "false", "kill", "chmod", "stat",     "sort",  "tail"}) {
      fs::create_symlink("busybox", root() / "bin" / applet);
    }
    fs::create_directories(root() / "etc");
    std::ofstream(root() / "etc/passwd") << "root:x:0:0:root:/root:/bin/sh\n"
                                            "builder:x:1000:1234::/home/builder:/bin/sh\n";
    fs::create_directories(root() / "tmp");
    fs::permissions(root() / "tmp", fs::perms(01777));
  }
  ~BusyboxRoot() {
    std::error_code ignored;
    fs::remove_all(temp_, ignored);
  }

  fs::path root() const { return temp_ / "root"; }
  const fs::path& temp() const { return temp_; }

  SandboxResult Run(const std::string& script, std::vector<std::string> env = {"PATH=/bin"},
                    bool network = true, const std::string& workdir = "/",
                    const std::string& user = "") const {
    SandboxCommand command;
    command.command = script;
    command.env = std::move(env);
    command.network = network;
    command.workdir = workdir;
    command.user = user;
    auto result = RunInRoot(root(), command);
    if (!result) FAIL(result.error().ToString());
    return *result;
  }

 private:
  fs::path temp_;
};

// The host's mount table, less the mounts other tests running at the same
// time make and remove (container roots, overlay probes): only mounts that
// could have come from the sandbox, i.e. not those under another test's
// scratch folder, are compared.
std::string MountInfo() {
  std::string mounts;
  std::istringstream lines(ReadFile("/proc/self/mountinfo"));
  for (std::string line; std::getline(lines, line);) {
    bool other_test = line.find("gantry") != std::string::npos &&
                      line.find("gantry-sandbox-test") == std::string::npos;
    if (!other_test) mounts += line + "\n";
  }
  return mounts;
}

TEST_CASE("RunInRoot returns the command's output and exit code", "[build_sandbox]") {
  if (!CanSandbox()) return;
  BusyboxRoot image;
  SandboxResult result = image.Run("echo out; echo err >&2; exit 3");
  CHECK(result.exit_code == 3);
  CHECK(result.output == "out\nerr\n");

  CHECK(image.Run("true").exit_code == 0);
  CHECK(image.Run("false").exit_code == 1);
  CHECK(image.Run("no-such-command").exit_code == 127);
  // Stdin is empty.
  CHECK(image.Run("cat; echo done").output == "done\n");
}

TEST_CASE("RunInRoot's command sees only the root, its own processes and hostname",
          "[build_sandbox]") {
  if (!CanSandbox()) return;
  BusyboxRoot image;
  fs::create_directories(image.root() / "srv");
  CHECK(image.Run("ls /").output == "bin\ndev\netc\nproc\nsrv\ntmp\n");
  CHECK(image.Run("hostname").output == "gantry-build\n");
  // The shell is pid 1 of its own pid namespace, as in `docker build`.
  CHECK(image.Run("echo $$; cat /proc/1/cmdline | tr '\\0' ' '").output ==
        "1\n/bin/sh -c echo $$; cat /proc/1/cmdline | tr '\\0' ' ' ");
  SandboxResult processes = image.Run("ls /proc | grep '^[0-9]*$' | wc -l");
  CHECK(std::stoi(processes.output) <= 4);
  CHECK(image.Run("ls /dev").output ==
        "fd\nfull\nnull\nrandom\nshm\nstderr\nstdin\nstdout\ntty\nurandom\nzero\n");
  CHECK(image.Run("head -c 4 /dev/zero | wc -c; echo x > /dev/null && echo null works").output ==
        "4\nnull works\n");
}

TEST_CASE("RunInRoot gives the command exactly the environment it is given", "[build_sandbox]") {
  if (!CanSandbox()) return;
  BusyboxRoot image;
  setenv("GANTRY_SANDBOX_TEST_LEAK", "leaked", 1);
  SandboxResult result = image.Run("env", {"PATH=/bin", "FOO=bar baz"});
  unsetenv("GANTRY_SANDBOX_TEST_LEAK");
  for (const std::string& line : Lines(result.output)) {
    INFO(line);
    // The shell adds its own PWD (and may add SHLVL); nothing else.
    bool given = line == "PATH=/bin" || line == "FOO=bar baz" || line.starts_with("PWD=") ||
                 line.starts_with("SHLVL=");
    CHECK(given);
  }
  CHECK(result.output.find("FOO=bar baz") != std::string::npos);
  CHECK(result.output.find("HOME=") == std::string::npos);
  CHECK(result.output.find("LEAK") == std::string::npos);
}

TEST_CASE("RunInRoot honours the workdir and the user", "[build_sandbox]") {
  if (!CanSandbox()) return;
  BusyboxRoot image;
  fs::create_directories(image.root() / "work/dir");
  CHECK(image.Run("pwd", {"PATH=/bin"}, true, "/work/dir").output == "/work/dir\n");
  CHECK(image.Run("id -u; id -g; id -G", {"PATH=/bin"}, true, "/", "1000:1001").output ==
        "1000\n1001\n1001\n");
  // A uid alone takes its primary group from the image's /etc/passwd.
  CHECK(image.Run("id -u; id -g", {"PATH=/bin"}, true, "/", "1000").output == "1000\n1234\n");
  CHECK(image.Run("id -u; id -g", {"PATH=/bin"}, true, "/", "4242").output == "4242\n0\n");
  CHECK(image.Run("touch /root-only", {"PATH=/bin"}, true, "/", "1000").exit_code != 0);
  CHECK_FALSE(fs::exists(image.root() / "root-only"));
}

TEST_CASE("RunInRoot refuses what it cannot run, with a clear error", "[build_sandbox]") {
  if (!CanSandbox()) return;
  BusyboxRoot image;
  SandboxCommand command;
  command.command = "true";

  command.workdir = "/missing";
  auto missing_workdir = RunInRoot(image.root(), command);
  REQUIRE_FALSE(missing_workdir.ok());
  CHECK(missing_workdir.error().message.find("/missing does not exist") != std::string::npos);

  command.workdir = "/";
  command.user = "builder";
  auto named_user = RunInRoot(image.root(), command);
  REQUIRE_FALSE(named_user.ok());
  CHECK(named_user.error().message.find("numeric") != std::string::npos);
  command.user = "1000:";
  CHECK_FALSE(RunInRoot(image.root(), command).ok());
  command.user = "";

  CHECK_FALSE(RunInRoot(image.temp() / "no-root", command).ok());

  fs::remove(image.root() / "bin/sh");
  auto no_shell = RunInRoot(image.root(), command);
  REQUIRE_FALSE(no_shell.ok());
  CHECK(no_shell.error().message ==
        "the image has no /bin/sh: run steps need a shell; add one (e.g. busybox) in an earlier "
        "step");
  // Nothing was made for a run that never started.
  CHECK(Listing(image.root()) == std::vector<std::string>{"bin", "etc", "tmp"});
}

TEST_CASE("RunInRoot without network has only a loopback device", "[build_sandbox]") {
  if (!CanSandbox()) return;
  BusyboxRoot image;
  auto interfaces = [&](bool network) {
    std::vector<std::string> names;
    for (const std::string& line :
         Lines(image.Run("cat /proc/net/dev", {"PATH=/bin"}, network).output)) {
      std::size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon);
      name.erase(0, name.find_first_not_of(' '));
      names.push_back(name);
    }
    return names;
  };
  CHECK(interfaces(false) == std::vector<std::string>{"lo"});
  // With network, the host's devices.
  std::size_t host_devices = 0;
  for (const std::string& line : Lines(ReadFile("/proc/net/dev")))
    host_devices += line.find(':') != std::string::npos;
  CHECK(interfaces(true).size() == host_devices);
}

TEST_CASE("RunInRoot leaves files in the root and no mounts or mount points behind",
          "[build_sandbox]") {
  if (!CanSandbox()) return;
  BusyboxRoot image;
  const std::string mounts_before = MountInfo();
  const auto root_mtime = Mtime(image.root());
  const auto etc_mtime = Mtime(image.root() / "etc");

  SandboxResult result =
      image.Run("echo hi > /tmp/x && cat /etc/resolv.conf > /tmp/resolv && ls /proc/1 > /dev/null");
  REQUIRE(result.exit_code == 0);
  CHECK(ReadFile(image.root() / "tmp/x") == "hi\n");
  // The host's resolver configuration, read-only.
  CHECK(ReadFile(image.root() / "tmp/resolv") == ReadFile("/etc/resolv.conf"));
  CHECK(image.Run("echo nameserver 6.6.6.6 > /etc/resolv.conf").exit_code != 0);

  CHECK(MountInfo() == mounts_before);
  CHECK(Listing(image.root()) == std::vector<std::string>{"bin", "etc", "tmp"});
  CHECK(Listing(image.root() / "etc") == std::vector<std::string>{"passwd"});
  CHECK(SameTime(Mtime(image.root()), root_mtime));
  CHECK(SameTime(Mtime(image.root() / "etc"), etc_mtime));

  SECTION("mount points the image has stay as they were") {
    fs::create_directories(image.root() / "proc");
    fs::create_directories(image.root() / "dev");
    std::ofstream(image.root() / "dev/placeholder") << "image's own";
    std::ofstream(image.root() / "etc/resolv.conf") << "nameserver 10.0.0.1\n";
    CHECK(image.Run("ls /dev/placeholder").exit_code != 0);
    CHECK(image.Run("cat /etc/resolv.conf").output == ReadFile("/etc/resolv.conf"));
    CHECK(image.Run("cat /etc/resolv.conf", {"PATH=/bin"}, false).output ==
          "nameserver 10.0.0.1\n");
    CHECK(ReadFile(image.root() / "dev/placeholder") == "image's own");
    CHECK(ReadFile(image.root() / "etc/resolv.conf") == "nameserver 10.0.0.1\n");
    CHECK(Listing(image.root()) == std::vector<std::string>{"bin", "dev", "etc", "proc", "tmp"});
  }
  SECTION("a command that changes the folders of mount points keeps its changes") {
    REQUIRE(image.Run("touch /etc/new && mkdir /srv").exit_code == 0);
    CHECK(Listing(image.root()) == std::vector<std::string>{"bin", "etc", "srv", "tmp"});
    CHECK(Listing(image.root() / "etc") == std::vector<std::string>{"new", "passwd"});
    CHECK_FALSE(SameTime(Mtime(image.root() / "etc"), etc_mtime));
  }
  SECTION("an image without /etc gets no resolv.conf") {
    fs::remove_all(image.root() / "etc");
    CHECK(image.Run("ls /").output == "bin\ndev\nproc\ntmp\n");
    CHECK(Listing(image.root()) == std::vector<std::string>{"bin", "tmp"});
  }
  CHECK(MountInfo() == mounts_before);
}

TEST_CASE("RunInRoot's command cannot reach the host", "[build_sandbox]") {
  if (!CanSandbox()) return;
  BusyboxRoot image;
  // A descriptor of the builder left open across exec would be a way out.
  int leaked = open("/", O_RDONLY | O_DIRECTORY);
  REQUIRE(dup2(leaked, 77) == 77);
  close(leaked);
  std::string descriptors = image.Run("ls /proc/self/fd").output;
  close(77);
  CHECK(descriptors.find("77") == std::string::npos);

  CHECK(image.Run("mount -t tmpfs none /tmp").exit_code != 0);
  CHECK(image.Run("mknod /tmp/disk b 8 0").exit_code != 0);
  CHECK(image.Run("echo owned > /proc/sys/kernel/hostname").exit_code != 0);
  CHECK(image.Run("echo c > /proc/sysrq-trigger").exit_code != 0);
  CHECK(image.Run("cat /proc/timer_list | wc -c").output == "0\n");
  CHECK(image.Run("cat /tmp/../../../../etc/passwd").output ==
        ReadFile(image.root() / "etc/passwd"));
  CHECK(image.Run("grep -c _ses /proc/keys || true").output == "0\n");  // masked
  // Docker's default capabilities without CAP_NET_RAW and CAP_MKNOD.
  CHECK(image.Run("grep CapEff /proc/self/status").output == "CapEff:\t00000000a00405fb\n");
  CHECK(image.Run("grep CapBnd /proc/self/status").output == "CapBnd:\t00000000a00405fb\n");
  CHECK(image.Run("grep CapEff /proc/self/status", {"PATH=/bin"}, true, "/", "1000").output ==
        "CapEff:\t0000000000000000\n");
}

TEST_CASE("RunInRoot ends what the command left running and reports signals", "[build_sandbox]") {
  if (!CanSandbox()) return;
  BusyboxRoot image;
  auto start = std::chrono::steady_clock::now();
  CHECK(image.Run("sleep 1000 & echo started").output == "started\n");
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(30));

  // Kill the sandbox's pid 1 from the host: 128 + SIGKILL.
  std::atomic<bool> done = false;
  std::thread killer([&] {
    while (!done) {
      for (const auto& item : fs::directory_iterator("/proc")) {
        std::string cmdline = ReadFile(item.path() / "cmdline");
        std::string status = ReadFile(item.path() / "status");
        if (cmdline.find("987654") != std::string::npos &&
            status.find("NSpid:\t") != std::string::npos &&
            status.find("\t1\n", status.find("NSpid:\t")) != std::string::npos) {
          kill(std::stoi(item.path().filename()), SIGKILL);
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  SandboxResult killed = image.Run("sleep 987654");
  done = true;
  killer.join();
  CHECK(killed.exit_code == 128 + SIGKILL);
}

TEST_CASE("RunInRoot keeps the tail of long output", "[build_sandbox]") {
  if (!CanSandbox()) return;
  BusyboxRoot image;
  SandboxResult result = image.Run("head -c 3000000 /dev/zero | tr '\\0' a; echo END");
  CHECK(result.output.size() == kMaxSandboxOutput);
  CHECK(result.output.ends_with("aaaEND\n"));
}

/// What a tree holds, contents included, leaving out mtimes (a layer clamps them).
std::map<std::string, std::string> Describe(const fs::path& root) {
  auto snapshot = TreeSnapshot::Take(root);
  REQUIRE(snapshot.ok());
  std::map<std::string, std::string> described;
  for (const auto& [path, node] : snapshot->nodes()) {
    std::ostringstream line;
    line << static_cast<int>(node.type) << ' ' << std::oct << node.mode << std::dec << ' '
         << node.uid << ':' << node.gid << ' ' << node.link_target;
    if (node.type == TreeNode::Type::kFile)
      line << ' ' << node.size << ' ' << ReadFile(root / path);
    described[path] = line.str();
  }
  return described;
}

TEST_CASE("A run step end to end: snapshot, run, diff, layer, unpack",
          "[build_sandbox][tree_diff][rootfs]") {
  if (!CanSandbox()) return;
  BusyboxRoot image;
  const fs::path copy = image.temp() / "copy";
  fs::copy(image.root(), copy, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  for (const auto& item : fs::recursive_directory_iterator(image.root())) {
    // fs::copy makes folders under the umask.
    if (!item.is_symlink())
      fs::permissions(copy / fs::relative(item.path(), image.root()), item.status().permissions());
  }
  const std::string mounts_before = MountInfo();

  auto before = TreeSnapshot::Take(image.root());
  REQUIRE(before.ok());
  SandboxResult result = image.Run("echo hi > /greeting; rm /bin/ls; mkdir -p /srv/x");
  REQUIRE(result.exit_code == 0);
  CHECK(MountInfo() == mounts_before);

  auto entries = DiffTree(*before, image.root());
  REQUIRE(entries.ok());
  std::vector<std::string> paths;
  for (const LayerEntry& entry : *entries) paths.push_back(entry.path);
  CHECK(paths == std::vector<std::string>{"bin", "bin/.wh.ls", "greeting", "srv", "srv/x"});

  auto store = ContentStore::Open(image.temp() / "store");
  REQUIRE(store.ok());
  auto layer = WriteLayer(*entries, *store, LayerOptions{});
  REQUIRE(layer.ok());
  auto unpacked = UnpackLayer(store->BlobPath(layer->blob.digest), copy);
  REQUIRE(unpacked.ok());
  auto unpacked_tree = Describe(copy);
  auto run_tree = Describe(image.root());
  for (const auto& [path, line] : run_tree) {
    INFO(path);
    CHECK(unpacked_tree[path] == line);
  }
  CHECK(unpacked_tree.size() == run_tree.size());
  CHECK_FALSE(fs::exists(fs::symlink_status(copy / "bin/ls")));
  CHECK(ReadFile(copy / "greeting") == "hi\n");
}

}  // namespace
}  // namespace builder
