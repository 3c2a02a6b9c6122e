#pragma once

#include <cstdlib>
#include <string>
#include <string_view>

namespace tests {

/// Whether a test may skip on this machine: not when GANTRY_TESTS_NO_SKIP
/// is set to anything but "" or "0". The README's test command, which CI
/// runs, sets it: there everything must run, and a machine that cannot run
/// a test fails it rather than passing it by a skip.
inline bool SkipsAllowed() {
  const char* no_skip = std::getenv("GANTRY_TESTS_NO_SKIP");
  return no_skip == nullptr || std::string_view(no_skip).empty() ||
         std::string_view(no_skip) == "0";
}

/// The exit status of a test binary in which a case was skipped and none
/// failed: CTest reports the case as skipped (SKIP_RETURN_CODE), not passed.
inline constexpr int kSkippedExit = 77;

/// Says (a Catch WARN, "skipped: `reason`") that the running test case
/// cannot run on this machine; the caller returns at once. The binary then
/// exits kSkippedExit unless a case failed (tests/catch_main.cc). A case
/// that skips one of its sections or generated values is reported skipped
/// as a whole: not everything in it ran. Where skips are not allowed
/// (SkipsAllowed), the case fails instead, with the same reason.
void Skip(const std::string& reason);

/// Whether the test runs as root; if not, Skip(`why`): the caller returns
/// at once.
bool RootOrSkip(const std::string& why);

/// How many times Skip was called in this run.
int SkippedCount();

}  // namespace tests
