#pragma once

namespace toolchain {

/// gantry's exit codes, documented in README.md ("Exit codes").
enum ExitCode : int {
  kExitOk = 0,
  kExitUserError = 1,  // a bad spec, a missing file, a refused operation
  kExitUsage = 2,      // the command line itself is wrong
  kExitInternal = 3,   // a bug in gantry
  /// Stopped by a signal: 128 + its number, as shells say (130 for Ctrl-C).
  /// `gantry run` also exits with its call's own exit code.
  kExitSignalled = 128,
};

}  // namespace toolchain
