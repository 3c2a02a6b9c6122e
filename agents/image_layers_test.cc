#include "agents/image_layers.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <set>

#include "builder/image_manifest.h"
#include "builder/layer_writer.h"
#include "core/atomic_file.h"
#include "tests/skip.h"
#include "tests/tar_builder.h"
#include "tests/temp_dir.h"

namespace agents {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

/// A two-layer image in a fresh store: layer 1 has etc/a and etc/b, layer 2
/// replaces etc/a and deletes etc/b. Returns the manifest digest.
std::string MakeImage(builder::ContentStore& store, const tests::TempDir& dir,
                      const builder::LayerOptions& options = {}) {
  fs::path a1 = dir.Write("src/a1", "one");
  fs::path a2 = dir.Write("src/a2", "two");
  auto entry = [](std::string path, builder::LayerEntry::Type type, fs::path source = {}) {
    builder::LayerEntry entry;
    entry.path = std::move(path);
    entry.type = type;
    entry.mode = type == builder::LayerEntry::Type::kDirectory ? 0755 : 0644;
    entry.source = std::move(source);
    return entry;
  };
  using Type = builder::LayerEntry::Type;
  auto lower = builder::WriteLayer({entry("etc", Type::kDirectory), entry("etc/a", Type::kFile, a1),
                                    entry("etc/b", Type::kFile, a1)},
                                   store, options);
  REQUIRE(lower.ok());
  auto upper = builder::WriteLayer({entry("etc", Type::kDirectory), entry("etc/a", Type::kFile, a2),
                                    entry("etc/.wh.b", Type::kFile)},
                                   store, options);
  REQUIRE(upper.ok());
  json config = {{"architecture", "amd64"},
                 {"os", "linux"},
                 {"config", {{"Env", {"A=1"}}, {"Cmd", {"/bin/sh"}}, {"WorkingDir", "/srv"}}},
                 {"rootfs", {{"type", "layers"}, {"diff_ids", {lower->diff_id, upper->diff_id}}}}};
  auto config_blob = store.PutBlob(config.dump(), builder::kOciConfigMediaType);
  REQUIRE(config_blob.ok());
  json manifest = {{"schemaVersion", 2},
                   {"mediaType", builder::kOciManifestMediaType},
                   {"config", config_blob->ToJson()},
                   {"layers", {lower->blob.ToJson(), upper->blob.ToJson()}}};
  auto manifest_blob = store.PutBlob(manifest.dump(), builder::kOciManifestMediaType);
  REQUIRE(manifest_blob.ok());
  return manifest_blob->digest;
}

TEST_CASE("an image's layers are unpacked once each and shared", "[image_layers]") {
  tests::TempDir dir("gantry-image-layers-test");
  auto store = builder::ContentStore::Open(dir.path() / "store");
  REQUIRE(store.ok());
  std::string digest = MakeImage(*store, dir);
  ImageLayers layers(*store, dir.path() / "layers");
  fs::create_directories(dir.path() / "layers");

  auto prepared = layers.Prepare(digest);
  REQUIRE(prepared.ok());
  REQUIRE(prepared->layers.size() == 2);
  CHECK(prepared->settings.cmd == std::vector<std::string>{"/bin/sh"});
  CHECK(prepared->settings.workdir == "/srv");
  CHECK(core::ReadFile(prepared->layers[0] / "etc/a").value() == "one");
  CHECK(core::ReadFile(prepared->layers[1] / "etc/a").value() == "two");
  // In overlay form: the upper layer keeps its whiteout as a 0/0 device.
  CHECK(fs::is_character_file(fs::symlink_status(prepared->layers[1] / "etc/b")));

  // A second Prepare reuses what is there: a mark left in a layer stays.
  std::ofstream(prepared->layers[0] / "mark") << "x";
  auto again = layers.Prepare(digest);
  REQUIRE(again.ok());
  CHECK(again->layers == prepared->layers);
  CHECK(fs::exists(again->layers[0] / "mark"));
  // No temporary folder is left behind.
  int entries = 0;
  for (const auto& entry : fs::directory_iterator(dir.path() / "layers")) {
    CHECK(entry.path().filename().string()[0] != '.');
    ++entries;
  }
  CHECK(entries == 2);
}

TEST_CASE("an image of zstd layers is unpacked like one of gzip layers", "[image_layers]") {
  tests::TempDir dir("gantry-image-layers-test");
  auto store = builder::ContentStore::Open(dir.path() / "store");
  REQUIRE(store.ok());
  builder::LayerOptions zstd;
  zstd.compression = spec::Compression::kZstd;
  std::string digest = MakeImage(*store, dir, zstd);
  auto image = builder::ReadStoredImage(*store, digest);
  REQUIRE(image.ok());
  for (const builder::Descriptor& layer : image->layers)
    CHECK(layer.media_type == builder::kOciLayerZstdMediaType);
  ImageLayers layers(*store, dir.path() / "layers");
  fs::create_directories(dir.path() / "layers");
  auto prepared = layers.Prepare(digest);
  REQUIRE(prepared.ok());
  REQUIRE(prepared->layers.size() == 2);
  CHECK(core::ReadFile(prepared->layers[0] / "etc/a").value() == "one");
  CHECK(core::ReadFile(prepared->layers[1] / "etc/a").value() == "two");
  CHECK(fs::is_character_file(fs::symlink_status(prepared->layers[1] / "etc/b")));
}

TEST_CASE("a layer blob that does not match its digest is refused and nothing is kept",
          "[image_layers]") {
  tests::TempDir dir("gantry-image-layers-test");
  auto store = builder::ContentStore::Open(dir.path() / "store");
  REQUIRE(store.ok());
  std::string digest = MakeImage(*store, dir);
  json manifest = json::parse(store->ReadBlob(digest).value());
  fs::path blob = store->BlobPath(manifest["layers"][1]["digest"]);
  fs::permissions(blob, fs::perms::owner_write, fs::perm_options::add);
  std::ofstream(blob, std::ios::app) << "tampered";
  fs::create_directories(dir.path() / "layers");

  ImageLayers layers(*store, dir.path() / "layers");
  auto prepared = layers.Prepare(digest);
  REQUIRE_FALSE(prepared.ok());
  CHECK(prepared.error().message.find("does not match its digest") != std::string::npos);
  CHECK_FALSE(fs::exists(dir.path() / "layers" /
                         manifest["layers"][1]["digest"].get<std::string>().substr(7)));
}

/// An image of one layer, `items` written as they are into a plain tar (so
/// that its diff_id is its digest), in `store`. Returns the manifest digest
/// and, in `layer_hex`, the layer's digest without "sha256:".
std::string MakeImageOf(builder::ContentStore& store, const tests::TempDir& dir,
                        const std::vector<tests::TarItem>& items, std::string* layer_hex) {
  fs::path tar = dir.path() / "src" / "layer.tar";
  fs::create_directories(tar.parent_path());
  std::string err;
  bool written = tests::WriteTar(tar, items, /*gzip=*/false, &err);
  INFO(err);
  REQUIRE(written);
  auto layer = store.PutBlob(core::ReadFile(tar).value(), builder::kOciLayerTarMediaType);
  REQUIRE(layer.ok());
  *layer_hex = layer->digest.substr(7);
  json config = {{"architecture", "amd64"},
                 {"os", "linux"},
                 {"config", json::object()},
                 {"rootfs", {{"type", "layers"}, {"diff_ids", {layer->digest}}}}};
  auto config_blob = store.PutBlob(config.dump(), builder::kOciConfigMediaType);
  REQUIRE(config_blob.ok());
  json manifest = {{"schemaVersion", 2},
                   {"mediaType", builder::kOciManifestMediaType},
                   {"config", config_blob->ToJson()},
                   {"layers", {layer->ToJson()}}};
  auto manifest_blob = store.PutBlob(manifest.dump(), builder::kOciManifestMediaType);
  REQUIRE(manifest_blob.ok());
  return manifest_blob->digest;
}

std::set<std::string> Names(const fs::path& folder) {
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(folder)) names.insert(entry.path().filename());
  return names;
}

