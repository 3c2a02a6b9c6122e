#pragma once

// A busybox image built by the real `gantry build`: what the end-to-end
// tests and the benchmark of the agent run their containers from.

#include <filesystem>
#include <string>

#include "core/result.h"

namespace tests {

/// Whether this machine can run the agent's containers: root, runc at
/// /usr/sbin/runc, and /bin/busybox to build the image from.
bool CanRunContainers();

/// Writes an app under `work_dir`/context whose image `box` is /bin/busybox
/// with its applets installed in /bin (from scratch), its layers of
/// `compression` ("gzip" or "zstd"), builds it with `gantry_binary build
/// ... --output STORE -q` (this process's environment passed on) into the
/// content store `store`, and returns the image's manifest digest: an error
/// with gantry's stderr when the build fails.
core::Result<std::string> BuildBusyboxImage(const std::filesystem::path& gantry_binary,
                                            const std::filesystem::path& work_dir,
                                            const std::filesystem::path& store,
                                            const std::string& compression = "gzip");

}  // namespace tests
