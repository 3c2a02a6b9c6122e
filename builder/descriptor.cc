#include "builder/descriptor.h"

#include <regex>

namespace builder {

nlohmann::json Descriptor::ToJson() const {
  nlohmann::json json = {{"mediaType", media_type}, {"digest", digest}, {"size", size}};
  if (!annotations.empty()) json["annotations"] = annotations;
  return json;
}

core::Result<Descriptor> Descriptor::FromJson(const nlohmann::json& json) {
  static const std::regex kDigest("sha256:[a-f0-9]{64}");
  Descriptor descriptor;
  if (!json.is_object() || !json.contains("mediaType") || !json["mediaType"].is_string() ||
      !json.contains("digest") || !json["digest"].is_string() || !json.contains("size") ||
      !json["size"].is_number_unsigned()) {
    return core::Error{core::ErrorCode::kParse,
                       "invalid OCI descriptor (needs mediaType, digest and size): " + json.dump(),
                       {}};
  }
  descriptor.media_type = json["mediaType"].get<std::string>();
  descriptor.digest = json["digest"].get<std::string>();
  descriptor.size = json["size"].get<std::uint64_t>();
  if (descriptor.digest.size() != 71 || !std::regex_match(descriptor.digest, kDigest)) {
    return core::Error{
        core::ErrorCode::kParse, "unsupported digest " + descriptor.digest + " (sha256 only)", {}};
  }
  if (json.contains("annotations") && json["annotations"].is_object()) {
    for (const auto& [key, value] : json["annotations"].items()) {
      if (value.is_string()) descriptor.annotations[key] = value.get<std::string>();
    }
  }
  return descriptor;
}

}  // namespace builder
