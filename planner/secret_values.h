#pragma once

#include <map>
#include <string>
#include <string_view>

#include "core/result.h"
#include "spec/app.h"

namespace planner {

/// A secret's KEY -> VALUE pairs.
using SecretPairs = std::map<std::string, std::string>;

/// Reads every secret of `app` from the deployer's machine, at plan and apply
/// time: `from_env` variables from the environment (each must be set), then
/// `from_file`, a dotenv file relative to the spec's folder (`KEY=VALUE` per
/// line, `#` comments, blank lines, an optional `export `, values optionally
/// in single or double quotes), whose keys win. Errors (kNotFound for an
/// unset variable or a missing file, kInvalidArgument for a malformed line
/// with its line number) name the secret, the variable or the file and
/// line, never a value.
core::Result<std::map<std::string, SecretPairs>> ReadSecrets(const spec::App& app);

/// How plans and state record a secret value without holding it:
/// "hmac-sha256:HEX" of HMAC-SHA256 keyed with `key` (an agent's token) over
/// SECRET NUL KEY NUL VALUE. Equal values give equal hashes for the same
/// agent, so a changed value is seen, never shown; without the key the hash
/// cannot be checked against guesses.
std::string SecretValueHash(std::string_view key, std::string_view secret, std::string_view name,
                            std::string_view value);

}  // namespace planner
