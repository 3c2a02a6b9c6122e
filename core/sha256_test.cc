#include "core/sha256.h"

#include <catch2/catch.hpp>
#include <fstream>

TEST_CASE("Sha256Digest matches the published test vectors") {
  CHECK(core::Sha256Digest("") ==
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(core::Sha256Digest("abc") ==
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("Sha256 hashes a stream in pieces to the same digest as in one") {
  core::Sha256 hasher;
  hasher.Update("a");
  hasher.Update(std::string_view("bc"));
  CHECK(hasher.Finish() == core::Sha256Digest("abc"));
}

TEST_CASE("Sha256FileDigest equals the digest of the file's bytes") {
  std::filesystem::path file = std::filesystem::temp_directory_path() / "gantry-sha256-test";
  std::string content(200'000, 'x');
  std::ofstream(file, std::ios::binary) << content;
  CHECK(core::Sha256FileDigest(file).value() == core::Sha256Digest(content));
  std::filesystem::remove(file);
  CHECK_FALSE(core::Sha256FileDigest(file).ok());
}
