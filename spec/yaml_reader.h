#pragma once

#include <string>

#include "core/result.h"
#include "spec/node.h"

namespace spec {

/// Reads YAML text into a Node tree. Plain scalars are typed by the YAML 1.2
/// core schema (null, booleans, integers, floats); quoted scalars are strings.
/// Duplicate keys, non-scalar keys and alias bombs are errors. `file` names
/// the source in locations.
core::Result<Node> ReadYaml(const std::string& text, const std::string& file);

}  // namespace spec
