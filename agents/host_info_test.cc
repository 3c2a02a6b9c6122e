#include "agents/host_info.h"

#include <catch2/catch.hpp>

#include "core/atomic_file.h"
#include "tests/temp_dir.h"

TEST_CASE("DetectHost keeps the host id it made in the data dir") {
  tests::TempDir dir;
  auto first = agents::DetectHost(dir.path());
  REQUIRE(first.ok());
  CHECK(first->host_id.size() == 32);
  CHECK(first->host_id.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(core::ReadFile(dir.path() / "host-id").value() == first->host_id + "\n");

  auto second = agents::DetectHost(dir.path());
  REQUIRE(second.ok());
  CHECK(second->host_id == first->host_id);
}

TEST_CASE("DetectHost makes a different host id for another data dir") {
  tests::TempDir one;
  tests::TempDir other;
  auto first = agents::DetectHost(one.path());
  auto second = agents::DetectHost(other.path());
  REQUIRE(first.ok());
  REQUIRE(second.ok());
  CHECK(first->host_id != second->host_id);
}

TEST_CASE("DetectHost creates a data dir that does not exist yet") {
  tests::TempDir dir;
  auto info = agents::DetectHost(dir.path() / "agent" / "data");
  REQUIRE(info.ok());
  CHECK(std::filesystem::exists(dir.path() / "agent" / "data" / "host-id"));
}

TEST_CASE("DetectHost refuses a host-id file that holds no host id") {
  tests::TempDir dir;
  dir.Write("host-id", "not an id\n");
  auto info = agents::DetectHost(dir.path());
  REQUIRE_FALSE(info.ok());
  CHECK(info.error().location.file == (dir.path() / "host-id").string());
  // The file is left as it was: replacing it would make this a new host.
  CHECK(core::ReadFile(dir.path() / "host-id").value() == "not an id\n");
}

TEST_CASE("DetectHost reports this host's facts") {
  tests::TempDir dir;
  auto info = agents::DetectHost(dir.path());
  REQUIRE(info.ok());
  CHECK_FALSE(info->hostname.empty());
  CHECK(info->cpus >= 1);
  CHECK(info->memory_bytes > 0);
  CHECK_FALSE(info->kernel.empty());
}
