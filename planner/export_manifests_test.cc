#include "planner/export_manifests.h"

#include <yaml-cpp/yaml.h>

#include <catch2/catch.hpp>
#include <set>

namespace planner {
namespace {

using Json = nlohmann::ordered_json;

TEST_CASE("strings YAML would read as numbers, booleans or null are quoted") {
  Json document = {{"zero", "0"},       {"count", 3},
                   {"no", "no"},        {"empty", ""},
                   {"null", "null"},    {"flag", true},
                   {"half", "0.5"},     {"cron", "*/5 * * * *"},
                   {"daily", "@daily"}, {"plain", "nvidia.com/gpu"},
                   {"clock", "12:30"}};
  std::string text = ManifestYaml(document);
  CHECK(text.find("zero: \"0\"") != std::string::npos);
  CHECK(text.find("count: 3") != std::string::npos);
  CHECK(text.find("plain: nvidia.com/gpu") != std::string::npos);
  // Read back, each scalar is what it was: the ambiguous strings quoted.
  const std::set<std::string> ambiguous = {"zero", "no", "empty", "null", "half", "clock"};
  YAML::Node read = YAML::Load(text);
  for (const auto& [key, value] : document.items()) {
    INFO(key);
    if (value.is_string()) {
      CHECK(read[key].as<std::string>() == value.get<std::string>());
      if (ambiguous.count(key)) CHECK(read[key].Tag() == "!");
    } else {
      CHECK(read[key].Tag() == "?");
    }
  }
}

TEST_CASE("a stream separates documents with ---") {
  CHECK(ManifestStream({Json{{"a", 1}}, Json{{"b", Json::array({"x"})}}}) ==
        "a: 1\n---\nb:\n  - x\n");
}

TEST_CASE("durations as Go and as whole seconds") {
  using std::chrono::milliseconds;
  CHECK(GoDuration(milliseconds(90'000)) == "90s");
  CHECK(GoDuration(milliseconds(1'500)) == "1500ms");
  CHECK(WholeSeconds(milliseconds(1'500)) == 2);
  CHECK(WholeSeconds(milliseconds(300'000)) == 300);
}

}  // namespace
}  // namespace planner
