#pragma once

// A self-signed certificate for 127.0.0.1: what the tests of the agent's
// TLS listener and of the clients that check it use.

#include <filesystem>

#include "core/result.h"

namespace tests {

/// Writes a fresh RSA key and a self-signed certificate (CN and subject
/// alternative name 127.0.0.1, valid one day) as PEM files, with openssl;
/// an error with openssl's stderr when it fails.
core::Status MakeLoopbackCertificate(const std::filesystem::path& cert,
                                     const std::filesystem::path& key);

}  // namespace tests
