#include "core/random.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <vector>

#include "core/hex.h"

namespace core {

Result<std::string> RandomHex(std::size_t bytes) {
  std::vector<unsigned char> random(bytes);
  if (RAND_bytes(random.data(), static_cast<int>(random.size())) != 1) {
    return Error{ErrorCode::kInternal, "no random bytes (RAND_bytes)", {}};
  }
  std::string hex = HexEncode(random.data(), random.size());
  OPENSSL_cleanse(random.data(), random.size());
  return hex;
}

}  // namespace core
