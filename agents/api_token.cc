#include "agents/api_token.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "core/atomic_file.h"
#include "core/random.h"
#include "core/sha256.h"
#include "core/text.h"
#include "core/unique_fd.h"

namespace agents {
namespace {

/// The generated token: 32 random bytes, as 64 lowercase hex digits.
constexpr std::size_t kTokenBytes = 32;

/// A token file's token: its content less surrounding whitespace.
core::Result<std::string> TokenFromFile(const std::filesystem::path& path) {
  auto content = core::ReadFile(path);
  if (!content.ok()) return content.error();
  std::string_view token = core::TrimSpaces(*content);
  if (token.empty()) {
    return core::Error{core::ErrorCode::kInvalidArgument, "the API token file is empty",
                       core::Location{path.string(), 0, 0}};
  }
  // An Authorization header is one line of text: a token with a control
  // character in it (a second line, say) could never be sent.
  if (std::any_of(token.begin(), token.end(),
                  [](char c) { return std::iscntrl(static_cast<unsigned char>(c)); })) {
    return core::Error{core::ErrorCode::kInvalidArgument,
                       "the API token holds a control character or more than one line",
                       core::Location{path.string(), 0, 0}};
  }
  return std::string(token);
}

}  // namespace

core::Result<std::string> LoadOrCreateToken(
    const std::filesystem::path& data_dir, const std::optional<std::filesystem::path>& token_file) {
  if (token_file.has_value()) return TokenFromFile(*token_file);

  std::filesystem::path path = data_dir / "token";
  auto existing = TokenFromFile(path);
  if (existing.ok() || existing.error().code != core::ErrorCode::kNotFound) return existing;

  std::error_code error;
  std::filesystem::create_directories(data_dir, error);
  if (error) {
    return core::Error{core::ErrorCode::kIo, "cannot create the data folder: " + error.message(),
                       core::Location{data_dir.string(), 0, 0}};
  }
  auto token = core::RandomHex(kTokenBytes);
  if (!token.ok()) return token.error();
  auto created = core::CreatePrivateFile(path, *token + "\n");
  if (!created.ok()) return created.error();
  if (*created) return token;
  return TokenFromFile(path);  // another process made it first: use theirs
}

bool SecretMatches(std::string_view guess, std::string_view secret) {
  if (secret.empty()) return false;  // no secret is ever a match
  // The same number of bytes are compared whether or not the lengths agree,
  // and CRYPTO_memcmp reads them all.
  bool same_length = guess.size() == secret.size();
  const char* compared = same_length ? guess.data() : secret.data();
  bool same_bytes = CRYPTO_memcmp(compared, secret.data(), secret.size()) == 0;
  return same_length && same_bytes;
}

std::string_view BearerCredentials(std::string_view authorization) {
  constexpr std::string_view kScheme = "Bearer";
  authorization = core::TrimSpaces(authorization);
  if (authorization.size() <= kScheme.size() || authorization[kScheme.size()] != ' ') return "";
  // The scheme's name is case-insensitive (RFC 7235); the token is not.
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) !=
        std::tolower(static_cast<unsigned char>(kScheme[i]))) {
      return "";
    }
  }
  return core::TrimSpaces(authorization.substr(kScheme.size()));
}

bool AuthorizationMatches(std::string_view authorization, std::string_view token) {
  return SecretMatches(BearerCredentials(authorization), token);
}

bool AuthorizationKeyMatches(std::string_view authorization, std::string_view key_sha256) {
  std::string_view credentials = BearerCredentials(authorization);
  if (credentials.empty()) return false;
  // Hashes of the same length are compared, in constant time.
  return SecretMatches(core::Sha256Digest(credentials).substr(7), key_sha256);
}

}  // namespace agents
