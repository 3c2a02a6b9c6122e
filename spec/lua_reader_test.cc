#include "spec/lua_reader.h"

#include <catch2/catch.hpp>

#include "spec/spec_test_support.h"

using spec::testing::ErrorText;
using spec::testing::LoadLua;
using spec::testing::TempDir;

namespace {

core::Error ReadError(const std::string& source, const spec::LuaLimits& limits = {}) {
  auto result = spec::ReadLua(source, "app.lua", limits);
  REQUIRE_FALSE(result.ok());
  return result.error();
}

}  // namespace

TEST_CASE("a Lua spec returns tables that read as maps and lists") {
  auto node = spec::ReadLua(
      R"(return { app = "demo", list = { "a", "b" }, n = 3, x = 1.5, yes = true, empty = {} })",
      "app.lua");
  REQUIRE(node.ok());
  REQUIRE(node->kind == spec::Node::Kind::kMap);
  REQUIRE(node->members.size() == 6);
  auto find = [&](const std::string& key) -> const spec::Node& {
    for (const auto& member : node->members) {
      if (member.key == key) return member.value;
    }
    FAIL("no member " << key);
    throw std::logic_error("unreachable");
  };
  CHECK(find("app").text == "demo");
  CHECK(find("list").kind == spec::Node::Kind::kList);
  CHECK(find("list").items.size() == 2);
  CHECK(find("n").kind == spec::Node::Kind::kInteger);
  CHECK(find("x").kind == spec::Node::Kind::kNumber);
  CHECK(find("yes").boolean);
  CHECK(find("empty").empty_table);
}

TEST_CASE("syntax and runtime errors name the Lua line") {
  core::Error syntax = ReadError("return {\n  app = 'x',\n  images = {\n}\n}}\n");
  CHECK(syntax.code == core::ErrorCode::kParse);
  CHECK(syntax.location.file == "app.lua");
  CHECK(syntax.location.line == 5);

  core::Error runtime = ReadError("local t = nil\n\nreturn { app = t.name }\n");
  CHECK(runtime.location.line == 3);
  CHECK(runtime.message.find("attempt to index a nil value") != std::string::npos);

  core::Error raised = ReadError("error('no models configured')\n");
  CHECK(raised.location.line == 1);
  CHECK(raised.message == "no models configured");
  CHECK(raised.ToString() == "app.lua:1: no models configured");
}

TEST_CASE("the sandbox has no way out") {
  for (const char* escape :
       {"io.open('/etc/passwd')", "os.execute('true')", "os.getenv('HOME')", "require('socket')",
        "dofile('/etc/passwd')", "loadfile('/etc/passwd')", "load('return 1')", "debug.getinfo(1)",
        "package.loadlib('libc.so.6', 'system')", "string.dump(print)", "math.random()",
        "collectgarbage('count')"}) {
    INFO(escape);
    core::Error error = ReadError(std::string("return ") + escape);
    CHECK(error.location.line == 1);
    CHECK(error.message.find("attempt to") != std::string::npos);
  }
}

TEST_CASE("precompiled bytecode is refused") {
  core::Error error = ReadError(std::string("\x1bLua\x54\x00", 6));
  CHECK(error.message.find("bytecode") != std::string::npos);
}

TEST_CASE("an endless loop hits the instruction budget and names its line") {
  spec::LuaLimits limits;
  limits.instructions = 1'000'000;
  core::Error error = ReadError("local n = 0\nwhile true do\n  n = n + 1\nend\n", limits);
  CHECK(error.code == core::ErrorCode::kLimit);
  CHECK(error.message.find("more than 1000000 instructions") != std::string::npos);
  CHECK(error.location.line >= 2);
  CHECK(error.location.line <= 4);
}

TEST_CASE("a huge table hits the memory cap") {
  spec::LuaLimits limits;
  limits.memory_bytes = 8u << 20;
  core::Error table = ReadError("local t = {}\nfor i = 1, 1e8 do t[i] = i end\nreturn t\n", limits);
  CHECK(table.code == core::ErrorCode::kLimit);
  CHECK(table.message.find("memory limit of 8 MiB") != std::string::npos);
  core::Error text = ReadError("return { app = string.rep('x', 1 << 30) }", limits);
  CHECK(text.code == core::ErrorCode::kLimit);
}

