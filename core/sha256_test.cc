#include "core/sha256.h"

#include <catch2/catch.hpp>

TEST_CASE("Sha256Digest matches the published test vectors") {
  CHECK(core::Sha256Digest("") ==
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(core::Sha256Digest("abc") ==
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
