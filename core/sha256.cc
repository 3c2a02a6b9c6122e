#include "core/sha256.h"

#include <openssl/evp.h>

#include <array>

namespace core {

std::string Sha256Digest(std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> hash{};
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), hash.data(), &length, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string text = "sha256:";
  for (unsigned int i = 0; i < length; ++i) {
    text += kHex[hash[i] >> 4];
    text += kHex[hash[i] & 0xf];
  }
  return text;
}

}  // namespace core
