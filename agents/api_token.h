#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"

namespace agents {

/// The bearer token every API route but /healthz requires. With `token_file`
/// it is that file's content (surrounding whitespace dropped; an empty file
/// is an error). Without it, it is DATA_DIR/token, generated on first start
/// from 32 random bytes (hex) and written with mode 0600.
core::Result<std::string> LoadOrCreateToken(const std::filesystem::path& data_dir,
                                            const std::optional<std::filesystem::path>& token_file);

/// Whether an Authorization header value is "Bearer TOKEN" for this token,
/// compared in constant time (the comparison does not stop at the first
/// differing byte).
bool AuthorizationMatches(std::string_view authorization, std::string_view token);

/// The credentials of an Authorization header value "Bearer CREDENTIALS",
/// or "" when it is not one.
std::string_view BearerCredentials(std::string_view authorization);

/// Whether `guess` is `secret`, in constant time: the time taken tells
/// nothing of where a guess first differs. An empty secret matches nothing.
bool SecretMatches(std::string_view guess, std::string_view secret);

/// Whether an Authorization header value is "Bearer KEY" for a key whose
/// hex sha256 is `key_sha256` (a web function's `web.auth: key`), compared
/// in constant time.
bool AuthorizationKeyMatches(std::string_view authorization, std::string_view key_sha256);

}  // namespace agents
