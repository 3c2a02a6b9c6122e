#include "agents/secret_box.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "core/atomic_file.h"
#include "tests/temp_dir.h"

namespace {

agents::SecretBox BoxIn(const tests::TempDir& dir, const std::string& name = "secret.key") {
  auto box = agents::SecretBox::OpenOrCreate(dir.path() / name);
  REQUIRE(box.ok());
  return std::move(box).value();
}

/// The sealed value with its `letter_index`th base64 letter (after "gcm1:")
/// changed: still well-formed, but no longer the bytes that were sealed.
std::string Tampered(const std::string& sealed, std::size_t letter_index) {
  std::string tampered = sealed;
  char& letter = tampered[5 + letter_index];
  letter = letter == 'A' ? 'B' : 'A';
  return tampered;
}

}  // namespace

TEST_CASE("SecretBox makes a 32-byte key only its owner can read, and keeps it") {
  tests::TempDir dir;
  agents::SecretBox box = BoxIn(dir);
  auto key = core::ReadFile(dir.path() / "secret.key");
  REQUIRE(key.ok());
  CHECK(key->size() == 32);
  struct stat info {};
  REQUIRE(stat((dir.path() / "secret.key").c_str(), &info) == 0);
  CHECK((info.st_mode & 07777) == 0600);

  // A second box on the same key file opens what the first sealed.
  auto sealed = box.Seal("value");
  REQUIRE(sealed.ok());
  CHECK(BoxIn(dir).Open(*sealed).value() == "value");
  CHECK(core::ReadFile(dir.path() / "secret.key").value() == *key);
}

TEST_CASE("SecretBox opens what it sealed") {
  tests::TempDir dir;
  agents::SecretBox box = BoxIn(dir);
  const std::string binary("\0\x01\xff\x80 zero\0bytes", 16);
  for (const std::string& plaintext :
       {std::string(), std::string("hunter2"), binary, std::string(100'000, 'x')}) {
    auto sealed = box.Seal(plaintext);
    REQUIRE(sealed.ok());
    CHECK(sealed->starts_with("gcm1:"));
    CHECK(sealed->find(plaintext.empty() ? "\x01" : plaintext) == std::string::npos);
    auto opened = box.Open(*sealed);
    REQUIRE(opened.ok());
    CHECK(*opened == plaintext);
  }
}

TEST_CASE("SecretBox seals the same value differently each time") {
  tests::TempDir dir;
  agents::SecretBox box = BoxIn(dir);
  auto first = box.Seal("same");
  auto second = box.Seal("same");
  REQUIRE(first.ok());
  REQUIRE(second.ok());
  CHECK(*first != *second);
  // 12-byte nonce + 4 bytes + 16-byte tag = 32 bytes: 44 base64 letters.
  CHECK(first->size() == 5 + 44);
}

TEST_CASE("SecretBox refuses a changed, truncated or foreign sealed value") {
  tests::TempDir dir;
  agents::SecretBox box = BoxIn(dir);
  const std::string plaintext = "the launch codes";
  auto sealed = box.Seal(plaintext);
  REQUIRE(sealed.ok());

  std::vector<std::string> bad = {
      Tampered(*sealed, 0),                       // in the nonce
      Tampered(*sealed, 20),                      // in the ciphertext
      Tampered(*sealed, sealed->size() - 5 - 4),  // in the tag
      sealed->substr(0, sealed->size() - 4),      // one base64 group short
      "gcm1:",
      "gcm1:AAAA",
      "gcm2:" + sealed->substr(5),
      sealed->substr(5),
      *sealed + "=",
      *sealed + " ",
      "gcm1:not base64!",
  };
  for (const std::string& value : bad) {
    INFO(value);
    auto opened = box.Open(value);
    REQUIRE_FALSE(opened.ok());
    CHECK(opened.error().message.find(plaintext) == std::string::npos);
  }

  tests::TempDir other;
  auto opened = BoxIn(other).Open(*sealed);
  REQUIRE_FALSE(opened.ok());
  CHECK_THAT(opened.error().message, Catch::Contains("another key"));
  CHECK(opened.error().message.find(plaintext) == std::string::npos);
}

TEST_CASE("SecretBox refuses a key file of the wrong size") {
  tests::TempDir dir;
  dir.Write("short.key", std::string(16, 'k'));
  auto box = agents::SecretBox::OpenOrCreate(dir.path() / "short.key");
  REQUIRE_FALSE(box.ok());
  CHECK(box.error().code == core::ErrorCode::kInvalidArgument);
  CHECK(box.error().message.find("kkkk") == std::string::npos);
  // The bad key is left for its owner to look at, not replaced.
  CHECK(core::ReadFile(dir.path() / "short.key").value() == std::string(16, 'k'));
}
