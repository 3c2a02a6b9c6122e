// `gantry build` end to end: real run steps on a busybox image, checked with
// umoci, skopeo and the OCI image-spec JSON Schemas.

#include <sys/stat.h>
#include <utime.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "builder/rootfs.h"
#include "tests/gantry_command.h"
#include "tests/skip.h"
#include "tests/temp_dir.h"

namespace fs = std::filesystem;
using tests::CommandOutput;
using tests::RunGantry;
using tests::RunProcess;
using tests::TempDir;

namespace {

const char* kSpec = R"(app: buildtest
images:
  base:
    from: scratch
    steps:
      - copy: {src: ./rootfs, dst: /}
      - env: {GREETING: hello}
      - run: "echo $GREETING > /greeting && rm /bin/removeme && rm -r /old && mkdir -p /srv/data && echo x > /srv/data/x"
      - workdir: /srv
    cmd: ["/bin/sh"]
)";

// A build context: a busybox root, files to delete later, and the spec.
void WriteContext(const TempDir& context, const std::string& spec = kSpec) {
  fs::create_directories(context.path() / "rootfs" / "bin");
  fs::copy_file("/bin/busybox", context.path() / "rootfs" / "bin" / "busybox");
  fs::create_symlink("busybox", context.path() / "rootfs" / "bin" / "sh");
  context.Write("rootfs/bin/removeme", "gone soon\n");
  context.Write("rootfs/old/a", "a\n");
  context.Write("rootfs/old/b/c", "c\n");
  context.Write("rootfs/www/index.html", "<p>hello</p>\n");
  context.Write("app.yaml", spec);
}

std::string Read(const fs::path& path) {
  std::ifstream stream(path, std::ios::binary);
  std::ostringstream text;
  text << stream.rdbuf();
  return text.str();
}

// "base sha256:..." lines of `gantry build` → the digest of `image`.
std::string DigestOf(const CommandOutput& output, const std::string& image) {
  std::istringstream lines(output.out);
  std::string name, digest;
  while (lines >> name >> digest) {
    if (name == image) return digest;
  }
  return "";
}

CommandOutput Build(const fs::path& spec, const fs::path& output,
                    std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"build", spec.string(), "--output", output.string()};
  args.insert(args.end(), extra.begin(), extra.end());
  return RunGantry(args, {"SOURCE_DATE_EPOCH=1700000000"});
}

// umoci's unpack of `tag` in the OCI layout `layout` into the bundle `bundle`.
CommandOutput UmociUnpack(const fs::path& layout, const std::string& tag, const fs::path& bundle) {
  return RunProcess({"umoci", "unpack", "--image", layout.string() + ":" + tag, bundle.string()});
}

CommandOutput CheckLayout(const fs::path& layout) {
  return RunProcess(
      {"/usr/bin/python3", std::string(GANTRY_SOURCE_DIR) + "/tests/oci_layout_check.py",
       std::string(GANTRY_SOURCE_DIR) + "/../shared/oci-image-spec-schemas", layout.string()});
}

void SetMtimes(const fs::path& root, std::time_t when) {
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (entry.is_symlink()) continue;
    struct utimbuf times {
      when, when
    };
    utime(entry.path().c_str(), &times);
  }
}

// Path, type, mode, owner and content (or link target) of everything under `root`.
std::map<std::string, std::string> TreeListing(const fs::path& root) {
  std::map<std::string, std::string> listing;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    struct stat info {};
    REQUIRE(lstat(entry.path().c_str(), &info) == 0);
    std::string text = std::to_string(info.st_mode) + " " + std::to_string(info.st_uid) + ":" +
                       std::to_string(info.st_gid) + " ";
    if (S_ISREG(info.st_mode)) text += Read(entry.path());
    if (S_ISLNK(info.st_mode)) text += fs::read_symlink(entry.path()).string();
    listing[fs::relative(entry.path(), root).string()] = text;
  }
  return listing;
}

