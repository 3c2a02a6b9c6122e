#include "planner/secret_values.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <utility>

#include "core/atomic_file.h"
#include "core/hex.h"
#include "core/text.h"

namespace planner {
namespace {

bool IsVariableName(std::string_view name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name.front()))) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

/// A dotenv file's pairs. Messages say what is wrong with a line, never
/// what it holds: a malformed line may be a pasted value.
core::Result<SecretPairs> ReadDotenv(const std::filesystem::path& file, const std::string& secret) {
  auto text = core::ReadFile(file);
  if (!text.ok()) {
    core::Error error = text.error();
    error.message = "secret " + secret + ": " + error.message;
    return error;
  }
  auto malformed = [&](int line, const std::string& what) {
    return core::Error{core::ErrorCode::kInvalidArgument, "secret " + secret + ": " + what,
                       core::Location{file.string(), line, 0}};
  };
  SecretPairs pairs;
  std::string_view rest = *text;
  for (int number = 1; !rest.empty(); ++number) {
    std::size_t end = rest.find('\n');
    std::string_view line = core::TrimSpaces(rest.substr(0, end));
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    if (line.empty() || line.front() == '#') continue;
    if (line.starts_with("export") && line.size() > 6 &&
        std::isspace(static_cast<unsigned char>(line[6]))) {
      line = core::TrimSpaces(line.substr(6));
    }
    std::size_t equals = line.find('=');
    if (equals == std::string_view::npos) {
      return malformed(number, "expected KEY=VALUE on this line");
    }
    std::string_view key = core::TrimSpaces(line.substr(0, equals));
    if (!IsVariableName(key)) {
      return malformed(number, "the key is not a variable name (letters, digits and _)");
    }
    std::string_view value = core::TrimSpaces(line.substr(equals + 1));
    if (!value.empty() && (value.front() == '"' || value.front() == '\'')) {
      if (value.size() < 2 || value.back() != value.front()) {
        return malformed(number, "the value of " + std::string(key) + " has no closing quote");
      }
      value = value.substr(1, value.size() - 2);
    }
    pairs[std::string(key)] = std::string(value);
  }
  return pairs;
}

}  // namespace

core::Result<std::map<std::string, SecretPairs>> ReadSecrets(const spec::App& app) {
  std::map<std::string, SecretPairs> secrets;
  for (const auto& [name, secret] : app.secrets) {
    SecretPairs& pairs = secrets[name];
    for (const std::string& variable : secret.from_env) {
      const char* value = std::getenv(variable.c_str());
      if (value == nullptr) {
        return core::Error{core::ErrorCode::kNotFound,
                           "secret " + name + ": environment variable " + variable + " is not set",
                           {}};
      }
      pairs[variable] = value;
    }
    if (secret.from_file.empty()) continue;
    auto from_file = ReadDotenv(app.context / secret.from_file, name);
    if (!from_file.ok()) return from_file.error();
    for (auto& [key, value] : *from_file) pairs[key] = std::move(value);
  }
  return secrets;
}

std::string SecretValueHash(std::string_view key, std::string_view secret, std::string_view name,
                            std::string_view value) {
  std::string message;
  message.reserve(secret.size() + name.size() + value.size() + 2);
  message.append(secret).push_back('\0');
  message.append(name).push_back('\0');
  message.append(value);
  // An empty key is still a key (of zero bytes); OpenSSL only needs a pointer.
  static const char kNoKey = 0;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.empty() ? &kNoKey : key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), digest, &length);
  return "hmac-sha256:" + core::HexEncode(digest, length);
}

}  // namespace planner
