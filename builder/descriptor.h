#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "core/result.h"

namespace builder {

inline constexpr char kOciManifestMediaType[] = "application/vnd.oci.image.manifest.v1+json";
inline constexpr char kOciIndexMediaType[] = "application/vnd.oci.image.index.v1+json";
inline constexpr char kOciConfigMediaType[] = "application/vnd.oci.image.config.v1+json";
inline constexpr char kOciLayerGzipMediaType[] = "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr char kOciLayerZstdMediaType[] = "application/vnd.oci.image.layer.v1.tar+zstd";
inline constexpr char kOciLayerTarMediaType[] = "application/vnd.oci.image.layer.v1.tar";
/// Docker's image manifest schema 2 and manifest list, which registries still
/// serve for most images: pulled and stored as they are (their digests are
/// over their exact bytes), read like their OCI counterparts.
inline constexpr char kDockerManifestMediaType[] =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr char kDockerManifestListMediaType[] =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr char kDockerLayerGzipMediaType[] =
    "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// The annotation that names an image in an OCI layout's index.json.
inline constexpr char kRefNameAnnotation[] = "org.opencontainers.image.ref.name";

/// An OCI content descriptor: what a manifest or index says about a blob it
/// points to (media type, digest, size and optional annotations).
struct Descriptor {
  std::string media_type;
  std::string digest;  // "sha256:..."
  std::uint64_t size = 0;
  std::map<std::string, std::string> annotations;

  nlohmann::json ToJson() const;
  static core::Result<Descriptor> FromJson(const nlohmann::json& json);
};

}  // namespace builder
