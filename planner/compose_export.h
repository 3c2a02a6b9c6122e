#pragma once

#include <filesystem>

#include "core/result.h"
#include "planner/export_manifests.h"
#include "spec/app.h"

namespace planner {

struct ComposeExportOptions {
  ExportInputs inputs;
  /// The spec's folder as the compose file names it: relative to the folder
  /// the file is written to, or absolute. `from_file` secrets are read from
  /// there (`env_file`).
  std::filesystem::path spec_folder;
};

/// One `compose.yaml` document that runs `app` on a single host with
/// `docker compose` (planner/README.md has the mapping table): a service
/// per function (job functions under the profile `jobs`, run with `docker
/// compose run --rm NAME ARGS`), GPUs as device reservations, secrets as
/// environment (values only when given, otherwise `${VAR:?}` from the
/// host's environment or `env_file`), volumes as named volumes. No I/O.
core::Result<ExportedManifests> ExportCompose(const spec::App& app,
                                              const ComposeExportOptions& options);

}  // namespace planner
