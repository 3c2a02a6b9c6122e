#include "tests/tls_certificate.h"

#include "core/subprocess.h"

namespace tests {

core::Status MakeLoopbackCertificate(const std::filesystem::path& cert,
                                     const std::filesystem::path& key) {
  auto made =
      core::RunSubprocess({{"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                            "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                            "-keyout", key.string(), "-out", cert.string()},
                           {"PATH=/usr/bin:/bin"},
                           std::nullopt,
                           core::Output::Capture(),
                           core::Output::Capture()});
  if (!made) return made.error();
  if (made->exit.code != 0) {
    return core::Error{core::ErrorCode::kIo, "openssl req failed: " + made->stderr_text, {}};
  }
  return core::Ok{};
}

}  // namespace tests
