#include "agents/image_layers.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "builder/image_manifest.h"
#include "builder/rootfs.h"
#include "core/sha256.h"
#include "core/unique_fd.h"

namespace agents {

namespace fs = std::filesystem;

ImageLayers::ImageLayers(builder::ContentStore store, fs::path dir)
    : store_(std::move(store)), dir_(std::move(dir)) {
  // Half-unpacked layers of a process that died mid-unpack.
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(dir_, error)) {
    if (entry.path().filename().string().rfind(".unpacking-", 0) == 0)
      fs::remove_all(entry.path(), error);
  }
}

core::Result<PreparedImage> ImageLayers::Prepare(const std::string& manifest_digest) {
  auto image = builder::ReadStoredImage(store_, manifest_digest);
  if (!image) return image.error();
  PreparedImage prepared{manifest_digest, {}, image->settings};
  for (const builder::Descriptor& layer : image->layers) {
    auto unpacked = UnpackOnce(layer.digest);
    if (!unpacked) return unpacked.error();
    prepared.layers.push_back(*unpacked);
  }
  return prepared;
}

core::Result<fs::path> ImageLayers::UnpackOnce(const std::string& layer_digest) {
  std::lock_guard lock(mutex_);
  fs::path target = dir_ / layer_digest.substr(layer_digest.find(':') + 1);
  std::error_code error;
  if (fs::is_directory(target, error)) return target;

  fs::path blob = store_.BlobPath(layer_digest);
  auto actual = core::Sha256FileDigest(blob);
  if (!actual) return actual.error();
  if (*actual != layer_digest) {
    return core::Error{
        core::ErrorCode::kIo,
        "layer " + layer_digest + " in " + store_.root().string() + " does not match its digest",
        {}};
  }
  fs::path temp =
      dir_ / (".unpacking-" + target.filename().string() + "-" + std::to_string(getpid()));
  fs::remove_all(temp, error);
  fs::create_directories(temp, error);
  if (error) {
    return core::Error{
        core::ErrorCode::kIo, "cannot create " + temp.string() + ": " + error.message(), {}};
  }
  auto unpacked = builder::UnpackLayer(blob, temp, builder::WhiteoutMode::kOverlay);
  if (!unpacked) {
    fs::remove_all(temp, error);
    return core::Error{
        unpacked.error().code, "layer " + layer_digest + ": " + unpacked.error().message, {}};
  }
  // On disk before it is in place: after a power loss a layer folder is whole or absent.
  {
    core::UniqueFd folder(open(temp.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!folder.valid() || syncfs(folder.get()) != 0) {
      fs::remove_all(temp, error);
      return core::Error{core::ErrorCode::kIo,
                         "cannot sync layer " + layer_digest + ": " + std::strerror(errno),
                         {}};
    }
  }
  fs::rename(temp, target, error);
  if (error) {
    fs::remove_all(temp, error);
    return core::Error{
        core::ErrorCode::kIo, "cannot move layer " + layer_digest + " into place", {}};
  }
  return target;
}

}  // namespace agents
