#pragma once

#include <string>
#include <string_view>

#include "core/result.h"

namespace core {

/// A container image reference in the grammar of the distribution project
/// (github.com/distribution/reference), normalised as docker normalises it:
/// "busybox" is docker.io/library/busybox:latest. Used by the spec (`from:`)
/// and by the registry client, so both read references the same way.
struct ImageReference {
  std::string domain;      // "docker.io", "127.0.0.1:5000"
  std::string repository;  // "library/busybox", "team/app"
  std::string tag;         // "latest" unless a digest alone was given
  std::string digest;      // "sha256:..." or ""

  /// "domain/repository[:tag][@digest]".
  std::string ToString() const;
};

Result<ImageReference> ParseImageReference(std::string_view text);

}  // namespace core
