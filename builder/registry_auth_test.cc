#include "builder/registry_auth.h"

#include <catch2/catch.hpp>

using builder::DockerConfigCredentials;
using builder::ParseAuthChallenges;

TEST_CASE("ParseAuthChallenges reads the distribution token challenge") {
  auto challenges = ParseAuthChallenges(
      R"(Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:team/app:pull,push")");
  REQUIRE(challenges.size() == 1);
  CHECK(challenges[0].scheme == "bearer");
  CHECK(challenges[0].parameters.at("realm") == "https://auth.example.com/token");
  CHECK(challenges[0].parameters.at("service") == "registry.example.com");
  // A quoted value keeps its commas.
  CHECK(challenges[0].parameters.at("scope") == "repository:team/app:pull,push");
}

TEST_CASE("ParseAuthChallenges reads several challenges, tokens and escapes") {
  auto challenges = ParseAuthChallenges(
      R"(Basic realm="Registry \"main\"", BEARER realm=https://auth/token, service=reg , error="insufficient_scope")");
  REQUIRE(challenges.size() == 2);
  CHECK(challenges[0].scheme == "basic");
  CHECK(challenges[0].parameters.at("realm") == "Registry \"main\"");
  CHECK(challenges[1].scheme == "bearer");
  CHECK(challenges[1].parameters.at("realm") == "https://auth/token");
  CHECK(challenges[1].parameters.at("service") == "reg");
  CHECK(challenges[1].parameters.at("error") == "insufficient_scope");

  CHECK(ParseAuthChallenges("").empty());
  CHECK(ParseAuthChallenges("Basic")[0].scheme == "basic");
  auto unterminated = ParseAuthChallenges(R"(Bearer realm="https://auth)");
  REQUIRE(unterminated.size() == 1);
  CHECK(unterminated[0].parameters.empty());
}

TEST_CASE("DockerConfigCredentials finds a registry's auths entry") {
  const char* config = R"({
    "auths": {
      "https://index.docker.io/v1/": {"auth": "aHViOmh1YnNlY3JldA=="},
      "127.0.0.1:5000": {"auth": "YWxpY2U6czNjcjN0OndpdGg6Y29sb25z"},
      "https://registry.example.com/v2/": {"username": "bob", "password": "pw"},
      "empty.example.com": {}
    },
    "credsStore": "desktop"
  })";
  auto local = DockerConfigCredentials(config, "127.0.0.1:5000", "/home/u/.docker/config.json");
  REQUIRE(local.ok());
  REQUIRE(local->has_value());
  CHECK((*local)->username == "alice");
  CHECK((*local)->password == "s3cr3t:with:colons");  // split at the first colon only
  CHECK((*local)->source == "/home/u/.docker/config.json");

  auto hub = DockerConfigCredentials(config, "docker.io", "c");
  REQUIRE(hub.ok());
  REQUIRE(hub->has_value());
  CHECK((*hub)->username == "hub");
  CHECK((*hub)->password == "hubsecret");

  auto fields = DockerConfigCredentials(config, "registry.example.com", "c");
  REQUIRE(fields.ok());
  REQUIRE(fields->has_value());
  CHECK((*fields)->username == "bob");

  for (const char* none : {"127.0.0.1:5001", "empty.example.com", "ghcr.io"}) {
    INFO(none);
    auto missing = DockerConfigCredentials(config, none, "c");
    REQUIRE(missing.ok());
    CHECK_FALSE(missing->has_value());
  }
  auto no_auths = DockerConfigCredentials(R"({"credsStore": "pass"})", "ghcr.io", "c");
  REQUIRE(no_auths.ok());
  CHECK_FALSE(no_auths->has_value());
}

TEST_CASE("DockerConfigCredentials refuses a malformed config without printing secrets") {
  auto not_json = DockerConfigCredentials("{", "ghcr.io", "/c.json");
  REQUIRE_FALSE(not_json.ok());
  CHECK(not_json.error().ToString().find("/c.json") == 0);
  auto bad_auth = DockerConfigCredentials(R"({"auths": {"ghcr.io": {"auth": "bm9jb2xvbg=="}}})",
                                          "ghcr.io", "c");
  REQUIRE_FALSE(bad_auth.ok());
  CHECK(bad_auth.error().message.find("not base64 of \"user:password\"") != std::string::npos);
  CHECK(bad_auth.error().message.find("bm9jb2xvbg") == std::string::npos);
}

TEST_CASE("DockerConfigHelper names a registry's credHelpers entry, else the credsStore") {
  const char* config = R"({
    "credHelpers": {"gcr.io": "gcloud", "https://127.0.0.1:5000": "local"},
    "credsStore": "desktop"
  })";
  auto named = [&](const std::string& registry) {
    auto helper = builder::DockerConfigHelper(config, registry, "c");
    REQUIRE(helper.ok());
    return helper->value_or("(none)");
  };
  CHECK(named("gcr.io") == "gcloud");
  CHECK(named("127.0.0.1:5000") == "local");
  CHECK(named("ghcr.io") == "desktop");
  auto none = builder::DockerConfigHelper(R"({"auths": {}})", "ghcr.io", "c");
  REQUIRE(none.ok());
  CHECK_FALSE(none->has_value());
  auto bad = builder::DockerConfigHelper(R"({"credHelpers": {"gcr.io": 7}})", "gcr.io", "/c.json");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().ToString() ==
        "/c.json: the `credHelpers` entry of gcr.io is not a helper's name");
}
