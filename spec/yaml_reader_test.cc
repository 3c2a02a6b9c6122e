#include "spec/yaml_reader.h"

#include <catch2/catch.hpp>

TEST_CASE("YAML scalars are typed by the YAML 1.2 core schema, and quoted ones stay strings") {
  auto node = spec::ReadYaml("a: 1\nb: 1.5\nc: true\nd: ~\ne: \"1\"\nf: hello\ng: 0x10\nh: yes\n",
                             "app.yaml");
  REQUIRE(node.ok());
  const auto& members = node->members;
  REQUIRE(members.size() == 8);
  CHECK(members[0].value.kind == spec::Node::Kind::kInteger);
  CHECK(members[0].value.integer == 1);
  CHECK(members[1].value.kind == spec::Node::Kind::kNumber);
  CHECK(members[2].value.kind == spec::Node::Kind::kBool);
  CHECK(members[3].value.kind == spec::Node::Kind::kNull);
  CHECK(members[4].value.kind == spec::Node::Kind::kString);
  CHECK(members[5].value.kind == spec::Node::Kind::kString);
  CHECK(members[6].value.integer == 16);
  CHECK(members[7].value.kind == spec::Node::Kind::kString);  // YAML 1.2: "yes" is not a boolean
}

TEST_CASE("YAML nodes carry the line and column of their key and value") {
  auto node = spec::ReadYaml("app: demo\nfunctions:\n  api:\n    cpu: 2\n", "app.yaml");
  REQUIRE(node.ok());
  const auto& functions = node->members[1];
  CHECK(functions.key_location.ToString() == "app.yaml:2:1");
  const auto& cpu = functions.value.members[0].value.members[0];
  CHECK(cpu.key_location.ToString() == "app.yaml:4:5");
  CHECK(cpu.value.location.ToString() == "app.yaml:4:10");
}

TEST_CASE("malformed YAML is a parse error at its place") {
  auto result = spec::ReadYaml("app: demo\nfunctions:\n  api: {cpu: 1\n", "app.yaml");
  REQUIRE_FALSE(result.ok());
  CHECK(result.error().code == core::ErrorCode::kParse);
  CHECK(result.error().message.find("invalid YAML") != std::string::npos);
  CHECK(result.error().location.line >= 3);
}

TEST_CASE("duplicate and non-scalar keys are refused") {
  auto duplicate = spec::ReadYaml("app: a\nimages: {}\napp: b\n", "app.yaml");
  REQUIRE_FALSE(duplicate.ok());
  CHECK(duplicate.error().ToString() == "app.yaml:3:1: duplicate key \"app\"");
  auto complex = spec::ReadYaml("? [a, b]\n: c\n", "app.yaml");
  REQUIRE_FALSE(complex.ok());
  CHECK(complex.error().message == "a map key must be a plain string");
}

TEST_CASE("an alias bomb is refused instead of expanded") {
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  char previous = 'a';
  for (char name = 'b'; name <= 'j'; ++name, ++previous) {
    bomb += std::string(1, name) + ": &" + name + " [";
    for (int i = 0; i < 10; ++i) bomb += std::string(i ? ", " : "") + "*" + previous;
    bomb += "]\n";
  }
  auto result = spec::ReadYaml(bomb, "app.yaml");
  REQUIRE_FALSE(result.ok());
  CHECK(result.error().code == core::ErrorCode::kLimit);
  CHECK(result.error().message.find("aliases") != std::string::npos);
}

TEST_CASE("an alias that contains itself is refused, not followed forever") {
  for (const char* text : {"&a [*a]\n", "a: &a\n  b: *a\n"}) {
    auto result = spec::ReadYaml(text, "app.yaml");
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().code == core::ErrorCode::kLimit);
    CHECK(result.error().message.find("an alias that contains itself") != std::string::npos);
  }
}

TEST_CASE("aliases that repeat long strings are bounded by bytes, not just nodes") {
  std::string text = "a: &a \"" + std::string(20'000, 'x') + "\"\nb: &b [";
  for (int i = 0; i < 1000; ++i) text += std::string(i ? ", " : "") + "*a";
  text += "]\n";
  auto result = spec::ReadYaml(text, "app.yaml");
  REQUIRE_FALSE(result.ok());
  CHECK(result.error().message.find("16 MiB") != std::string::npos);
}

TEST_CASE("numbers too large or too long for their type do not crash the reader") {
  auto huge = spec::ReadYaml("a: 1" + std::string(400, '0') + "\nb: 0o77777777777777777777777777\nc: " +
                                 std::string(100'000, '1') + "\n",
                             "app.yaml");
  REQUIRE(huge.ok());
  CHECK(huge->members[0].value.kind == spec::Node::Kind::kNumber);
  CHECK(huge->members[1].value.kind == spec::Node::Kind::kNumber);
  CHECK(huge->members[2].value.kind == spec::Node::Kind::kNumber);
}

TEST_CASE("a second YAML document is an error, not silently ignored") {
  auto result = spec::ReadYaml("app: a\n---\nbogus: 1\n", "app.yaml");
  REQUIRE_FALSE(result.ok());
  CHECK(result.error().message.find("one YAML document") != std::string::npos);
}

TEST_CASE("an empty value is located at its key") {
  auto node = spec::ReadYaml("a:\nb: 1\n", "app.yaml");
  REQUIRE(node.ok());
  CHECK(node->members[0].value.kind == spec::Node::Kind::kNull);
  CHECK(node->members[0].value.location.line == 1);
}

TEST_CASE("a stray comma after a flow collection is refused, not read as endless documents") {
  for (const char* text : {"{},a [*a]\n", "[],\n"}) {
    auto result = spec::ReadYaml(text, "app.yaml");
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().code == core::ErrorCode::kParse);
  }
}
