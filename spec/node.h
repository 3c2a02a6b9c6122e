#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"

namespace spec {

/// A value read from a YAML or a Lua spec before it is checked, with the place
/// in the file it came from. Both readers produce this one shape so that one
/// decoder (decoder.h) validates both formats the same way and the same app
/// written either way yields the same spec::App.
struct Node {
  enum class Kind { kNull, kBool, kInteger, kNumber, kString, kList, kMap };

  struct Member;

  Kind kind = Kind::kNull;
  bool boolean = false;
  std::int64_t integer = 0;
  double number = 0;
  /// A string's value; for YAML scalars of any kind, the text as written.
  std::string text;
  std::vector<Node> items;      // kList
  std::vector<Member> members;  // kMap, in the order written
  /// An empty Lua table: it reads as an empty list or an empty map alike.
  bool empty_table = false;
  core::Location location;
};

struct Node::Member {
  std::string key;
  core::Location key_location;
  Node value;
};

/// "a map", "a string", ...: how an error names what it found.
const char* NodeKindName(Node::Kind kind);

}  // namespace spec
