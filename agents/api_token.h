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

/// The dashboard's session (/ui, agents/README.md "Dashboard"): a browser
/// that gave the token at /ui/login gets the cookie `gantry_session`, whose
/// value is a keyed hash of the token (HMAC-SHA256, hex), never the token
/// itself; the cookie then stands for the token on GET requests only.
inline constexpr std::string_view kSessionCookie = "gantry_session";
std::string SessionValue(std::string_view token);
/// Whether a Cookie header value holds the session cookie of this token,
/// compared in constant time.
bool SessionCookieMatches(std::string_view cookie_header, std::string_view token);

/// Whether an Authorization header value is "Bearer KEY" for a key whose
/// hex sha256 is `key_sha256` (a web function's `web.auth: key`), compared
/// in constant time.
bool AuthorizationKeyMatches(std::string_view authorization, std::string_view key_sha256);

}  // namespace agents
