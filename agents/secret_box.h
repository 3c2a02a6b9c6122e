#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "core/result.h"

namespace agents {

/// Seals secret values at rest with AES-256-GCM (OpenSSL). The key is 32
/// random bytes in a file of its own (mode 0600), made on first use. A sealed
/// value is text: "gcm1:" + base64(12-byte nonce | ciphertext | 16-byte tag),
/// a fresh random nonce each time. Opening checks the tag: a changed byte, a
/// wrong key or a truncated value is an error, and the error never contains
/// the plaintext or the key.
class SecretBox {
 public:
  static core::Result<SecretBox> OpenOrCreate(const std::filesystem::path& key_file);

  core::Result<std::string> Seal(std::string_view plaintext) const;
  core::Result<std::string> Open(std::string_view sealed) const;

 private:
  explicit SecretBox(std::string key) : key_(std::move(key)) {}
  std::string key_;  // 32 bytes
};

}  // namespace agents