/// One trick of a hostile layer and what Prepare must do with it: fail
/// naming `refused_entry`, or (when that is empty) succeed with the trick
/// confined to the layer's own folder, `confined_path` there holding
/// `confined_content` (when not empty).
struct HostileLayer {
  std::string trick;
  std::vector<tests::TarItem> items;
  std::string refused_entry;
  std::string confined_path;
  std::string confined_content;
};

HostileLayer Refused(std::string trick, std::vector<tests::TarItem> items, std::string entry) {
  return {std::move(trick), std::move(items), std::move(entry), "", ""};
}

HostileLayer Confined(std::string trick, std::vector<tests::TarItem> items, std::string path,
                      std::string content = "") {
  return {std::move(trick), std::move(items), "", std::move(path), std::move(content)};
}

// The tricks of builder/rootfs_test.cc, end to end through the agent's cache:
// a layer folder is unpacked in DIR/.unpacking-HEX-PID and renamed to
// DIR/HEX, so `../../outside` from a layer's root is the sentinel beside the
// layers folder and `../HEX` a layer unpacked before: the first places a
// naive unpacker would write to.
TEST_CASE("hostile layers are refused or confined, and nothing is written outside their folder",
          "[image_layers][hostile]") {
  if (!tests::RootOrSkip(
          "layers in overlay form (whiteout devices, trusted.* attributes) need root"))
    return;
  using tests::Device;
  using tests::File;
  using tests::Hardlink;
  using tests::Item;
  using tests::Symlink;
  tests::TempDir dir("gantry-image-layers-test");
  auto store = builder::ContentStore::Open(dir.path() / "store");
  REQUIRE(store.ok());
  const fs::path layers_dir = dir.path() / "layers";
  fs::create_directories(layers_dir);
  ImageLayers layers(*store, layers_dir);

  // A benign image unpacked first: its layer folders must not change either.
  auto benign = layers.Prepare(MakeImage(*store, dir));
  REQUIRE(benign.ok());
  const std::string sibling = benign->layers[0].filename();
  std::map<fs::path, std::map<std::string, std::string>> benign_before;
  for (const fs::path& layer : benign->layers) benign_before[layer] = tests::TreeFingerprint(layer);

  const fs::path outside = dir.path() / "outside";
  dir.Write("outside/victim", "precious");
  dir.Write("outside/sub/dir/file", "also precious");
  const std::string outside_abs = outside.string();
  const auto outside_before = tests::TreeFingerprint(outside);
  std::set<std::string> expected_layers = Names(layers_dir);

  tests::TarItem setuid_link = Hardlink("h", "s");
  setuid_link.mode = 06777;
  setuid_link.uid = 4242;
  const std::string long_name(300, 'n');
  const std::vector<HostileLayer> tricks = {
      Refused("a name that climbs to the sentinel", {File("../../outside/victim", "owned")},
              "../../outside/victim"),
      Refused("a name that climbs into a sibling layer",
              {File("../" + sibling + "/etc/a", "owned")}, "../" + sibling + "/etc/a"),
      Refused("`..` in the middle of a name", {File("etc/x/../../../../outside/victim", "owned")},
              "etc/x/../../../../outside/victim"),
      Confined("an absolute name", {File(outside_abs + "/victim", "owned")},
               outside_abs.substr(1) + "/victim", "owned"),
      Confined("a symlink named . or / (CVE-2021-29136)",
               {Symlink(".", outside_abs), Symlink("/", "../../outside"), File("victim", "owned")},
               "victim", "owned"),
      Refused("an absolute symlink out, then a file through it",
              {Symlink("evil", outside_abs), File("evil/victim", "owned")}, "evil/victim"),
      Confined("a relative symlink out, then a file through it",
               {Symlink("up", "../../.."), File("up/outside/victim", "owned")}, "outside/victim",
               "owned"),
      Refused("a symlink to a sibling layer, then a file through it",
              {Symlink("sib", "../" + sibling), File("sib/etc/a", "owned")}, "sib/etc/a"),
      Confined("a hardlink to a symlink out, with a setuid mode (CVE-2021-32760)",
               {Symlink("s", outside_abs + "/victim"), setuid_link}, "h"),
      Refused("a hardlink to a host file", {Hardlink("passwd", "/etc/passwd")}, "passwd"),
      Refused("a hardlink that climbs to the sentinel", {Hardlink("h", "../../outside/victim")},
              "h"),
      Refused("a hardlink to the sentinel's absolute path",
              {Hardlink("h", outside_abs + "/victim")}, "h"),
      Refused("a hardlink into a sibling layer", {Hardlink("h", "../" + sibling + "/etc/a")}, "h"),
      Refused("a whiteout that climbs to the sentinel", {File("../../outside/.wh.victim")},
              "../../outside/.wh.victim"),
      Refused("an opaque whiteout that climbs to the sentinel",
              {File("../../outside/sub/.wh..wh..opq")}, "../../outside/sub/.wh..wh..opq"),
      Refused("a whiteout through an absolute symlink out",
              {Symlink("evil", outside_abs), File("evil/.wh.victim")}, "evil/.wh.victim"),
      Confined("whiteouts through a relative symlink out",
               {Symlink("up", "../../.."), File("up/outside/.wh.victim"),
                File("up/outside/sub/.wh..wh..opq")},
               "outside/victim"),
      Refused("a whiteout of ..", {File("etc/.wh..")}, "etc/.wh.."),
      Confined(
          "device nodes, a fifo and a whiteout written as a device",
          {Device("dev/null", 'c', 1, 3), Device("dev/sda", 'b', 8, 0), Item("dev/fifo", 'p', 0666),
           Device("dev/.wh.gone", 'c', 1, 3), File("dev/keep", "kept")},
          "dev/keep", "kept"),
      Refused("a name longer than the kernel takes", {File(long_name, "x")}, long_name),
  };

  // CHECKs, not REQUIREs: every trick is tried and reported, even after one fails.
  for (const HostileLayer& trick : tricks) {
    INFO(trick.trick);
    std::string layer_hex;
    std::string manifest_digest = MakeImageOf(*store, dir, trick.items, &layer_hex);
    auto prepared = layers.Prepare(manifest_digest);
    if (!trick.refused_entry.empty()) {
      CHECK_FALSE(prepared.ok());
      if (!prepared.ok()) {
        CHECK(prepared.error().message.find("layer entry " + trick.refused_entry) !=
              std::string::npos);
      }
    } else {
      INFO((prepared.ok() ? "" : prepared.error().message));
      CHECK(prepared.ok());
      if (prepared.ok() && prepared->layers.size() == 1) {
        const fs::path layer = prepared->layers[0];
        CHECK(layer == layers_dir / layer_hex);
        CHECK(fs::exists(fs::symlink_status(layer / trick.confined_path)));
        if (!trick.confined_content.empty()) {
          auto content = core::ReadFile(layer / trick.confined_path);
          CHECK((content.ok() && *content == trick.confined_content));
        }
        // Whatever the layer held, its folder has no device but whiteouts (0/0).
        for (const auto& entry : fs::recursive_directory_iterator(layer)) {
          struct stat info {};
          REQUIRE(lstat(entry.path().c_str(), &info) == 0);
          INFO(entry.path());
          CHECK_FALSE((S_ISBLK(info.st_mode) || S_ISFIFO(info.st_mode) || S_ISSOCK(info.st_mode)));
          if (S_ISCHR(info.st_mode)) CHECK(info.st_rdev == makedev(0, 0));
        }
        expected_layers.insert(layer_hex);
      }
    }
    // Nothing outside the layer's own folder changed, and a refused layer
    // left no folder, half-unpacked or not.
    CHECK(tests::TreeFingerprint(outside) == outside_before);
    for (const auto& [layer, before] : benign_before)
      CHECK(tests::TreeFingerprint(layer) == before);
    CHECK(Names(layers_dir) == expected_layers);
    CHECK(Names(dir.path()) == std::set<std::string>{"layers", "outside", "src", "store"});
  }
}

TEST_CASE("an image missing from the store is a clear error", "[image_layers]") {
  tests::TempDir dir("gantry-image-layers-test");
  auto store = builder::ContentStore::Open(dir.path() / "store");
  REQUIRE(store.ok());
  ImageLayers layers(*store, dir.path() / "layers");
  auto prepared = layers.Prepare("sha256:" + std::string(64, '0'));
  REQUIRE_FALSE(prepared.ok());
  CHECK(prepared.error().code == core::ErrorCode::kNotFound);
}

}  // namespace
}  // namespace agents
