// The main() of every Catch2 test binary: Catch's own, except that a run in
// which a case was skipped (tests::Skip) and none failed exits 77, which
// CTest reports as skipped rather than passed.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <iostream>

#include "tests/skip.h"

int main(int argc, char* argv[]) {
  int failed = Catch::Session().run(argc, argv);
  if (failed == 0 && tests::SkippedCount() > 0) {
    std::cerr << tests::SkippedCount() << " skip(s): this machine cannot run everything here\n";
    return tests::kSkippedExit;
  }
  return failed;
}
