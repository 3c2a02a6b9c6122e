#pragma once

#include <string>

namespace core {

/// Where in a user's file something went wrong. Line and column are 1-based;
/// 0 means unknown (a Lua runtime error knows its line but not its column).
struct Location {
  std::string file;
  int line = 0;
  int column = 0;

  /// "FILE:LINE:COLUMN", dropping the parts that are unknown.
  std::string ToString() const;
};

/// What kind of failure an Error is. The command maps it to an exit code:
/// kInternal is a bug in gantry (exit 3), everything else is the user's (exit 1).
enum class ErrorCode {
  kInvalidSpec,  // the spec breaks a rule; the message names the field
  kParse,        // the file is not well-formed YAML, Lua or JSON
  kNotFound,     // a file or a named thing does not exist
  kIo,           // reading or writing failed
  kLimit,        // a sandbox limit (instructions, memory) was hit
  kInvalidArgument,
  kConflict,     // the request contradicts what is already there (an older generation)
  kUnavailable,  // nothing can serve it now (no container ready in time, a full queue): retry
  kBudgetExceeded,  // the app's budget is spent: it runs again next period or once raised
  kInternal,
};

/// "invalid-spec", "parse", ...: the code as it appears in JSON errors and logs.
const char* ErrorCodeName(ErrorCode code);

/// An error with a code, a message and, where it comes from a user's file, a
/// location. It prints as one line: "FILE:LINE:COLUMN: message".
struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
  Location location;

  std::string ToString() const;
};

}  // namespace core
