#pragma once

// The CNCF distribution registry (Debian's docker-registry) on loopback,
// for the registry client's end-to-end tests and benchmark.

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "core/result.h"
#include "core/subprocess.h"

namespace tests {

/// Whether /usr/bin/docker-registry is installed (package docker-registry).
bool HasDockerRegistry();

/// A `docker-registry serve` process on 127.0.0.1 and a free port, with
/// filesystem storage and its log under a folder of the caller's; stopped
/// (SIGTERM, then SIGKILL) when the object goes. With `user`, it wants HTTP
/// basic auth against a bcrypt htpasswd file made with `htpasswd -Bbn`.
/// With `tls`, it speaks HTTPS only, with that certificate and key.
class DockerRegistry {
 public:
  struct Login {
    std::string user;
    std::string password;
  };
  struct Tls {
    std::filesystem::path certificate;  // PEM, for 127.0.0.1 (tests/tls_certificate.h)
    std::filesystem::path key;
  };
  static core::Result<std::unique_ptr<DockerRegistry>> Start(const std::filesystem::path& dir,
                                                             std::optional<Login> login = {},
                                                             std::optional<Tls> tls = {});
  ~DockerRegistry();
  DockerRegistry(const DockerRegistry&) = delete;
  DockerRegistry& operator=(const DockerRegistry&) = delete;

  /// "127.0.0.1:PORT": the domain of references to it.
  const std::string& domain() const { return domain_; }
  /// What it logged so far (access log included).
  std::string Log() const;
  /// How many blob uploads it completed: PUTs to /v2/.../blobs/uploads/
  /// answered 201, read from its access log.
  int CompletedUploads() const;

 private:
  DockerRegistry(core::Subprocess process, std::string domain, std::filesystem::path log)
      : process_(std::move(process)), domain_(std::move(domain)), log_(std::move(log)) {}

  core::Subprocess process_;
  std::string domain_;
  std::filesystem::path log_;
};

}  // namespace tests
