#include "spec/yaml_reader.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <set>
#include <sstream>
#include <string_view>

namespace spec {
namespace {

// An alias may repeat a subtree many times ("billion laughs") or contain
// itself; past these bounds the document is refused rather than expanded.
constexpr std::size_t kMaxNodes = 500'000;
constexpr std::size_t kMaxBytes = 16u << 20;
constexpr int kMaxDepth = 64;

bool AllOf(std::string_view text, bool (*accept)(char)) {
  return !text.empty() && std::all_of(text.begin(), text.end(), accept);
}
bool IsDecimal(char c) { return c >= '0' && c <= '9'; }
bool IsOctal(char c) { return c >= '0' && c <= '7'; }
bool IsHex(char c) { return IsDecimal(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

std::string_view WithoutSign(std::string_view text) {
  if (!text.empty() && (text[0] == '-' || text[0] == '+')) text.remove_prefix(1);
  return text;
}

// YAML 1.2 core schema: [-+]?[0-9]+ | 0o[0-7]+ | 0x[0-9a-fA-F]+. Plain loops,
// not std::regex, whose matcher recurses per character on long input.
int IntegerBase(std::string_view text) {
  if (text.size() > 2 && text[0] == '0' && text[1] == 'o' && AllOf(text.substr(2), IsOctal)) return 8;
  if (text.size() > 2 && text[0] == '0' && text[1] == 'x' && AllOf(text.substr(2), IsHex)) return 16;
  return AllOf(WithoutSign(text), IsDecimal) ? 10 : 0;
}

// [-+]? ( \.[0-9]+ | [0-9]+ ( \.[0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
bool IsFloat(std::string_view text) {
  text = WithoutSign(text);
  std::size_t i = 0, digits = 0;
  while (i < text.size() && IsDecimal(text[i])) ++i, ++digits;
  if (i < text.size() && text[i] == '.') {
    ++i;
    while (i < text.size() && IsDecimal(text[i])) ++i, ++digits;
  }
  if (digits == 0) return false;
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    std::string_view exponent = WithoutSign(text.substr(i + 1));
    return AllOf(exponent, IsDecimal);
  }
  return i == text.size();
}

// Counts documents without building them, stopping at `limit`. Not
// YAML::LoadAll: yaml-cpp 0.7 reports endless empty documents for input such
// as "{},a", and LoadAll collects them until memory runs out.
std::size_t CountDocuments(const std::string& text, std::size_t limit) {
  struct Ignore : YAML::EventHandler {
    void OnDocumentStart(const YAML::Mark&) override {}
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
    void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
    void OnMapEnd() override {}
  } ignore;
  std::istringstream stream(text);
  YAML::Parser parser(stream);
  std::size_t documents = 0;
  while (documents < limit && parser.HandleNextDocument(ignore)) ++documents;
  return documents;
}

class Converter {
 public:
  explicit Converter(std::string file) : file_(std::move(file)) {}

  core::Result<Node> Convert(const YAML::Node& yaml, const core::Location& fallback, int depth = 0) {
    if (depth > kMaxDepth) {
      return core::Error{core::ErrorCode::kLimit,
                         "values nested deeper than " + std::to_string(kMaxDepth) +
                             " levels (an alias that contains itself?)",
                         fallback};
    }
    if (++count_ > kMaxNodes || bytes_ > kMaxBytes) {
      return core::Error{core::ErrorCode::kLimit,
                         "the document expands to more than " + std::to_string(kMaxNodes) + " values or " +
                             std::to_string(kMaxBytes >> 20) + " MiB (aliases repeating a subtree?)",
                         fallback};
    }
    Node node;
    node.location = LocationOf(yaml.Mark(), fallback);
    switch (yaml.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        // An empty value has no place of its own (yaml-cpp marks where the
        // next token starts): it is reported at its key.
        node.kind = Node::Kind::kNull;
        node.location = fallback;
        return node;
      case YAML::NodeType::Scalar:
        ResolveScalar(yaml, &node);
        return node;
      case YAML::NodeType::Sequence:
        node.kind = Node::Kind::kList;
        for (const YAML::Node& item : yaml) {
          auto converted = Convert(item, node.location, depth + 1);
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
          bytes_ += key.size();
          if (!seen.insert(key).second) {
            return core::Error{core::ErrorCode::kParse, "duplicate key \"" + key + "\"",
                               key_location};
          }
          auto value = Convert(pair.second, key_location, depth + 1);
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

  void ResolveScalar(const YAML::Node& yaml, Node* node) {
    const std::string& text = yaml.Scalar();
    bytes_ += text.size();
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
    } else if (int base = IntegerBase(text); base != 0) {
      const char* digits = text.c_str() + (base == 10 ? 0 : 2);
      errno = 0;
      long long value = std::strtoll(digits, nullptr, base);
      if (errno == ERANGE) {
        // Too large for an integer: a number (infinite for a huge hex or octal).
        node->kind = Node::Kind::kNumber;
        node->number = base == 10 ? std::strtod(text.c_str(), nullptr) : HUGE_VAL;
      } else {
        node->kind = Node::Kind::kInteger;
        node->integer = value;
      }
    } else if (IsFloat(text)) {
      node->kind = Node::Kind::kNumber;
      node->number = std::strtod(text.c_str(), nullptr);
    }
  }

  std::string file_;
  std::size_t count_ = 0;
  std::size_t bytes_ = 0;
};

}  // namespace

core::Result<Node> ReadYaml(const std::string& text, const std::string& file) {
  YAML::Node document;
  try {
    std::size_t documents = CountDocuments(text, 2);
    if (documents > 1) {
      return core::Error{core::ErrorCode::kParse, "a spec is one YAML document; this file holds more (remove the extra ---)",
                         core::Location{file, 0, 0}};
    }
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
