#pragma once

#include <string>
#include <string_view>

namespace core {

/// The digest of `data` as content-addressed names are written everywhere in
/// gantry and OCI: "sha256:" followed by 64 lowercase hex digits.
std::string Sha256Digest(std::string_view data);

}  // namespace core
