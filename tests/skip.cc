#include "tests/skip.h"

#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>

namespace tests {
namespace {

std::atomic<int> skipped{0};

}  // namespace

void Skip(const std::string& reason) {
  if (!SkipsAllowed()) FAIL("cannot run here, and GANTRY_TESTS_NO_SKIP is set: " << reason);
  WARN("skipped: " << reason);
  ++skipped;
}

bool RootOrSkip(const std::string& why) {
  if (geteuid() == 0) return true;
  Skip(why);
  return false;
}

int SkippedCount() {
  return skipped;
}

}  // namespace tests
