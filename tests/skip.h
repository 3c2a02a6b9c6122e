#pragma once

#include <string>

namespace tests {

/// The exit status of a test binary in which a case was skipped and none
/// failed: CTest reports the case as skipped (SKIP_RETURN_CODE), not passed.
inline constexpr int kSkippedExit = 77;

/// Says (a Catch WARN, "skipped: `reason`") that the running test case
/// cannot run on this machine; the caller returns at once. The binary then
/// exits kSkippedExit unless a case failed (tests/catch_main.cc). A case
/// that skips one of its sections or generated values is reported skipped
/// as a whole: not everything in it ran.
void Skip(const std::string& reason);

/// Whether the test runs as root; if not, Skip(`why`): the caller returns
/// at once.
bool RootOrSkip(const std::string& why);

/// How many times Skip was called in this run.
int SkippedCount();

}  // namespace tests
