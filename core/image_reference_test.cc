#include "core/image_reference.h"

#include <catch2/catch.hpp>

TEST_CASE("ParseImageReference normalises as docker does") {
  CHECK(core::ParseImageReference("busybox").value().ToString() ==
        "docker.io/library/busybox:latest");
  CHECK(core::ParseImageReference("team/app:v1").value().ToString() == "docker.io/team/app:v1");
  auto local = core::ParseImageReference("127.0.0.1:5000/team/app").value();
  CHECK(local.domain == "127.0.0.1:5000");
  CHECK(local.repository == "team/app");
  CHECK(local.tag == "latest");
  CHECK(core::ParseImageReference("localhost/app:1.0").value().domain == "localhost");
  std::string digest = "sha256:" + std::string(64, 'a');
  auto pinned = core::ParseImageReference("ghcr.io/org/model@" + digest).value();
  CHECK(pinned.tag.empty());
  CHECK(pinned.digest == digest);
  CHECK(pinned.ToString() == "ghcr.io/org/model@" + digest);
}

TEST_CASE("ParseImageReference refuses malformed references") {
  for (const char* bad :
       {"", "Busybox", "a//b", "app:", "app:bad tag", "app@sha256:123", "-app", "app/"}) {
    INFO(bad);
    auto parsed = core::ParseImageReference(bad);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().message.find("invalid image reference") != std::string::npos);
  }
}
