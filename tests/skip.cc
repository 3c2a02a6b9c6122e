#include "tests/skip.h"

#include <atomic>
#include <catch2/catch.hpp>

namespace tests {
namespace {

std::atomic<int> skipped{0};

}  // namespace

void Skip(const std::string& reason) {
  WARN("skipped: " << reason);
  ++skipped;
}

int SkippedCount() {
  return skipped;
}

}  // namespace tests
