#pragma once

// Shared by the exporters' tests: the specs every export is checked on, and
// the golden files that hold what each one exports to.

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "planner/export_manifests.h"
#include "spec/app.h"

namespace planner::testing {

/// The specs of GANTRY_EXPORT_SPECS (planner/CMakeLists.txt, comma-separated: every
/// example, and tests/export/everything), relative to the source tree.
std::vector<std::string> ExportSpecs();

/// Loads a spec of the source tree; fails the test when it does not load.
spec::App LoadSpec(const std::string& relative_path);

/// Made-up pushed references, one per image:
/// registry.example.com/team/IMAGE@sha256:(sha256 of the image's name).
std::map<std::string, std::string> FakeImageReferences(const spec::App& app);

/// The golden file's text: each warning as a `# warning:` comment line,
/// then the documents as one YAML stream.
std::string GoldenText(const ExportedManifests& manifests);

/// Checks `text` against tests/export/golden/NAME; with
/// GANTRY_UPDATE_GOLDEN=1 in the environment, writes it there instead.
void CheckGolden(const std::string& name, const std::string& text);

/// Whether a warning names the spec field at dotted `path`, or a field
/// that holds it.
bool Warned(const std::vector<std::string>& warnings, const std::string& path);

/// The fields of a function's canonical JSON that the spec sets to
/// something other than their default, as dotted paths below the function
/// ("image", "web.auth", "retries.max", "schedule.cron"): the members of
/// `web`, `retries` and `schedule`, every other member whole.
std::vector<std::string> FunctionFields(const spec::App& app, const std::string& function);

/// Every field of a function's canonical JSON, set or not, as above.
std::vector<std::string> AllFunctionFields(const spec::App& app, const std::string& function);

}  // namespace planner::testing
