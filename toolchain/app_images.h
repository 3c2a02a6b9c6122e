#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/result.h"
#include "spec/app.h"

namespace toolchain {

struct ImageBuildOptions {
  std::filesystem::path store;      // the content store (or OCI layout) built into
  std::vector<std::string> images;  // only these; empty: every image of the app
  bool no_cache = false;
  bool quiet = false;  // no progress display
};

/// Builds the app's images (cached layers are reused) with the progress
/// display on stderr: what `gantry build` does, and what `gantry plan` does
/// to know each image's digest. Image name -> manifest digest.
core::Result<std::map<std::string, std::string>> BuildAppImages(const spec::App& app,
                                                                const ImageBuildOptions& options);

/// Where and how `PushAppImages` pushes.
struct ImagePushOptions {
  std::filesystem::path store;  // the content store the images are in
  std::string to;               // REGISTRY/NAMESPACE
  std::string tag = "latest";
  bool insecure = false;  // plain HTTP (always so for loopback and GANTRY_INSECURE_REGISTRIES)
  bool quiet = false;     // no progress display, no per-image summary on stderr
};

/// Pushes each image of `digests` (image name -> manifest digest in the
/// store) as REGISTRY/NAMESPACE/IMAGE:TAG: what `gantry push` does, and
/// `gantry plan --push-to`. Image name -> the pushed reference pinned to its
/// digest, "REGISTRY/NAMESPACE/IMAGE@sha256:…".
core::Result<std::map<std::string, std::string>> PushAppImages(
    const std::map<std::string, std::string>& digests, const ImagePushOptions& options);

}  // namespace toolchain
