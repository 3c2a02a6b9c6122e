#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace core {

/// Standard, padded base64 (RFC 4648 section 4): HTTP basic credentials and
/// the `auth` field of ~/.docker/config.json.
std::string Base64Encode(std::string_view bytes);

/// The bytes of standard, padded base64; nullopt for anything else
/// (whitespace, a misplaced '=', a length that is not a multiple of 4).
std::optional<std::string> Base64Decode(std::string_view text);

}  // namespace core
