#include "agents/api_token.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "tests/temp_dir.h"

TEST_CASE("LoadOrCreateToken makes a 64-hex-digit token only its owner can read") {
  tests::TempDir dir;
  auto token = agents::LoadOrCreateToken(dir.path(), std::nullopt);
  REQUIRE(token.ok());
  CHECK(token->size() == 64);
  CHECK(token->find_first_not_of("0123456789abcdef") == std::string::npos);

  struct stat info {};
  REQUIRE(stat((dir.path() / "token").c_str(), &info) == 0);
  CHECK((info.st_mode & 07777) == 0600);
  // Nothing is left behind but the token itself.
  CHECK(std::distance(std::filesystem::directory_iterator(dir.path()),
                      std::filesystem::directory_iterator()) == 1);
}

TEST_CASE("LoadOrCreateToken returns the same token on the next start") {
  tests::TempDir dir;
  auto first = agents::LoadOrCreateToken(dir.path(), std::nullopt);
  auto second = agents::LoadOrCreateToken(dir.path(), std::nullopt);
  REQUIRE(first.ok());
  REQUIRE(second.ok());
  CHECK(*first == *second);

  tests::TempDir other;
  CHECK(agents::LoadOrCreateToken(other.path(), std::nullopt).value() != *first);
}

TEST_CASE("LoadOrCreateToken takes a given token file, without its surrounding whitespace") {
  tests::TempDir dir;
  auto file = dir.Write("given-token", "  s3cret-token\n");
  auto token = agents::LoadOrCreateToken(dir.path() / "data", file);
  REQUIRE(token.ok());
  CHECK(*token == "s3cret-token");
  CHECK_FALSE(std::filesystem::exists(dir.path() / "data" / "token"));
}

TEST_CASE("LoadOrCreateToken refuses an empty token file") {
  tests::TempDir dir;
  auto file = dir.Write("given-token", " \n\t\n");
  auto token = agents::LoadOrCreateToken(dir.path(), file);
  REQUIRE_FALSE(token.ok());
  CHECK(token.error().code == core::ErrorCode::kInvalidArgument);
  CHECK(token.error().location.file == file.string());

  dir.Write("token", "");
  CHECK_FALSE(agents::LoadOrCreateToken(dir.path(), std::nullopt).ok());
}

TEST_CASE("LoadOrCreateToken refuses a token of more than one line") {
  tests::TempDir dir;
  auto file = dir.Write("given-token", "one\ntwo\n");
  CHECK_FALSE(agents::LoadOrCreateToken(dir.path(), file).ok());
}

TEST_CASE("LoadOrCreateToken reports a token file that does not exist") {
  tests::TempDir dir;
  auto token = agents::LoadOrCreateToken(dir.path(), dir.path() / "missing");
  REQUIRE_FALSE(token.ok());
  CHECK(token.error().code == core::ErrorCode::kNotFound);
}

TEST_CASE("AuthorizationMatches accepts the bearer token and nothing else") {
  const std::string token = "0123456789abcdef";
  CHECK(agents::AuthorizationMatches("Bearer 0123456789abcdef", token));
  CHECK(agents::AuthorizationMatches("bearer 0123456789abcdef", token));
  CHECK_FALSE(agents::AuthorizationMatches("Bearer 0123456789abcdeF", token));
  CHECK_FALSE(agents::AuthorizationMatches("Bearer 1123456789abcdef", token));
  // Wrong scheme.
  CHECK_FALSE(agents::AuthorizationMatches("Basic 0123456789abcdef", token));
  CHECK_FALSE(agents::AuthorizationMatches("Bearer0123456789abcdef", token));
  CHECK_FALSE(agents::AuthorizationMatches("0123456789abcdef", token));
  // Missing.
  CHECK_FALSE(agents::AuthorizationMatches("", token));
  CHECK_FALSE(agents::AuthorizationMatches("Bearer", token));
  CHECK_FALSE(agents::AuthorizationMatches("Bearer ", token));
  // Different length.
  CHECK_FALSE(agents::AuthorizationMatches("Bearer 0123456789abcde", token));
  CHECK_FALSE(agents::AuthorizationMatches("Bearer 0123456789abcdef0", token));
  CHECK_FALSE(agents::AuthorizationMatches("Bearer " + token + token, token));
}

TEST_CASE("AuthorizationMatches never matches an empty token") {
  CHECK_FALSE(agents::AuthorizationMatches("Bearer ", ""));
  CHECK_FALSE(agents::AuthorizationMatches("Bearer", ""));
  CHECK_FALSE(agents::AuthorizationMatches("", ""));
}

TEST_CASE("SecretMatches compares whole secrets, and an empty secret matches nothing") {
  CHECK(agents::SecretMatches("0123456789abcdef", "0123456789abcdef"));
  CHECK_FALSE(agents::SecretMatches("0123456789abcde", "0123456789abcdef"));
  CHECK_FALSE(agents::SecretMatches("0123456789abcdef0", "0123456789abcdef"));
  CHECK_FALSE(agents::SecretMatches("0123456789abcdeF", "0123456789abcdef"));
  CHECK_FALSE(agents::SecretMatches("", ""));
}
