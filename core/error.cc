#include "core/error.h"

namespace core {

std::string Location::ToString() const {
  std::string text = file;
  if (line > 0) {
    text += ":" + std::to_string(line);
    if (column > 0) text += ":" + std::to_string(column);
  }
  return text;
}

const char* ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidSpec:
      return "invalid-spec";
    case ErrorCode::kParse:
      return "parse";
    case ErrorCode::kNotFound:
      return "not-found";
    case ErrorCode::kIo:
      return "io";
    case ErrorCode::kLimit:
      return "limit";
    case ErrorCode::kBudgetExceeded:
      return "budget-exceeded";
    case ErrorCode::kInvalidArgument:
      return "invalid-argument";
    case ErrorCode::kConflict:
      return "conflict";
    case ErrorCode::kUnavailable:
      return "unavailable";
    case ErrorCode::kInternal:
      return "internal";
  }
  return "internal";
}

std::string Error::ToString() const {
  std::string where = location.ToString();
  return where.empty() ? message : where + ": " + message;
}

}  // namespace core
