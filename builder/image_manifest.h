#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "builder/content_store.h"
#include "builder/descriptor.h"
#include "builder/image_config.h"
#include "core/result.h"

namespace builder {

/// An image as a store holds it: what its manifest and config say, read and
/// checked once for everyone who starts from a manifest digest (a build's
/// `from: oci:` base, the agent preparing a container, a push).
struct StoredImage {
  std::string manifest_digest;
  Descriptor config;
  nlohmann::json config_json;         // the whole image config
  ImageSettings settings;             // its `config` object
  std::vector<Descriptor> layers;     // bottom first
  std::vector<std::string> diff_ids;  // one per layer
};

/// Reads the manifest `manifest_digest` and its config from `store`, both
/// checked against their digests. A manifest without config or layers, or a
/// config without one diff_id per layer, is an error (kParse); the layer
/// blobs themselves are not read.
core::Result<StoredImage> ReadStoredImage(const ContentStore& store,
                                          const std::string& manifest_digest);

}  // namespace builder
