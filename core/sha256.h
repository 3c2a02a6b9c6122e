#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "core/result.h"

namespace core {

/// The digest of `data` as content-addressed names are written everywhere in
/// gantry and OCI: "sha256:" followed by 64 lowercase hex digits.
std::string Sha256Digest(std::string_view data);

/// The digest of a file's content, read in pieces.
Result<std::string> Sha256FileDigest(const std::filesystem::path& path);

/// An incremental sha256, for hashing a stream while it is written (a layer's
/// DiffID and blob digest are taken in the same pass that writes them).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;

  void Update(std::string_view data);
  void Update(const void* data, std::size_t size);
  /// "sha256:HEX" of everything given so far; the hasher is then spent.
  std::string Finish();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace core
