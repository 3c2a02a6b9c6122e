#include "builder/image_manifest.h"

namespace builder {

using nlohmann::json;

core::Result<StoredImage> ReadStoredImage(const ContentStore& store,
                                          const std::string& manifest_digest) {
  auto not_an_image = [&](const std::string& why) {
    return core::Error{core::ErrorCode::kParse,
                       "the image " + manifest_digest + " in " + store.root().string() + " " + why,
                       {}};
  };
  auto manifest_text = store.ReadBlob(manifest_digest);
  if (!manifest_text) return manifest_text.error();
  json manifest = json::parse(*manifest_text, nullptr, /*allow_exceptions=*/false);
  if (!manifest.is_object() || !manifest.contains("config") || !manifest.contains("layers") ||
      !manifest["layers"].is_array()) {
    return not_an_image("is not an OCI image manifest");
  }
  StoredImage image;
  image.manifest_digest = manifest_digest;
  auto config_descriptor = Descriptor::FromJson(manifest["config"]);
  if (!config_descriptor) return config_descriptor.error();
  image.config = *config_descriptor;
  auto config_text = store.ReadBlob(image.config.digest);
  if (!config_text) return config_text.error();
  image.config_json = json::parse(*config_text, nullptr, /*allow_exceptions=*/false);
  json diff_ids =
      image.config_json.is_object()
          ? image.config_json.value("rootfs", json::object()).value("diff_ids", json::array())
          : json();
  if (!diff_ids.is_array() || diff_ids.size() != manifest["layers"].size()) {
    return not_an_image("has a config that does not list one diff_id per layer");
  }
  image.settings = ImageSettings::FromJson(image.config_json.value("config", json::object()));
  for (std::size_t i = 0; i < diff_ids.size(); ++i) {
    auto layer = Descriptor::FromJson(manifest["layers"][i]);
    if (!layer) return layer.error();
    if (!diff_ids[i].is_string()) return not_an_image("has a diff_id that is not a string");
    image.layers.push_back(*layer);
    image.diff_ids.push_back(diff_ids[i].get<std::string>());
  }
  return image;
}

}  // namespace builder
