#include "agents/image_layers.h"

#include <catch2/catch.hpp>
#include <fstream>

#include "builder/layer_writer.h"
#include "core/atomic_file.h"
#include "tests/temp_dir.h"

namespace agents {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

/// A two-layer image in a fresh store: layer 1 has etc/a and etc/b, layer 2
/// replaces etc/a and deletes etc/b. Returns the manifest digest.
std::string MakeImage(builder::ContentStore& store, const tests::TempDir& dir) {
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
                                   store, {});
  REQUIRE(lower.ok());
  auto upper = builder::WriteLayer({entry("etc", Type::kDirectory), entry("etc/a", Type::kFile, a2),
                                    entry("etc/.wh.b", Type::kFile)},
                                   store, {});
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
