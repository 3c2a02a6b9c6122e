#include "agents/secret_box.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <system_error>

#include "core/atomic_file.h"
#include "core/base64.h"
#include "core/unique_fd.h"

namespace agents {
namespace {

constexpr std::size_t kKeyBytes = 32;    // AES-256
constexpr std::size_t kNonceBytes = 12;  // GCM's own IV length
constexpr std::size_t kTagBytes = 16;
constexpr std::string_view kPrefix = "gcm1:";
/// OpenSSL counts bytes in ints; base64 makes 4 of every 3. A secret is small.
constexpr std::size_t kMaxPlaintextBytes = std::size_t{1} << 30;

const unsigned char* Bytes(std::string_view text) {
  return reinterpret_cast<const unsigned char*>(text.data());
}
unsigned char* Bytes(std::string& text) {
  return reinterpret_cast<unsigned char*>(text.data());
}

core::Error NotSealed(const std::string& why) {
  return core::Error{core::ErrorCode::kInvalidArgument, "cannot open a sealed secret: " + why, {}};
}

core::Error CipherFailed(const char* call) {
  return core::Error{
      core::ErrorCode::kInternal, "AES-256-GCM: " + std::string(call) + " failed (OpenSSL)", {}};
}

core::Result<std::string> ReadKey(const std::filesystem::path& key_file) {
  auto key = core::ReadFile(key_file);
  if (!key.ok()) return key.error();
  if (key->size() != kKeyBytes) {
    std::size_t size = key->size();
    OPENSSL_cleanse(key->data(), key->size());
    return core::Error{core::ErrorCode::kInvalidArgument,
                       "a secret key file holds 32 random bytes, this one " + std::to_string(size),
                       core::Location{key_file.string(), 0, 0}};
  }
  return key;
}

struct CipherContextFree {
  void operator()(EVP_CIPHER_CTX* context) const { EVP_CIPHER_CTX_free(context); }
};
using CipherContext = std::unique_ptr<EVP_CIPHER_CTX, CipherContextFree>;

}  // namespace

core::Result<SecretBox> SecretBox::OpenOrCreate(const std::filesystem::path& key_file) {
  auto existing = ReadKey(key_file);
  if (existing.ok()) return SecretBox(std::move(existing).value());
  if (existing.error().code != core::ErrorCode::kNotFound) return existing.error();

  if (key_file.has_parent_path()) {
    std::error_code error;
    std::filesystem::create_directories(key_file.parent_path(), error);
    if (error) {
      return core::Error{core::ErrorCode::kIo, "cannot create the key's folder: " + error.message(),
                         core::Location{key_file.parent_path().string(), 0, 0}};
    }
  }
  std::string key(kKeyBytes, '\0');
  if (RAND_bytes(Bytes(key), static_cast<int>(key.size())) != 1) {
    return core::Error{
        core::ErrorCode::kInternal, "no random bytes for a secret key (RAND_bytes)", {}};
  }
  auto created = core::CreatePrivateFile(key_file, key);
  if (!created.ok()) return created.error();
  if (*created) return SecretBox(std::move(key));
  OPENSSL_cleanse(key.data(), key.size());
  // Another process made the key first: use theirs.
  auto theirs = ReadKey(key_file);
  if (!theirs.ok()) return theirs.error();
  return SecretBox(std::move(theirs).value());
}

core::Result<std::string> SecretBox::Seal(std::string_view plaintext) const {
  if (plaintext.size() > kMaxPlaintextBytes) {
    return core::Error{
        core::ErrorCode::kInvalidArgument,
        "a secret value is at most 1 GiB, this one " + std::to_string(plaintext.size()) + " bytes",
        {}};
  }
  // nonce | ciphertext (as long as the plaintext) | tag
  std::string box(kNonceBytes + plaintext.size() + kTagBytes, '\0');
  unsigned char* nonce = Bytes(box);
  unsigned char* ciphertext = nonce + kNonceBytes;
  unsigned char* tag = ciphertext + plaintext.size();
  if (RAND_bytes(nonce, kNonceBytes) != 1) {
    return core::Error{core::ErrorCode::kInternal, "no random bytes for a nonce (RAND_bytes)", {}};
  }

  CipherContext context(EVP_CIPHER_CTX_new());
  if (context == nullptr) return CipherFailed("EVP_CIPHER_CTX_new");
  if (EVP_EncryptInit_ex(context.get(), EVP_aes_256_gcm(), nullptr, Bytes(key_), nonce) != 1) {
    return CipherFailed("EVP_EncryptInit_ex");
  }
  int length = 0;
  if (!plaintext.empty() && EVP_EncryptUpdate(context.get(), ciphertext, &length, Bytes(plaintext),
                                              static_cast<int>(plaintext.size())) != 1) {
    return CipherFailed("EVP_EncryptUpdate");
  }
  int final_length = 0;
  if (EVP_EncryptFinal_ex(context.get(), ciphertext + length, &final_length) != 1) {
    return CipherFailed("EVP_EncryptFinal_ex");
  }
  if (static_cast<std::size_t>(length) + static_cast<std::size_t>(final_length) !=
      plaintext.size()) {
    return CipherFailed("EVP_EncryptUpdate (length)");
  }
  if (EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_AEAD_GET_TAG, kTagBytes, tag) != 1) {
    return CipherFailed("EVP_CTRL_AEAD_GET_TAG");
  }
  return std::string(kPrefix) + core::Base64Encode(box);
}

core::Result<std::string> SecretBox::Open(std::string_view sealed) const {
  if (!sealed.starts_with(kPrefix)) {
    return NotSealed("it does not start with \"" + std::string(kPrefix) + "\"");
  }
  std::optional<std::string> box = core::Base64Decode(sealed.substr(kPrefix.size()));
  if (!box.has_value()) return NotSealed("it is not base64 after \"gcm1:\"");
  if (box->size() < kNonceBytes + kTagBytes) return NotSealed("it is truncated");
  std::size_t plaintext_size = box->size() - kNonceBytes - kTagBytes;
  const unsigned char* nonce = Bytes(*box);
  const unsigned char* ciphertext = nonce + kNonceBytes;
  unsigned char* tag = Bytes(*box) + kNonceBytes + plaintext_size;

  CipherContext context(EVP_CIPHER_CTX_new());
  if (context == nullptr) return CipherFailed("EVP_CIPHER_CTX_new");
  if (EVP_DecryptInit_ex(context.get(), EVP_aes_256_gcm(), nullptr, Bytes(key_), nonce) != 1) {
    return CipherFailed("EVP_DecryptInit_ex");
  }
  std::string plaintext(plaintext_size, '\0');
  int length = 0;
  if (plaintext_size > 0 && EVP_DecryptUpdate(context.get(), Bytes(plaintext), &length, ciphertext,
                                              static_cast<int>(plaintext_size)) != 1) {
    return CipherFailed("EVP_DecryptUpdate");
  }
  if (EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_AEAD_SET_TAG, kTagBytes, tag) != 1) {
    return CipherFailed("EVP_CTRL_AEAD_SET_TAG");
  }
  int final_length = 0;
  if (EVP_DecryptFinal_ex(context.get(), Bytes(plaintext) + length, &final_length) != 1) {
    // What was decrypted is not authentic: it never leaves this function.
    OPENSSL_cleanse(plaintext.data(), plaintext.size());
    return NotSealed("it was changed, truncated, or sealed with another key");
  }
  return plaintext;
}

}  // namespace agents
