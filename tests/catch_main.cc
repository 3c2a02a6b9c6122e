// The main() of every Catch2 test binary: Catch's own, except that a run in
// which a case was skipped (tests::Skip) and none failed exits 77, which
// CTest reports as skipped rather than passed.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <iostream>

#include "tests/skip.h"

int main(int argc, char* argv[]) {
  // Catch's result is the count of failed assertions (at most 255): any
  // failure is 1 here, so that 77 of them never read as a skip.
  if (Catch::Session().run(argc, argv) != 0) return 1;
  if (tests::SkippedCount() > 0) {
    std::cerr << tests::SkippedCount() << " skip(s): this machine cannot run everything here\n";
    return tests::kSkippedExit;
  }
  return 0;
}