TEST_CASE("values a spec cannot hold are refused with their path") {
  CHECK(ReadError("return { app = print }").message ==
        "app: a function cannot be part of a spec (use strings, numbers, booleans and tables)");
  CHECK(ReadError("return { images = { [1] = 'a', x = 'b' } }")
            .message.find("images: a table must be a list") != std::string::npos);
  CHECK(ReadError("local t = {}\nt.self = t\nreturn t").code == core::ErrorCode::kLimit);
  CHECK(ReadError("return 42").message.find("must return a table") != std::string::npos);
}

TEST_CASE("print writes to stderr and does not disturb the spec") {
  TempDir dir;
  auto result = LoadLua("print('declaring', 1, true)\nreturn { app = 'demo' }", dir);
  INFO(ErrorText(result));
  CHECK(result.ok());
}

TEST_CASE("a loop declares twenty model endpoints") {
  TempDir dir;
  auto result = LoadLua(R"(
local functions = {}
for i = 1, 20 do
  functions[string.format("model-%02d", i)] = {
    image = "base",
    gpu = i % 2 == 0 and "H100" or { "A100-80GB", "L40S" },
    web = { health_path = "/healthz" },
    max_containers = i,
  }
end
return { app = "fleet", images = { base = { from = "scratch" } }, functions = functions }
)",
                        dir);
  INFO(ErrorText(result));
  REQUIRE(result.ok());
  CHECK(result->functions.size() == 20);
  CHECK(result->functions.at("model-07").max_containers == 7);
  CHECK(result->functions.at("model-08").gpu.at(0).type == "H100");
  CHECK(result->functions.at("model-07").gpu.at(1).type == "L40S");
}

TEST_CASE("validation errors in a Lua spec point at the line that set the field") {
  TempDir dir;
  auto result = LoadLua(R"(local functions = {}
for i = 1, 3 do
  functions["model-" .. i] = {
    image = "base",
    cpu = -1,
  }
end
return {
  app = "fleet",
  images = { base = { from = "scratch" } },
  functions = functions,
}
)",
                        dir);
  REQUIRE_FALSE(result.ok());
  REQUIRE(result.error().size() == 3);
  for (const core::Error& error : result.error()) {
    CHECK(error.location.line == 5);
    CHECK(error.location.column == 5);
    CHECK(error.message.find(".cpu: must be greater than 0") != std::string::npos);
  }
}

TEST_CASE("pcall cannot swallow the instruction budget") {
  spec::LuaLimits limits;
  limits.instructions = 1'000'000;
  core::Error error = ReadError("while true do pcall(function() while true do end end) end\n", limits);
  CHECK(error.code == core::ErrorCode::kLimit);
  core::Error returned =
      ReadError("local ok = pcall(function() while true do end end)\nreturn { app = 'x' }\n", limits);
  CHECK(returned.code == core::ErrorCode::kLimit);
}

TEST_CASE("finalizers are refused: Lua runs them with hooks off, beyond the budget") {
  core::Error error = ReadError("setmetatable({}, {__gc = function() while true do end end})\nreturn {app = 'gc'}\n");
  CHECK(error.location.line == 1);
  CHECK(error.message == "__gc metamethods are not allowed in a spec");
  auto plain = spec::ReadLua("local t = setmetatable({}, {__index = {app = 'x'}})\nreturn {app = t.app}\n", "app.lua");
  CHECK(plain.ok());
}

TEST_CASE("hostile error values do not break error reporting") {
  core::Error overflow = ReadError("error('spec:99999999999: boom', 0)\n");
  CHECK(overflow.message.find("boom") != std::string::npos);
  core::Error long_message = ReadError("error(string.rep('x', 100000))\n");
  CHECK(long_message.location.line == 1);
  core::Error table = ReadError("error({})\n");
  CHECK(table.message == "error object is not a string");
}

TEST_CASE("whole numbers made by Lua's float operators are accepted where integers are") {
  TempDir dir;
  auto result = LoadLua(R"(return {
  app = "demo",
  images = { base = { from = "scratch" } },
  functions = { f = { image = "base", memory = 4 * 1024^3, retries = 6 / 2, max_containers = 10 / 2 } },
})",
                        dir);
  INFO(ErrorText(result));
  REQUIRE(result.ok());
  CHECK(result->functions.at("f").memory == 4ull << 30);
  CHECK(result->functions.at("f").retries.max == 3);
  CHECK(result->functions.at("f").max_containers == 5);
}

TEST_CASE("an error with an empty message still says something") {
  core::Error error = ReadError("error(string.rep('x', 0))\n");
  CHECK(error.message == "the Lua spec raised an error with an empty message");
}
