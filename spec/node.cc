#include "spec/node.h"

namespace spec {

const char* NodeKindName(Node::Kind kind) {
  switch (kind) {
    case Node::Kind::kNull:
      return "nothing (null)";
    case Node::Kind::kBool:
      return "a boolean";
    case Node::Kind::kInteger:
      return "an integer";
    case Node::Kind::kNumber:
      return "a number";
    case Node::Kind::kString:
      return "a string";
    case Node::Kind::kList:
      return "a list";
    case Node::Kind::kMap:
      return "a map";
  }
  return "a value";
}

}  // namespace spec
