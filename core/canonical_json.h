#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace core {

/// The one byte sequence that stands for a JSON value, so that equal values
/// hash equally: object keys sorted by their UTF-8 bytes, no insignificant
/// white space, numbers that are whole written as integers (2.0 is 2), other
/// numbers in their shortest round-trip form, strings in UTF-8 with only the
/// escapes JSON requires (invalid UTF-8 is replaced by U+FFFD).
std::string CanonicalJson(const nlohmann::json& value);

/// sha256 of CanonicalJson(value), as "sha256:HEX".
std::string CanonicalDigest(const nlohmann::json& value);

}  // namespace core
