#include "builder/image_index.h"

#include "builder/platform.h"

namespace builder {

std::string Platform::ToString() const {
  return os + "/" + architecture + (variant.empty() ? "" : "/" + variant);
}

core::Result<Platform> ParsePlatform(std::string_view text) {
  Platform platform;
  std::string rest(text);
  std::size_t slash = rest.find('/');
  if (slash != std::string::npos) {
    platform.os = rest.substr(0, slash);
    rest = rest.substr(slash + 1);
    slash = rest.find('/');
    platform.architecture = rest.substr(0, slash);
    if (slash != std::string::npos) platform.variant = rest.substr(slash + 1);
  }
  if (platform.os.empty() || platform.architecture.empty() ||
      platform.variant.find('/') != std::string::npos ||
      (slash != std::string::npos && platform.variant.empty())) {
    return core::Error{core::ErrorCode::kInvalidArgument,
                       "invalid platform \"" + std::string(text) +
                           "\": expected OS/ARCHITECTURE[/VARIANT], such as linux/amd64",
                       {}};
  }
  return platform;
}

Platform HostPlatform() {
  return Platform{"linux", kArchitecture, ""};
}

bool IsImageIndex(const std::string& media_type) {
  return media_type == kOciIndexMediaType || media_type == kDockerManifestListMediaType;
}

bool IsImageManifest(const std::string& media_type) {
  return media_type == kOciManifestMediaType || media_type == kDockerManifestMediaType;
}

core::Result<Descriptor> ChooseManifest(const nlohmann::json& index, const Platform& platform) {
  if (!index.is_object() || !index.contains("manifests") || !index["manifests"].is_array()) {
    return core::Error{core::ErrorCode::kParse, "the image index has no manifests list", {}};
  }
  std::string offered;
  for (const nlohmann::json& entry : index["manifests"]) {
    if (!entry.is_object() || !entry.contains("platform") || !entry["platform"].is_object())
      continue;
    const nlohmann::json& candidate = entry["platform"];
    Platform listed{candidate.value("os", ""), candidate.value("architecture", ""),
                    candidate.value("variant", "")};
    if (listed.architecture == "arm64" && listed.variant.empty()) listed.variant = "v8";
    offered += (offered.empty() ? "" : ", ") + listed.ToString();
    if (listed.os != platform.os || listed.architecture != platform.architecture) continue;
    if (!platform.variant.empty() && listed.variant != platform.variant) continue;
    auto descriptor = Descriptor::FromJson(entry);
    if (!descriptor) return descriptor.error();
    if (!IsImageManifest(descriptor->media_type)) continue;
    return descriptor;
  }
  return core::Error{core::ErrorCode::kNotFound,
                     "the image has no manifest for " + platform.ToString() +
                         (offered.empty() ? "" : " (it has " + offered + ")"),
                     {}};
}

}  // namespace builder
