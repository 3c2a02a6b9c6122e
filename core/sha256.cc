#include "core/sha256.h"

#include <openssl/evp.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "core/hex.h"

namespace core {
namespace {

std::string Hex(const unsigned char* hash, unsigned int length) { return "sha256:" + HexEncode(hash, length); }

}  // namespace

struct Sha256::State {
  struct ContextFree {
    void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
  };
  std::unique_ptr<EVP_MD_CTX, ContextFree> context{EVP_MD_CTX_new()};
};

Sha256::Sha256() : state_(std::make_unique<State>()) { EVP_DigestInit_ex(state_->context.get(), EVP_sha256(), nullptr); }
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::Update(std::string_view data) { Update(data.data(), data.size()); }

void Sha256::Update(const void* data, std::size_t size) { EVP_DigestUpdate(state_->context.get(), data, size); }

std::string Sha256::Finish() {
  std::array<unsigned char, EVP_MAX_MD_SIZE> hash{};
  unsigned int length = 0;
  EVP_DigestFinal_ex(state_->context.get(), hash.data(), &length);
  return Hex(hash.data(), length);
}

std::string Sha256Digest(std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> hash{};
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), hash.data(), &length, EVP_sha256(), nullptr);
  return Hex(hash.data(), length);
}

Result<std::string> Sha256FileDigest(const std::filesystem::path& path) {
  std::ifstream stream(path, std::ios::binary);
  if (!stream) {
    return Error{ErrorCode::kIo, "cannot read: " + std::string(std::strerror(errno)), Location{path.string(), 0, 0}};
  }
  Sha256 hasher;
  std::array<char, 1 << 16> buffer;
  while (stream.read(buffer.data(), buffer.size()) || stream.gcount() > 0) {
    hasher.Update(buffer.data(), static_cast<std::size_t>(stream.gcount()));
  }
  return hasher.Finish();
}

}  // namespace core
