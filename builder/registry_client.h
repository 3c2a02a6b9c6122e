#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "builder/content_store.h"
#include "builder/descriptor.h"
#include "builder/image_index.h"
#include "builder/registry_auth.h"
#include "core/http_client.h"
#include "core/image_reference.h"
#include "core/result.h"

namespace builder {

/// How far one blob's transfer is, for a progress display.
struct TransferProgress {
  std::string digest;
  std::uint64_t done = 0;
  std::uint64_t size = 0;
};

struct RegistryOptions {
  /// Plain HTTP allowed (`--insecure`; see IsInsecureRegistry): HTTPS is
  /// tried first, and plain HTTP spoken when the registry does not speak TLS.
  /// It never turns certificate checks off: a TLS registry needs its CA
  /// trusted (RegistryCaFiles), not this.
  bool insecure = false;
  /// The credentials to use; nullopt: FindRegistryCredentials on the first
  /// 401, anonymous when it finds none.
  std::optional<RegistryCredentials> credentials;
  /// Tries of one request on a connection error or a 5xx/429 answer, with
  /// backoff doubling from `first_backoff`.
  int attempts = 5;
  std::chrono::milliseconds first_backoff{250};
  /// Blobs up to this size go in one PUT; larger ones in PATCH chunks of
  /// `chunk_bytes` (or the registry's OCI-Chunk-Min-Length, if larger).
  std::uint64_t monolithic_limit = std::uint64_t{64} << 20;
  std::uint64_t chunk_bytes = std::uint64_t{64} << 20;
  /// Blobs moved at once, each on a connection of its own (the layers of a
  /// push; the blobs of a pull). The first goes alone: it settles the scheme
  /// and the auth that the others start from.
  int parallel_blobs = 4;
};

/// What a push did.
struct PushResult {
  std::string reference;  // "REGISTRY/NAME@sha256:..."
  std::string manifest_digest;
  std::size_t blobs_uploaded = 0;
  std::size_t blobs_mounted = 0;  // cross-repository mounts
  std::size_t blobs_present = 0;  // the registry had them (HEAD)
  std::uint64_t bytes_uploaded = 0;
};

/// What a pull did.
struct PullResult {
  Descriptor manifest;  // as tagged in the store
  std::size_t blobs_downloaded = 0;
  std::size_t blobs_present = 0;  // the store had them
  std::uint64_t bytes_downloaded = 0;
};

/// A client of one registry speaking the OCI distribution API
/// (distribution-spec v1.1) over libcurl: push an image from a ContentStore,
/// pull one into it. One client per registry: it keeps the connection, the
/// tokens (per scope, until `expires_in`) and which repository it has seen
/// each blob in, so that pushing several images mounts shared blobs from
/// the first one instead of uploading them again.
///
/// Auth: anonymous until a 401; then `Basic` with the credentials, or the
/// Bearer token flow against the challenge's realm (with the credentials as
/// basic auth to the token service, when there are any). A rejected
/// credential is one clear error naming the user and where it came from.
class RegistryClient {
 public:
  /// Called as each blob's bytes move: from several threads, one call at a
  /// time, when blobs move at once (RegistryOptions::parallel_blobs).
  using ProgressCallback = std::function<void(const TransferProgress&)>;

  /// `domain` as in a reference ("127.0.0.1:5000", "ghcr.io"); docker.io is
  /// spoken to at registry-1.docker.io.
  RegistryClient(std::string domain, RegistryOptions options);
  ~RegistryClient();
  RegistryClient(RegistryClient&&) noexcept;
  RegistryClient& operator=(RegistryClient&&) noexcept;

  /// Pushes the image `manifest_digest` of `store` as `repository:tag`:
  /// the layers (several at once), then the config (each skipped when the
  /// registry has it, mounted when another repository of this push has it,
  /// else uploaded), then the manifest with its exact bytes and media type.
  core::Result<PushResult> Push(const ContentStore& store, const std::string& manifest_digest,
                                const std::string& repository, const std::string& tag,
                                ProgressCallback on_progress = {});

  /// Pulls `reference` (tag or digest; an index picks `platform`) into
  /// `store` and tags it `name`. Every blob is streamed to a temporary file
  /// while hashed and kept only when its digest and size match; blobs the
  /// store has are not fetched. The image is tagged only once all is there.
  core::Result<PullResult> Pull(const core::ImageReference& reference, const Platform& platform,
                                ContentStore& store, const std::string& name,
                                ProgressCallback on_progress = {});

 private:
  struct State;
  std::unique_ptr<State> state_;
};

/// Whether a registry is spoken to over plain HTTP without `--insecure`:
/// loopback ones (localhost, 127.0.0.0/8, [::1]) and those listed in
/// GANTRY_INSECURE_REGISTRIES (comma-separated "host[:port]").
bool IsInsecureRegistry(const std::string& domain);

/// The CAs a registry's TLS certificate is checked against on top of the
/// system's, in Docker's per-registry layout: every `*.crt` in
/// `$GANTRY_HOME/certs.d/DOMAIN/` and `/etc/docker/certs.d/DOMAIN/` (DOMAIN
/// as in references, "registry.lan:5000"), sorted.
std::vector<std::string> RegistryCaFiles(const std::string& domain);

}  // namespace builder
