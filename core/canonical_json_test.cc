#include "core/canonical_json.h"

#include <catch2/catch.hpp>

using nlohmann::json;

TEST_CASE("CanonicalJson sorts keys and drops white space") {
  json value = json::parse(R"({ "b": 1, "a": {"d": [1, 2], "c": "x"} })");
  CHECK(core::CanonicalJson(value) == R"({"a":{"c":"x","d":[1,2]},"b":1})");
}

TEST_CASE("CanonicalJson writes whole floats as integers and keeps fractions") {
  CHECK(core::CanonicalJson(json{{"cpu", 2.0}}) == R"({"cpu":2})");
  CHECK(core::CanonicalJson(json{{"cpu", 1.5}}) == R"({"cpu":1.5})");
  CHECK(core::CanonicalJson(json{{"cpu", 0.1}}) == R"({"cpu":0.1})");
  CHECK(core::CanonicalJson(json::array({1e300})) == "[1e+300]");
}

TEST_CASE("CanonicalJson keeps UTF-8 and replaces invalid bytes instead of failing") {
  CHECK(core::CanonicalJson(json("h\xc3\xa9")) == "\"h\xc3\xa9\"");
  CHECK(core::CanonicalJson(json(std::string("a\xff"))) == "\"a\xef\xbf\xbd\"");
}

TEST_CASE("CanonicalDigest is equal for equal values whatever their key order") {
  CHECK(core::CanonicalDigest(json::parse(R"({"a":1,"b":2.0})")) ==
        core::CanonicalDigest(json::parse(R"({"b":2,"a":1})")));
  CHECK(core::CanonicalDigest(json{{"a", 1}}) != core::CanonicalDigest(json{{"a", 2}}));
}
