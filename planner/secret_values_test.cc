#include "planner/secret_values.h"

#include <stdlib.h>

#include <catch2/catch.hpp>

#include "tests/temp_dir.h"

namespace planner {
namespace {

spec::App AppWithSecret(const tests::TempDir& dir, std::vector<std::string> from_env,
                        std::string from_file = "") {
  spec::App app;
  app.name = "demo";
  app.context = dir.path();
  app.source = dir.path() / "app.yaml";
  app.secrets["db"] = spec::Secret{"db", std::move(from_env), std::move(from_file)};
  return app;
}

TEST_CASE("from_env variables are read from the environment") {
  tests::TempDir dir;
  setenv("GANTRY_TEST_DB_USER", "ana", 1);
  setenv("GANTRY_TEST_DB_PASSWORD", "hunter2", 1);
  auto secrets =
      ReadSecrets(AppWithSecret(dir, {"GANTRY_TEST_DB_USER", "GANTRY_TEST_DB_PASSWORD"}));
  REQUIRE(secrets.ok());
  CHECK(*secrets ==
        std::map<std::string, SecretPairs>{
            {"db", {{"GANTRY_TEST_DB_PASSWORD", "hunter2"}, {"GANTRY_TEST_DB_USER", "ana"}}}});
}

TEST_CASE("an unset variable is an error naming it and the secret, never a value") {
  tests::TempDir dir;
  setenv("GANTRY_TEST_DB_PASSWORD", "hunter2", 1);
  unsetenv("GANTRY_TEST_DB_HOST");
  auto secrets =
      ReadSecrets(AppWithSecret(dir, {"GANTRY_TEST_DB_PASSWORD", "GANTRY_TEST_DB_HOST"}));
  REQUIRE_FALSE(secrets.ok());
  CHECK(secrets.error().code == core::ErrorCode::kNotFound);
  CHECK(secrets.error().message ==
        "secret db: environment variable GANTRY_TEST_DB_HOST is not set");
  CHECK(secrets.error().ToString().find("hunter2") == std::string::npos);
}

TEST_CASE("a dotenv file is read with comments, export, quotes and = in values") {
  tests::TempDir dir;
  dir.Write("db.env",
            "# the database\n"
            "\n"
            "export TOKEN=abc123\n"
            "URL=https://db.example/?user=ana&mode=rw\n"
            "QUOTED=\"hello world # not a comment\"\n"
            "SINGLE='  spaced  '\n"
            "EMPTY=\n"
            "  SPACED = value with spaces  \n"
            "WINDOWS=yes\r\n"
            "   # an indented comment\n");
  auto secrets = ReadSecrets(AppWithSecret(dir, {}, "db.env"));
  REQUIRE(secrets.ok());
  CHECK(secrets->at("db") == SecretPairs{{"TOKEN", "abc123"},
                                         {"URL", "https://db.example/?user=ana&mode=rw"},
                                         {"QUOTED", "hello world # not a comment"},
                                         {"SINGLE", "  spaced  "},
                                         {"EMPTY", ""},
                                         {"SPACED", "value with spaces"},
                                         {"WINDOWS", "yes"}});
}

TEST_CASE("a malformed dotenv line is an error with its line number and no value") {
  tests::TempDir dir;
  auto error_of = [&](const std::string& text) {
    auto file = dir.Write("db.env", text);
    auto secrets = ReadSecrets(AppWithSecret(dir, {}, "db.env"));
    REQUIRE_FALSE(secrets.ok());
    CHECK(secrets.error().code == core::ErrorCode::kInvalidArgument);
    CHECK(secrets.error().location.file == file.string());
    CHECK(secrets.error().ToString().find("sk-live") == std::string::npos);
    return secrets.error();
  };
  auto pasted = error_of("USER=ana\n# ok\nsk-live-0123456789\n");
  CHECK(pasted.location.line == 3);
  CHECK(pasted.message == "secret db: expected KEY=VALUE on this line");
  auto unterminated = error_of("TOKEN=\"sk-live-0123\n");
  CHECK(unterminated.location.line == 1);
  CHECK(unterminated.message == "secret db: the value of TOKEN has no closing quote");
  auto bad_key = error_of("\n\nsk-live key=1\n");
  CHECK(bad_key.location.line == 3);
  CHECK(bad_key.message == "secret db: the key is not a variable name (letters, digits and _)");
  CHECK(error_of("1ST=x\n").location.line == 1);
}

TEST_CASE("a missing dotenv file is an error naming the secret and the file") {
  tests::TempDir dir;
  auto secrets = ReadSecrets(AppWithSecret(dir, {}, "missing.env"));
  REQUIRE_FALSE(secrets.ok());
  CHECK(secrets.error().code == core::ErrorCode::kNotFound);
  CHECK(secrets.error().location.file == (dir.path() / "missing.env").string());
  CHECK(secrets.error().message.starts_with("secret db: "));
}

TEST_CASE("keys from the file win over the environment") {
  tests::TempDir dir;
  setenv("GANTRY_TEST_TOKEN", "from-env", 1);
  setenv("GANTRY_TEST_OTHER", "kept", 1);
  dir.Write("db.env", "GANTRY_TEST_TOKEN=from-file\n");
  auto secrets =
      ReadSecrets(AppWithSecret(dir, {"GANTRY_TEST_TOKEN", "GANTRY_TEST_OTHER"}, "db.env"));
  REQUIRE(secrets.ok());
  CHECK(secrets->at("db") ==
        SecretPairs{{"GANTRY_TEST_OTHER", "kept"}, {"GANTRY_TEST_TOKEN", "from-file"}});
}

TEST_CASE("SecretValueHash is a keyed HMAC-SHA256 over secret, name and value") {
  std::string hash = SecretValueHash("agent-token", "db", "PASSWORD", "hunter2");
  // printf 'db\0PASSWORD\0hunter2' | openssl dgst -sha256 -hmac agent-token
  CHECK(hash == "hmac-sha256:b6bf275520504b8ae0732c1df6d60d03f29134d4544b7ce2ac6fb5743e1ce9bc");
  CHECK(SecretValueHash("agent-token", "db", "PASSWORD", "hunter2") == hash);
  CHECK(SecretValueHash("other-token", "db", "PASSWORD", "hunter2") != hash);
  CHECK(SecretValueHash("agent-token", "cache", "PASSWORD", "hunter2") != hash);
  CHECK(SecretValueHash("agent-token", "db", "USER", "hunter2") != hash);
  CHECK(SecretValueHash("agent-token", "db", "PASSWORD", "hunter3") != hash);
  // The separators keep "ab"+"c" apart from "a"+"bc".
  CHECK(SecretValueHash("k", "ab", "c", "v") != SecretValueHash("k", "a", "bc", "v"));
  CHECK(SecretValueHash("", "db", "PASSWORD", "hunter2").starts_with("hmac-sha256:"));
}

}  // namespace
}  // namespace planner
