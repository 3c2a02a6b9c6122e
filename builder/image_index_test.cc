#include "builder/image_index.h"

#include <catch2/catch.hpp>

using builder::ChooseManifest;
using builder::ParsePlatform;
using nlohmann::json;

namespace {

json Entry(char fill, const std::string& os, const std::string& architecture,
           const std::string& variant = "") {
  json platform = {{"os", os}, {"architecture", architecture}};
  if (!variant.empty()) platform["variant"] = variant;
  return {{"mediaType", builder::kOciManifestMediaType},
          {"digest", "sha256:" + std::string(64, fill)},
          {"size", 100u},
          {"platform", platform}};
}

}  // namespace

TEST_CASE("ParsePlatform reads os/architecture[/variant]") {
  auto amd64 = ParsePlatform("linux/amd64");
  REQUIRE(amd64.ok());
  CHECK(amd64->os == "linux");
  CHECK(amd64->architecture == "amd64");
  CHECK(amd64->variant.empty());
  CHECK(ParsePlatform("linux/arm64/v8")->ToString() == "linux/arm64/v8");
  for (const char* bad : {"", "linux", "linux/", "/amd64", "linux/arm/v7/x", "linux/arm64/"}) {
    INFO(bad);
    auto parsed = ParsePlatform(bad);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().message.find("OS/ARCHITECTURE") != std::string::npos);
  }
  CHECK(builder::HostPlatform().os == "linux");
}

TEST_CASE("ChooseManifest picks the platform's manifest from an index") {
  json index = {{"schemaVersion", 2},
                {"mediaType", builder::kOciIndexMediaType},
                {"manifests",
                 {Entry('a', "linux", "arm", "v7"), Entry('b', "linux", "arm64"),
                  Entry('c', "linux", "amd64"), Entry('d', "windows", "amd64")}}};
  CHECK(ChooseManifest(index, {"linux", "amd64", ""})->digest == "sha256:" + std::string(64, 'c'));
  CHECK(ChooseManifest(index, {"windows", "amd64", ""})->digest ==
        "sha256:" + std::string(64, 'd'));
  CHECK(ChooseManifest(index, {"linux", "arm", "v7"})->digest == "sha256:" + std::string(64, 'a'));
  // arm64 without a variant is v8.
  CHECK(ChooseManifest(index, {"linux", "arm64", "v8"})->digest ==
        "sha256:" + std::string(64, 'b'));
  auto missing = ChooseManifest(index, {"linux", "s390x", ""});
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message ==
        "the image has no manifest for linux/s390x (it has linux/arm/v7, linux/arm64/v8, "
        "linux/amd64, windows/amd64)");
  // Attestations (no platform, or unknown/unknown) are not images to run.
  json attested = {{"manifests",
                    {{{"mediaType", builder::kOciManifestMediaType},
                      {"digest", "sha256:" + std::string(64, 'e')},
                      {"size", 1u},
                      {"platform", {{"os", "unknown"}, {"architecture", "unknown"}}}},
                     Entry('f', "linux", "amd64")}}};
  CHECK(ChooseManifest(attested, {"linux", "amd64", ""})->digest ==
        "sha256:" + std::string(64, 'f'));
  CHECK_FALSE(ChooseManifest(json::object(), {"linux", "amd64", ""}).ok());
}
