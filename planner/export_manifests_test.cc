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

TEST_CASE("a manifest gantry exported for an app is known by its labels") {
  const std::string manifest =
      "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: shop-report\n  labels:\n"
      "    app.kubernetes.io/name: shop\n    app.kubernetes.io/managed-by: gantry\n";
  CHECK(IsExportedManifestOf(manifest, "shop"));
  CHECK_FALSE(IsExportedManifestOf(manifest, "other"));
  std::string by_hand = manifest;
  by_hand.replace(by_hand.find("gantry"), 6, "helm");
  CHECK_FALSE(IsExportedManifestOf(by_hand, "shop"));
  CHECK_FALSE(IsExportedManifestOf("kind: ConfigMap\nmetadata: {name: x}\n", "shop"));
  CHECK_FALSE(IsExportedManifestOf("- a list\n- not a manifest\n", "shop"));
  CHECK_FALSE(IsExportedManifestOf("{not: [yaml\n", "shop"));
  CHECK_FALSE(IsExportedManifestOf("", "shop"));
}

}  // namespace
}  // namespace planner
