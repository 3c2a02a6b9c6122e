// Hidden cases that tests/CMakeLists.txt's skip_exit_status runs to check
// what a test binary's exit status says (tests/catch_main.cc): 77 for a
// skip, never for a failure.
#include "tests/skip.h"

#include <catch2/catch.hpp>

TEST_CASE("a case that cannot run here", "[.skips]") {
  tests::Skip("this is the skip's own test");
}

TEST_CASE("a case that fails", "[.fails]") {
  CHECK(1 == 2);
}

TEST_CASE("a case that fails 77 checks", "[.fails77]") {
  for (int i = 0; i < 77; ++i) CHECK(i < 0);
}

TEST_CASE("a case that passes", "[.passes]") {
  CHECK(1 == 1);
}
