#include "core/quantity.h"

#include <catch2/catch.hpp>

using namespace std::chrono_literals;

TEST_CASE("ParseDuration reads units, combinations, fractions and bare seconds") {
  CHECK(core::ParseDuration("300s").value() == 300s);
  CHECK(core::ParseDuration("5m").value() == 5min);
  CHECK(core::ParseDuration("1h30m").value() == 90min);
  CHECK(core::ParseDuration("1.5h").value() == 90min);
  CHECK(core::ParseDuration("500ms").value() == 500ms);
  CHECK(core::ParseDuration("2d").value() == 48h);
  CHECK(core::ParseDuration("90").value() == 90s);
  CHECK(core::ParseDuration("0.25").value() == 250ms);
}

TEST_CASE("ParseDuration refuses what is not a duration, saying why") {
  for (const char* bad : {"", "s", "5x", "-5s", "5 s", "1h30", "abc", "1e3s", "..5s"}) {
    auto parsed = core::ParseDuration(bad);
    INFO(bad);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().message.find("duration") != std::string::npos);
  }
  CHECK(core::ParseDuration("5x").error().message.find("unknown unit \"x\"") != std::string::npos);
}

TEST_CASE("FormatDuration writes the shortest form that reads back") {
  CHECK(core::FormatDuration(0s) == "0s");
  CHECK(core::FormatDuration(90min) == "1h30m");
  CHECK(core::FormatDuration(48h) == "48h");
  CHECK(core::FormatDuration(1500ms) == "1s500ms");
  for (std::chrono::milliseconds duration : {1ms, 1000ms * 61, 3600000ms * 25, 3723004ms}) {
    CHECK(core::ParseDuration(core::FormatDuration(duration)).value() == duration);
  }
}

TEST_CASE("ParseSize reads binary and decimal suffixes and bare bytes") {
  CHECK(core::ParseSize("512Mi").value() == 512ull << 20);
  CHECK(core::ParseSize("2Gi").value() == 2ull << 30);
  CHECK(core::ParseSize("1G").value() == 1'000'000'000ull);
  CHECK(core::ParseSize("1.5Gi").value() == 3ull << 29);
  CHECK(core::ParseSize("4096").value() == 4096);
  CHECK(core::ParseSize("16Ei").ok() == false);  // 2^64 does not fit
}

TEST_CASE("ParseSize refuses unknown units and fractions of a byte") {
  CHECK(core::ParseSize("2GB").error().message.find("unknown unit \"GB\"") != std::string::npos);
  CHECK(core::ParseSize("0.5").error().message.find("whole number of bytes") != std::string::npos);
  CHECK_FALSE(core::ParseSize("").ok());
  CHECK_FALSE(core::ParseSize("-1Gi").ok());
}

TEST_CASE("FormatSize picks the largest exact unit") {
  CHECK(core::FormatSize(2ull << 30) == "2Gi");
  CHECK(core::FormatSize(1'000'000'000ull) == "1G");
  CHECK(core::FormatSize(1000) == "1k");
  CHECK(core::FormatSize(1001) == "1001");
  CHECK(core::ParseSize(core::FormatSize(3ull << 29)).value() == 3ull << 29);
}

TEST_CASE("FormatSizeForPeople rounds to one decimal in binary units") {
  CHECK(core::FormatSizeForPeople(189) == "189 B");
  CHECK(core::FormatSizeForPeople(1536) == "1.5 KiB");
  CHECK(core::FormatSizeForPeople(5ull << 30) == "5.0 GiB");
}
