#pragma once

#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "builder/content_store.h"
#include "builder/image_config.h"
#include "core/result.h"

namespace agents {

/// An image ready to be a container's root: its layers unpacked, bottom
/// first, and its runtime settings (env, entrypoint, cmd, workdir, user).
struct PreparedImage {
  std::string manifest_digest;
  std::vector<std::filesystem::path> layers;
  builder::ImageSettings settings;
};

/// The agent's cache of unpacked layers, shared by every image and container
/// of the host: each layer blob of the content store is checked against its
/// digest and unpacked once, alone, into DIR/HEX (in overlay form: whiteouts
/// kept as overlayfs markers, see builder/rootfs.h), through a temporary
/// folder renamed into place, so that a half-unpacked layer is never used.
/// Unpacking is safe against hostile layers (builder::UnpackLayer).
class ImageLayers {
 public:
  /// Removes what an unpack cut short by a crash left in `dir`.
  ImageLayers(builder::ContentStore store, std::filesystem::path dir);

  /// Unpacks what the image `manifest_digest` needs and says where it is.
  core::Result<PreparedImage> Prepare(const std::string& manifest_digest);

  const builder::ContentStore& store() const { return store_; }

 private:
  core::Result<std::filesystem::path> UnpackOnce(const std::string& layer_digest);

  builder::ContentStore store_;
  std::filesystem::path dir_;
  std::mutex mutex_;  // one unpack at a time: layers are shared
};

}  // namespace agents
