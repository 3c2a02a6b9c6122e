#include "spec/yaml_reader.h"

#include <yaml-cpp/yaml.h>

#include <regex>
#include <set>

namespace spec {
namespace {

// An alias may repeat a subtree many times ("billion laughs"); past this many
// nodes the document is refused rather than expanded.
constexpr std::size_t kMaxNodes = 1'000'000;

const std::regex kInteger(R"([-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)");
const std::regex kFloat(R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)");

class Converter {
 public:
  explicit Converter(std::string file) : file_(std::move(file)) {}

  core::Result<Node> Convert(const YAML::Node& yaml, const core::Location& fallback) {
    if (++count_ > kMaxNodes) {
      return core::Error{core::ErrorCode::kLimit,
                         "the document expands to more than " + std::to_string(kMaxNodes) +
                             " values (aliases repeating a subtree?)",
                         fallback};
    }
    Node node;
    node.location = LocationOf(yaml.Mark(), fallback);
    switch (yaml.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        node.kind = Node::Kind::kNull;
        return node;
      case YAML::NodeType::Scalar:
        ResolveScalar(yaml, &node);
        return node;
      case YAML::NodeType::Sequence:
        node.kind = Node::Kind::kList;
        for (const YAML::Node& item : yaml) {
          auto converted = Convert(item, node.location);
          if (!converted) return converted.error();
          node.items.push_back(std::move(converted).value());
        }
        return node;
      case YAML::NodeType::Map: {
        node.kind = Node::Kind::kMap;
        std::set<std::string> seen;
        for (const auto& pair : yaml) {
          core::Location key_location = LocationOf(pair.first.Mark(), node.location);
          if (!pair.first.IsScalar()) {
            return core::Error{core::ErrorCode::kParse, "a map key must be a plain string",
                               key_location};
          }
          std::string key = pair.first.Scalar();
          if (!seen.insert(key).second) {
            return core::Error{core::ErrorCode::kParse, "duplicate key \"" + key + "\"",
                               key_location};
          }
          auto value = Convert(pair.second, key_location);
          if (!value) return value.error();
          node.members.push_back(Node::Member{key, key_location, std::move(value).value()});
        }
        return node;
      }
    }
    return node;
  }

 private:
  core::Location LocationOf(const YAML::Mark& mark, const core::Location& fallback) const {
    if (mark.is_null() || mark.line < 0) return fallback;
    return core::Location{file_, mark.line + 1, mark.column + 1};
  }

  static void ResolveScalar(const YAML::Node& yaml, Node* node) {
    const std::string& text = yaml.Scalar();
    node->text = text;
    node->kind = Node::Kind::kString;
    if (yaml.Tag() != "?") return;  // quoted or explicitly tagged: a string
    if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL") {
      node->kind = Node::Kind::kNull;
    } else if (text == "true" || text == "True" || text == "TRUE") {
      node->kind = Node::Kind::kBool;
      node->boolean = true;
    } else if (text == "false" || text == "False" || text == "FALSE") {
      node->kind = Node::Kind::kBool;
      node->boolean = false;
    } else if (std::regex_match(text, kInteger)) {
      std::size_t used = 0;
      int base = text.rfind("0x", 0) == 0 ? 16 : text.rfind("0o", 0) == 0 ? 8 : 10;
      std::string digits = base == 10 ? text : text.substr(2);
      try {
        node->integer = std::stoll(digits, &used, base);
        node->kind = Node::Kind::kInteger;
      } catch (const std::out_of_range&) {
        node->kind = Node::Kind::kNumber;
        node->number = std::stod(text);
      }
    } else if (std::regex_match(text, kFloat)) {
      node->kind = Node::Kind::kNumber;
      node->number = std::strtod(text.c_str(), nullptr);
    }
  }

  std::string file_;
  std::size_t count_ = 0;
};

}  // namespace

core::Result<Node> ReadYaml(const std::string& text, const std::string& file) {
  YAML::Node document;
  try {
    document = YAML::Load(text);
  } catch (const YAML::Exception& error) {
    core::Location location{file, error.mark.line + 1, error.mark.column + 1};
    if (error.mark.is_null()) location = core::Location{file, 0, 0};
    return core::Error{core::ErrorCode::kParse, "invalid YAML: " + error.msg, location};
  }
  Converter converter(file);
  try {
    return converter.Convert(document, core::Location{file, 1, 1});
  } catch (const YAML::Exception& error) {
    // yaml-cpp resolves aliases lazily; a broken one surfaces here.
    return core::Error{core::ErrorCode::kParse, "invalid YAML: " + error.msg,
                       core::Location{file, 0, 0}};
  }
}

}  // namespace spec
