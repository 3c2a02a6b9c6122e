#include "core/base64.h"

#include <catch2/catch.hpp>

TEST_CASE("Base64 round-trips and refuses what is not padded base64") {
  CHECK(core::Base64Encode("") == "");
  CHECK(core::Base64Encode("user:password") == "dXNlcjpwYXNzd29yZA==");
  CHECK(core::Base64Encode("ab") == "YWI=");
  CHECK(core::Base64Decode("dXNlcjpwYXNzd29yZA==") == "user:password");
  CHECK(core::Base64Decode("YWI=") == "ab");
  CHECK(core::Base64Decode("YWJj") == "abc");
  CHECK(core::Base64Decode("") == "");
  CHECK_FALSE(core::Base64Decode("YWI").has_value());
  CHECK_FALSE(core::Base64Decode("Y=WI").has_value());
  CHECK_FALSE(core::Base64Decode("YW I").has_value());
}
