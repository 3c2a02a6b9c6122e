#pragma once

#include <filesystem>
#include <vector>

#include "core/result.h"
#include "spec/app.h"
#include "spec/node.h"

namespace spec {

/// Every problem found in a spec, in file order.
using Diagnostics = std::vector<core::Error>;

/// Checks a Node tree against every rule of the app spec (README.md) and
/// builds the typed App with defaults filled in. It reports all problems,
/// each naming its field and location, not just the first. `source` is the
/// spec file: relative paths in it (copy sources, oci: layouts) are checked
/// against its folder.
core::Result<App, Diagnostics> Decode(const Node& root, const std::filesystem::path& source);

}  // namespace spec