/// The spec's run steps need the build sandbox, which needs root: false,
/// the case skipped, without it.
bool SandboxOrSkip() {
  return tests::RootOrSkip("a run step's build sandbox needs root");
}

}  // namespace

TEST_CASE(
    "a built image unpacks with umoci, inspects with skopeo and validates against the OCI "
    "schemas") {
  if (!SandboxOrSkip()) return;
  TempDir context, out, bundle;
  WriteContext(context);
  CommandOutput build = Build(context.path() / "app.yaml", out.path() / "layout");
  INFO(build.err);
  REQUIRE(build.exit_code == 0);
  std::string digest = DigestOf(build, "base");
  REQUIRE(digest.rfind("sha256:", 0) == 0);

  CommandOutput checked = CheckLayout(out.path() / "layout");
  INFO(checked.out << checked.err);
  CHECK(checked.exit_code == 0);
  CHECK(checked.out.find("config-schema.json") != std::string::npos);

  CommandOutput unpacked = UmociUnpack(out.path() / "layout", "base", bundle.path() / "b");
  INFO(unpacked.err);
  REQUIRE(unpacked.exit_code == 0);
  fs::path rootfs = bundle.path() / "b" / "rootfs";
  CHECK(Read(rootfs / "greeting") == "hello\n");  // the run step saw the env step
  CHECK(Read(rootfs / "srv" / "data" / "x") == "x\n");
  CHECK(fs::exists(rootfs / "bin" / "busybox"));
  CHECK(fs::is_symlink(rootfs / "bin" / "sh"));
  CHECK_FALSE(fs::exists(fs::symlink_status(rootfs / "bin" / "removeme")));  // a whiteout, honoured
  CHECK_FALSE(fs::exists(fs::symlink_status(rootfs / "old")));  // one whiteout for the folder
  CHECK(Read(rootfs / "www" / "index.html") == "<p>hello</p>\n");
  nlohmann::json runtime = nlohmann::json::parse(Read(bundle.path() / "b" / "config.json"));
  CHECK(runtime["process"]["cwd"] == "/srv");
  CHECK(runtime["process"]["args"] == nlohmann::json({"/bin/sh"}));

  CommandOutput inspected =
      RunProcess({"skopeo", "inspect", "oci:" + (out.path() / "layout").string() + ":base"});
  INFO(inspected.err);
  REQUIRE(inspected.exit_code == 0);
  nlohmann::json inspect = nlohmann::json::parse(inspected.out);
  CHECK(inspect["Digest"] == digest);
  CHECK(inspect["Layers"].size() == 2);
  CHECK(inspect["Created"] == "2023-11-14T22:13:20Z");  // SOURCE_DATE_EPOCH
  bool greeting = false;
  for (const auto& variable : inspect["Env"]) greeting = greeting || variable == "GREETING=hello";
  CHECK(greeting);
}

TEST_CASE("the OCI layout check fails on a layout that breaks the schemas") {
  TempDir layout;
  layout.Write("oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  layout.Write(
      "index.json",
      R"({"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"sha256:00","size":-1}]})");
  CommandOutput checked = CheckLayout(layout.path());
  CHECK(checked.exit_code == 1);
  CHECK(checked.out.find("FAIL: index.json does not match image-index-schema.json") !=
        std::string::npos);
}

