#include "builder/layer_cache.h"

#include "core/atomic_file.h"

namespace builder {

std::filesystem::path LayerCache::Folder() const {
  return store_.PrivateDir() / "cache" / "layers";
}

std::filesystem::path LayerCache::EntryPath(const std::string& key) const {
  std::string hex = key.rfind("sha256:", 0) == 0 ? key.substr(7) : key;
  return Folder() / (hex + ".json");
}

std::optional<Layer> LayerCache::Lookup(const std::string& key) const {
  auto text = core::ReadFile(EntryPath(key));
  if (!text) return std::nullopt;
  nlohmann::json entry = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!entry.is_object() || !entry.contains("diff_id") || !entry["diff_id"].is_string())
    return std::nullopt;
  auto blob = Descriptor::FromJson(entry.value("blob", nlohmann::json()));
  if (!blob || !store_.HasBlob(blob->digest)) return std::nullopt;
  return Layer{entry["diff_id"].get<std::string>(), *blob};
}

core::Status LayerCache::Record(const std::string& key, const Layer& layer) const {
  std::error_code error;
  std::filesystem::create_directories(EntryPath(key).parent_path(), error);
  if (error)
    return core::Error{
        core::ErrorCode::kIo, "cannot create the layer cache: " + error.message(), {}};
  nlohmann::json entry = {{"diff_id", layer.diff_id}, {"blob", layer.blob.ToJson()}};
  return core::WriteFileAtomically(EntryPath(key), entry.dump());
}

}  // namespace builder
