#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "builder/descriptor.h"
#include "core/result.h"

namespace builder {

/// A platform as image indexes name it: `os/architecture[/variant]`
/// ("linux/amd64", "linux/arm64/v8"). A pull of a multi-platform image
/// takes the manifest of one platform: this machine's unless told otherwise.
struct Platform {
  std::string os;
  std::string architecture;
  std::string variant;  // "" matches any variant

  std::string ToString() const;
};

/// "linux/amd64" or "linux/arm64/v8"; an error names the expected form.
core::Result<Platform> ParsePlatform(std::string_view text);

/// linux and the architecture gantry builds for (platform.h).
Platform HostPlatform();

/// Whether `media_type` is an image index or a Docker manifest list.
bool IsImageIndex(const std::string& media_type);
/// Whether `media_type` is an OCI image manifest or a Docker schema-2 manifest.
bool IsImageManifest(const std::string& media_type);

/// The manifest for `platform` in an image index or manifest list: the
/// first entry whose os and architecture match, and variant when one is
/// asked for (arm64 without a variant counts as v8). An error lists the
/// platforms the index has.
core::Result<Descriptor> ChooseManifest(const nlohmann::json& index, const Platform& platform);

}  // namespace builder