TEST_CASE(
    "the same spec and inputs give the same digest in another folder, with other mtimes, at "
    "another time") {
  if (!SandboxOrSkip()) return;
  TempDir first, second, out;
  WriteContext(first);
  WriteContext(second);
  SetMtimes(first.path(), 1'000'000'000);
  SetMtimes(second.path(), 1'600'000'000);
  CommandOutput a = Build(first.path() / "app.yaml", out.path() / "a");
  CommandOutput b = Build(second.path() / "app.yaml", out.path() / "b");
  INFO(a.err << b.err);
  REQUIRE(a.exit_code == 0);
  REQUIRE(b.exit_code == 0);
  CHECK(DigestOf(a, "base") == DigestOf(b, "base"));
  CommandOutput uncached = Build(second.path() / "app.yaml", out.path() / "a", {"--no-cache"});
  REQUIRE(uncached.exit_code == 0);
  CHECK(DigestOf(uncached, "base") == DigestOf(a, "base"));
}

TEST_CASE("a rebuild reuses every layer, and changing step k rebuilds steps k..n only") {
  if (!SandboxOrSkip()) return;
  TempDir context, out;
  WriteContext(context);
  fs::path spec = context.path() / "app.yaml";
  CommandOutput first = Build(spec, out.path() / "layout");
  REQUIRE(first.exit_code == 0);
  CHECK(first.err.find("[1/5] copy ./rootfs /") != std::string::npos);
  CHECK(first.err.find("built") != std::string::npos);

  CommandOutput again = Build(spec, out.path() / "layout");
  REQUIRE(again.exit_code == 0);
  CHECK(again.err.find("built") == std::string::npos);
  CHECK(DigestOf(again, "base") == DigestOf(first, "base"));

  std::string edited = kSpec;
  edited.replace(edited.find("echo x"), 6, "echo y");
  context.Write("app.yaml", edited);
  CommandOutput changed = Build(spec, out.path() / "layout");
  INFO(changed.err);
  REQUIRE(changed.exit_code == 0);
  std::istringstream lines(changed.err);
  std::string line;
  std::vector<std::string> layer_steps;
  while (std::getline(lines, line)) {
    if (line.find(" built ") != std::string::npos) layer_steps.push_back("built");
    if (line.find(" cached ") != std::string::npos) layer_steps.push_back("cached");
  }
  CHECK(layer_steps == std::vector<std::string>{"cached", "built"});  // copy cached, run rebuilt
  CHECK(DigestOf(changed, "base") != DigestOf(first, "base"));

  context.Write("rootfs/www/index.html", "<p>changed input</p>\n");  // an input of step 1
  CommandOutput input_changed = Build(spec, out.path() / "layout");
  CHECK(input_changed.err.find(" cached ") == std::string::npos);
}

TEST_CASE("a failed run step shows its output and exit code and leaves no image") {
  if (!SandboxOrSkip()) return;
  TempDir context, out;
  WriteContext(context, R"(app: buildtest
images:
  broken:
    from: scratch
    steps:
      - copy: {src: ./rootfs, dst: /}
      - run: "echo boom from the build; exit 3"
)");
  CommandOutput build = Build(context.path() / "app.yaml", out.path() / "layout");
  CHECK(build.exit_code == 1);
  CHECK(build.err.find("failed with exit code 3") != std::string::npos);
  CHECK(build.err.find("boom from the build") != std::string::npos);
  CHECK(Read(out.path() / "layout" / "index.json").find("broken") == std::string::npos);
}

TEST_CASE("an image builds from an OCI layout base and adds to it") {
  if (!SandboxOrSkip()) return;
  TempDir context, out, bundle;
  WriteContext(context);
  CommandOutput base = Build(context.path() / "app.yaml", context.path() / "layout");
  REQUIRE(base.exit_code == 0);
  context.Write("derived.yaml", R"(app: derived
images:
  app:
    from: oci:./layout:base
    steps:
      - run: "cat /greeting > /derived && pwd > /cwd"
)");
  CommandOutput derived = Build(context.path() / "derived.yaml", out.path() / "layout");
  INFO(derived.err);
  REQUIRE(derived.exit_code == 0);
  CHECK(CheckLayout(out.path() / "layout").exit_code == 0);
  REQUIRE(UmociUnpack(out.path() / "layout", "app", bundle.path() / "b").exit_code == 0);
  CHECK(Read(bundle.path() / "b" / "rootfs" / "derived") == "hello\n");
  CHECK(Read(bundle.path() / "b" / "rootfs" / "cwd") ==
        "/srv\n");  // the base's workdir carried over
}

TEST_CASE("concurrent builds sharing a store do not corrupt it") {
  if (!SandboxOrSkip()) return;
  TempDir context, out;
  WriteContext(context);
  std::string spec = kSpec;
  for (int i = 0; i < 4; ++i) {
    std::string variant = spec;
    variant.replace(variant.find("  base:"), 7, "  base" + std::to_string(i) + ":");
    variant.replace(variant.find("echo x"), 6, "echo " + std::to_string(i));
    context.Write("app" + std::to_string(i) + ".yaml", variant);
  }
  std::vector<CommandOutput> results(4);
  std::vector<std::thread> builds;
  for (int i = 0; i < 4; ++i) {
    builds.emplace_back([&, i] {
      results[i] =
          Build(context.path() / ("app" + std::to_string(i) + ".yaml"), out.path() / "shared");
    });
  }
  for (std::thread& build : builds) build.join();
  for (const CommandOutput& result : results) {
    INFO(result.err);
    CHECK(result.exit_code == 0);
  }
  CHECK(CheckLayout(out.path() / "shared").exit_code == 0);
  std::string index = Read(out.path() / "shared" / "index.json");
  for (int i = 0; i < 4; ++i)
    CHECK(index.find("\"base" + std::to_string(i) + "\"") != std::string::npos);
}

TEST_CASE("a zstd image builds reproducibly, reads with skopeo and validates against the schemas") {
  if (!SandboxOrSkip()) return;
  std::string spec = kSpec;
  spec.replace(spec.find("    from: scratch\n"), 18, "    from: scratch\n    compression: zstd\n");
  TempDir first, second, out, bundle;
  WriteContext(first, spec);
  WriteContext(second, spec);
  SetMtimes(first.path(), 1'000'000'000);
  SetMtimes(second.path(), 1'600'000'000);
  CommandOutput a = Build(first.path() / "app.yaml", out.path() / "a");
  CommandOutput b = Build(second.path() / "app.yaml", out.path() / "b");
  INFO(a.err << b.err);
  REQUIRE(a.exit_code == 0);
  REQUIRE(b.exit_code == 0);
  CHECK(DigestOf(a, "base") == DigestOf(b, "base"));
  // Not the gzip image's digest, though the same tars: the key has the compression.
  TempDir third;
  WriteContext(third);
  CommandOutput gzip = Build(third.path() / "app.yaml", out.path() / "a");
  REQUIRE(gzip.exit_code == 0);
  CHECK(DigestOf(gzip, "base") != DigestOf(a, "base"));

  CommandOutput checked = CheckLayout(out.path() / "b");
  INFO(checked.out << checked.err);
  CHECK(checked.exit_code == 0);
  CommandOutput inspected =
      RunProcess({"skopeo", "inspect", "--raw", "oci:" + (out.path() / "b").string() + ":base"});
  INFO(inspected.err);
  REQUIRE(inspected.exit_code == 0);
  nlohmann::json manifest = nlohmann::json::parse(inspected.out);
  REQUIRE(manifest["layers"].size() == 2);
  for (const auto& layer : manifest["layers"])
    CHECK(layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd");
  CommandOutput described =
      RunProcess({"skopeo", "inspect", "oci:" + (out.path() / "b").string() + ":base"});
  INFO(described.err);
  CHECK(described.exit_code == 0);
  CHECK(nlohmann::json::parse(described.out)["Digest"] == DigestOf(b, "base"));

  // umoci 0.4.7 (Debian 12) reads gzip layers only: the zstd image, unpacked
  // with UnpackLayer, is the same tree as the gzip one unpacked with umoci.
  REQUIRE(UmociUnpack(out.path() / "a", "base", bundle.path() / "g").exit_code == 0);
  fs::path zstd_root = bundle.path() / "z";
  fs::create_directories(zstd_root);
  for (const auto& layer : manifest["layers"]) {
    std::string digest = layer["digest"];
    REQUIRE(
        builder::UnpackLayer(out.path() / "b" / "blobs" / "sha256" / digest.substr(7), zstd_root)
            .ok());
  }
  CHECK(Read(zstd_root / "greeting") == "hello\n");
  CHECK(TreeListing(zstd_root) == TreeListing(bundle.path() / "g" / "rootfs"));
}

TEST_CASE("a capability set by a run step survives the build and the unpack") {
  if (!SandboxOrSkip()) return;
  TempDir context, out, bundle;
  // setcap and what it links, copied from the host: busybox has no setcap.
  for (const char* file : {"/usr/sbin/setcap", "/lib/x86_64-linux-gnu/libcap.so.2",
                           "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"}) {
    fs::path target = context.path() / "rootfs" / fs::path(file).relative_path();
    fs::create_directories(target.parent_path());
    fs::copy_file(fs::canonical(file), target);
  }
  WriteContext(context, R"(app: buildtest
images:
  caps:
    from: scratch
    steps:
      - copy: {src: ./rootfs, dst: /}
      - run: "cp /bin/busybox /bin/server"
      - run: "/usr/sbin/setcap cap_net_bind_service=+ep /bin/server"
)");
  CommandOutput build = Build(context.path() / "app.yaml", out.path() / "layout");
  INFO(build.err);
  REQUIRE(build.exit_code == 0);
  // The last step changed an attribute only, and still made a layer with the file.
  CHECK(build.err.find("[3/3] run /usr/sbin/setcap") != std::string::npos);
  CommandOutput unpacked = UmociUnpack(out.path() / "layout", "caps", bundle.path() / "b");
  INFO(unpacked.err);
  REQUIRE(unpacked.exit_code == 0);
  CommandOutput caps = RunProcess(
      {"/usr/sbin/getcap", (bundle.path() / "b" / "rootfs" / "bin" / "server").string()});
  CHECK(caps.out.find("cap_net_bind_service=ep") != std::string::npos);
  CommandOutput plain = RunProcess(
      {"/usr/sbin/getcap", (bundle.path() / "b" / "rootfs" / "bin" / "busybox").string()});
  CHECK(plain.out.find("cap_") == std::string::npos);
}

TEST_CASE("a prune started during a build waits for it, and the image is complete") {
  if (!SandboxOrSkip()) return;
  TempDir context, out, bundle;
  std::string spec = kSpec;
  spec.replace(spec.find("echo x"), 6, "sleep 2; echo x");
  WriteContext(context, spec);
  const fs::path store = out.path() / "layout";
  std::atomic<bool> finished = false;
  CommandOutput build;
  std::thread building([&] {
    build = Build(context.path() / "app.yaml", store);
    finished = true;
  });
  // The build's record appears once it holds the store.
  auto has_record = [&] {
    std::error_code error;
    return fs::exists(store / ".gantry" / "builds", error) &&
           !fs::is_empty(store / ".gantry" / "builds", error);
  };
  while (!has_record() && !finished) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CommandOutput prune = RunGantry({"cache", "prune", "--all", "--store", store.string()});
  building.join();
  INFO(build.err << prune.out << prune.err);
  REQUIRE(build.exit_code == 0);
  CHECK(prune.exit_code == 0);
  // It waited for the build: it found (and, with --all, removed) the cache
  // entries of both layer steps, the last recorded just before the image was tagged.
  CHECK(prune.out.find("removed 2 cache entries") != std::string::npos);
  CHECK(CheckLayout(store).exit_code == 0);
  CHECK(UmociUnpack(store, "base", bundle.path() / "b").exit_code == 0);
  CHECK(Read(bundle.path() / "b" / "rootfs" / "srv" / "data" / "x") == "x\n");

  SECTION("with --lock-timeout, a prune during a build names it and removes nothing") {
    std::thread again([&] { build = Build(context.path() / "app.yaml", store, {"--no-cache"}); });
    while (!has_record()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    CommandOutput refused =
        RunGantry({"cache", "prune", "--all", "--lock-timeout", "0", "--store", store.string()});
    again.join();
    CHECK(refused.exit_code != 0);
    CHECK(refused.err.find("is in use by build (pid ") != std::string::npos);
    CHECK(build.exit_code == 0);
  }
}
