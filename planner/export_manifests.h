#pragma once

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "planner/secret_values.h"
#include "spec/app.h"

namespace planner {

/// What both exporters (kubernetes_export.h, compose_export.h) are given
/// besides the app: where each image was pushed and, only with
/// `--include-secret-values`, the secrets' values.
struct ExportInputs {
  /// Image name -> "REGISTRY/NAMESPACE/IMAGE@sha256:…", every image the
  /// app's functions use (what `PushAppImages` returns).
  std::map<std::string, std::string> image_references;
  /// Secret name -> its KEY -> VALUE pairs (`ReadSecrets`). Absent: the
  /// output names the secrets and their keys where it can, never a value.
  std::optional<std::map<std::string, SecretPairs>> secret_values;
};

/// What an exporter makes of an app, in order: the documents to write
/// (manifests, or one compose file), and one warning per part of the spec
/// the target cannot express, each starting with the spec's dotted path
/// (`functions.api.web.auth: ...`), so nothing is dropped silently.
struct ExportedManifests {
  std::vector<nlohmann::ordered_json> documents;
  std::vector<std::string> warnings;
};

/// One document as YAML that kubectl and docker compose read back as the
/// same JSON: every string YAML would read as something else (`"0"`,
/// `"true"`, `"null"`, `""`) is quoted.
std::string ManifestYaml(const nlohmann::ordered_json& document);

/// The documents as one YAML stream, separated by `---` lines.
std::string ManifestStream(const std::vector<nlohmann::ordered_json>& documents);

/// Whether the YAML `text` is a manifest `gantry export kubernetes` wrote
/// for `app` (labelled `app.kubernetes.io/managed-by: gantry` and
/// `app.kubernetes.io/name: APP`): what a new export into the same folder
/// may remove when the app no longer has that object. Text that is not
/// YAML, or not one such manifest, is not.
bool IsExportedManifestOf(const std::string& text, const std::string& app);

/// The warnings no export target can avoid, for the spec fields that only
/// gantry's own router, scheduler and meter implement (budget, web auth and
/// queueing, buffer containers, retry backoff, schedule catch-up), one per
/// field set to something other than its default.
std::vector<std::string> UnexportableFieldWarnings(const spec::App& app);

/// A duration as Go's time.ParseDuration reads it ("30s", "1500ms"), which
/// Knative annotations and Compose use.
std::string GoDuration(std::chrono::milliseconds duration);

/// Whole seconds, rounded up: Kubernetes' *Seconds fields.
long long WholeSeconds(std::chrono::milliseconds duration);

}  // namespace planner
