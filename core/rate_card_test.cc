#include "core/rate_card.h"

#include <catch2/catch.hpp>

#include "core/gpu_type.h"
#include "tests/temp_dir.h"

namespace core {
namespace {

TEST_CASE("every GPU type has a default price") {
  RateCard rates = RateCard::Defaults();
  for (const std::string& type : core::kGpuTypes) {
    INFO(type);
    CHECK(rates.gpu_per_second.contains(type));
  }
  CHECK(rates.gpu_per_second.size() == core::kGpuTypes.size());
  CHECK(rates.gpu_per_second.at("H100") == 0.001097);
  CHECK(rates.cpu_core_per_second == 0.0000131);
  CHECK(rates.memory_gib_per_second == 0.00000222);
}

TEST_CASE("a rates file overrides the defaults it names") {
  tests::TempDir dir;
  auto file = dir.Write("rates.yaml", "gpu: {H100: 0.002, T4: 0}\ncpu_core: 0.00001\n");
  auto rates = RateCard::Load(file);
  REQUIRE(rates.ok());
  CHECK(rates->gpu_per_second.at("H100") == 0.002);
  CHECK(rates->gpu_per_second.at("T4") == 0);
  CHECK(rates->gpu_per_second.at("A100") == 0.000583);
  CHECK(rates->cpu_core_per_second == 0.00001);
  CHECK(rates->memory_gib_per_second == 0.00000222);

  SECTION("an empty file changes nothing") {
    auto empty = RateCard::Load(dir.Write("empty.yaml", ""));
    REQUIRE(empty.ok());
    CHECK(empty->gpu_per_second == RateCard::Defaults().gpu_per_second);
  }
}

TEST_CASE("a missing rates file means the defaults") {
  tests::TempDir dir;
  auto rates = RateCard::Load(dir.path() / "rates.yaml");
  REQUIRE(rates.ok());
  CHECK(rates->gpu_per_second == RateCard::Defaults().gpu_per_second);
  CHECK(rates->cpu_core_per_second == RateCard::Defaults().cpu_core_per_second);
}

TEST_CASE("bad rates files are errors naming the file and key") {
  tests::TempDir dir;
  auto error_of = [&](const std::string& text) {
    auto file = dir.Write("rates.yaml", text);
    auto rates = RateCard::Load(file);
    REQUIRE_FALSE(rates.ok());
    CHECK(rates.error().location.file == file.string());
    return rates.error();
  };
  auto unknown = error_of("cpu_core: 0.00001\nstorage_gib: 0.1\n");
  CHECK(unknown.code == ErrorCode::kInvalidArgument);
  CHECK(unknown.location.line == 2);
  CHECK(unknown.message == "unknown key \"storage_gib\" (expected gpu, cpu_core or memory_gib)");
  CHECK(error_of("gpu:\n  H1000: 0.1\n").message ==
        "gpu.H1000: unknown GPU type (known: T4, L4, A10G, A100, A100-80GB, L40S, H100, H200, "
        "B200)");
  CHECK(error_of("cpu_core: -0.1\n").message == "cpu_core: a price cannot be negative");
  CHECK(error_of("gpu: {H100: -1}\n").message == "gpu.H100: a price cannot be negative");
  CHECK(error_of("memory_gib: cheap\n").message ==
        "memory_gib: expected a price in USD per second");
  CHECK(error_of("gpu: [H100]\n").message == "gpu: expected a map of GPU type to price");
  CHECK(error_of("- 1\n").message == "expected a map with gpu, cpu_core and memory_gib");
  CHECK(error_of("gpu: {H100: 1\n").code == ErrorCode::kParse);
}

TEST_CASE("a container's price is its GPUs, cores and memory, each by the second") {
  RateCard rates = RateCard::Defaults();
  // By hand: 2 x 0.001097 + 4 x 0.0000131 + 16 x 0.00000222 = 0.00228192 USD a second.
  CHECK(rates.PerSecond("H100", 2, 4, 16ull << 30) == Approx(0.00228192));
  CHECK(rates.PerSecond("", 0, 0.5, 1ull << 30) == Approx(0.00000877));
  // A type without a price counts as nothing; without GPUs the type is not looked at.
  rates.gpu_per_second.erase("T4");
  CHECK_FALSE(rates.HasGpuPrice("T4"));
  CHECK(rates.PerSecond("T4", 1, 1, 0) == Approx(0.0000131));
  CHECK(rates.PerSecond("H100", 0, 1, 0) == Approx(0.0000131));
}

TEST_CASE(
    "FormatUsd writes dollars with thousands separators and cents, FormatUsdFine a few cents "
    "finer") {
  CHECK(FormatUsd(0) == "$0.00");
  CHECK(FormatUsd(0.05) == "$0.05");
  CHECK(FormatUsd(100) == "$100.00");
  CHECK(FormatUsd(1234.5) == "$1,234.50");
  CHECK(FormatUsd(999.999) == "$1,000.00");
  CHECK(FormatUsd(1234567.891) == "$1,234,567.89");
  CHECK(FormatUsd(-12.3) == "-$12.30");
  CHECK(FormatUsdFine(0.0512) == "$0.0512");
  CHECK(FormatUsdFine(0.025) == "$0.0250");
  CHECK(FormatUsdFine(12.5) == "$12.50");
  CHECK(FormatUsdFine(1234.5) == "$1,234.50");
}

}  // namespace
}  // namespace core
