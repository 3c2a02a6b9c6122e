#pragma once

#include <cstddef>
#include <string>

#include "core/result.h"

namespace core {

/// `bytes` bytes from OpenSSL's CSPRNG (RAND_bytes) as lower-case hex: the
/// agent's API token, host id and call ids, and unguessable temporary names.
Result<std::string> RandomHex(std::size_t bytes);

}  // namespace core
