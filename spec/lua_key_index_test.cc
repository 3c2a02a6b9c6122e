#include "spec/lua_key_index.h"

#include <catch2/catch.hpp>

TEST_CASE("LuaKeyIndex finds keys written as names and as strings") {
  spec::LuaKeyIndex index(R"(return {
  app = "demo",
  functions = {
    api = { cpu = 1 },
    ["web-ui"] = {
      cpu = 2,
    },
  },
})",
                          "app.lua");
  CHECK(index.Locate({"app"}).ToString() == "app.lua:2:3");
  CHECK(index.Locate({"functions", "api", "cpu"}).ToString() == "app.lua:4:13");
  CHECK(index.Locate({"functions", "web-ui", "cpu"}).ToString() == "app.lua:6:7");
  CHECK(index.Locate({"functions", "web-ui"}).ToString() == "app.lua:5:5");
}

TEST_CASE("LuaKeyIndex skips strings, comments and comparisons") {
  spec::LuaKeyIndex index(R"(-- cpu = 1 in a comment
--[[ cpu = 2
in a block comment ]]
local s = "cpu = 3"
local l = [==[ cpu = 4 ]==]
if x == y then end
return { cpu = 5 })",
                          "app.lua");
  CHECK(index.Locate({"cpu"}).line == 7);
  CHECK(index.Locate({"x"}).line == 0);
}

TEST_CASE("LuaKeyIndex falls back to the deepest key it can find") {
  spec::LuaKeyIndex index(
      "local functions = {}\nfor i = 1, 3 do\n  functions['m' .. i] = { gpu = 'H100' }\nend\n",
      "app.lua");
  CHECK(index.Locate({"functions", "m1", "gpu"}).line == 3);
  CHECK(index.Locate({"functions", "m1"}).line == 1);
  CHECK(index.Locate({"nothing"}).ToString() == "app.lua");
}
