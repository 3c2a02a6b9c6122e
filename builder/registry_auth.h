#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace builder {

/// One challenge of a `WWW-Authenticate` header (RFC 9110 section 11.6.1):
/// how a registry wants to be spoken to after a 401. The distribution token
/// flow is `Bearer realm="https://auth/token",service="registry",scope="..."`;
/// htpasswd registries say `Basic realm="..."`.
struct AuthChallenge {
  std::string scheme;                             // lower case: "bearer", "basic"
  std::map<std::string, std::string> parameters;  // names lower case, values unquoted
};

/// Every challenge in a WWW-Authenticate value, in order. Quoted values may
/// hold commas and escaped quotes; anything unparsable ends the list.
std::vector<AuthChallenge> ParseAuthChallenges(std::string_view header);

/// A user name and password for one registry. The password is never written
/// to a log or an error; `source` says where they came from, for errors.
/// A credential helper's `<token>` user gives an identity token instead: a
/// refresh token for the registry's token service (OAuth2), no password.
struct RegistryCredentials {
  std::string username;
  std::string password;  // or the identity token
  std::string source;    // "GANTRY_REGISTRY_USER", "/root/.docker/config.json"
  bool identity_token = false;
};

/// The credentials ~/.docker/config.json (`config_text`, read from
/// `source`) holds for `registry` (a reference's domain, "host[:port]"):
/// its `auths` entry, keyed by the host with or without a scheme and path
/// (`https://index.docker.io/v1/` for docker.io), either `auth` (base64
/// "user:password") or `username` and `password`. nullopt when it has none;
/// an error when the file or the entry is malformed. Credential helpers
/// (`credsStore`, `credHelpers`) are DockerConfigHelper's.
core::Result<std::optional<RegistryCredentials>> DockerConfigCredentials(
    std::string_view config_text, const std::string& registry, const std::string& source);

/// The credential helper the docker config names for `registry`: its
/// `credHelpers` entry (keyed as `auths` is), else `credsStore`; nullopt
/// when it names none. "gcloud" stands for the program docker-credential-gcloud.
core::Result<std::optional<std::string>> DockerConfigHelper(std::string_view config_text,
                                                            const std::string& registry,
                                                            const std::string& source);

/// Runs Docker's credential helper protocol: `docker-credential-HELPER get`
/// (found on PATH) with the registry's server URL on stdin, answering
/// `{"ServerURL","Username","Secret"}`; a `<token>` Username makes the Secret
/// an identity token. nullopt when it says it has no credentials for it
/// ("credentials not found"); an error naming the helper and the registry
/// when it fails or answers something else. The answer never appears in an
/// error.
core::Result<std::optional<RegistryCredentials>> RunCredentialHelper(const std::string& helper,
                                                                     const std::string& registry,
                                                                     const std::string& source);

/// The credentials for `registry`: GANTRY_REGISTRY_USER and
/// GANTRY_REGISTRY_PASSWORD when both are set, else those of the docker
/// config ($DOCKER_CONFIG/config.json, else ~/.docker/config.json) when it
/// exists: its credential helper for the registry (DockerConfigHelper), else
/// its `auths` entry; nullopt: anonymous.
core::Result<std::optional<RegistryCredentials>> FindRegistryCredentials(
    const std::string& registry);

}  // namespace builder
