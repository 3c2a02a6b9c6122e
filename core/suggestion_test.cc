#include "core/suggestion.h"

#include <catch2/catch.hpp>

TEST_CASE("ClosestMatch suggests a near spelling and nothing for a far one") {
  std::vector<std::string> fields = {"image", "command", "max_containers", "min_containers",
                                     "timeout"};
  CHECK(core::ClosestMatch("imgae", fields) == "image");
  CHECK(core::ClosestMatch("max_container", fields) == "max_containers");
  CHECK(core::ClosestMatch("TIMEOUT", fields) == "timeout");
  CHECK(core::ClosestMatch("form", {"from", "steps"}) == "from");  // a swap is one edit
  CHECK_FALSE(core::ClosestMatch("gpus_per_node", fields).has_value());
  CHECK_FALSE(core::ClosestMatch("x", {}).has_value());
}
