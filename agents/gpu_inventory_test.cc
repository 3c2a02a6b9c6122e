#include "agents/gpu_inventory.h"

#include <catch2/catch.hpp>
#include <regex>
#include <set>

#include "core/gpu_type.h"

namespace {

constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;

std::string ErrorOf(std::string_view mode) {
  auto gpus = agents::DiscoverGpus(mode);
  REQUIRE_FALSE(gpus.ok());
  CHECK(gpus.error().code == core::ErrorCode::kInvalidArgument);
  return gpus.error().message;
}

}  // namespace

TEST_CASE("DiscoverGpus with none offers no GPU") {
  auto gpus = agents::DiscoverGpus("none");
  REQUIRE(gpus.ok());
  CHECK(gpus->empty());
}

TEST_CASE("DiscoverGpus makes up the fake GPUs it is told") {
  auto gpus = agents::DiscoverGpus("fake:H100x8,A100-80GBx2");
  REQUIRE(gpus.ok());
  REQUIRE(gpus->size() == 10);
  std::set<std::string> uuids;
  const std::regex uuid_format("GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}");
  for (int i = 0; i < 10; ++i) {
    const agents::Gpu& gpu = (*gpus)[i];
    CHECK(gpu.index == i);
    CHECK(gpu.type == (i < 8 ? "H100" : "A100-80GB"));
    CHECK(gpu.memory_bytes == 80 * kGiB);
    CHECK(std::regex_match(gpu.uuid, uuid_format));
    uuids.insert(gpu.uuid);
  }
  CHECK((*gpus)[0].name == "NVIDIA H100 80GB HBM3");
  CHECK((*gpus)[9].name == "NVIDIA A100-SXM4-80GB");
  CHECK(uuids.size() == 10);
}

TEST_CASE("DiscoverGpus gives fake GPUs the same UUIDs every time") {
  auto first = agents::DiscoverGpus("fake:L4x2");
  auto second = agents::DiscoverGpus("fake:L4x2");
  REQUIRE(first.ok());
  REQUIRE(second.ok());
  CHECK((*first)[0].uuid == (*second)[0].uuid);
  CHECK((*first)[1].uuid == (*second)[1].uuid);
  CHECK((*first)[0].uuid != (*first)[1].uuid);
}

TEST_CASE("DiscoverGpus reads a fake type without a count as one GPU") {
  auto gpus = agents::DiscoverGpus("fake:H100");
  REQUIRE(gpus.ok());
  REQUIRE(gpus->size() == 1);
  CHECK((*gpus)[0].type == "H100");
}

TEST_CASE("DiscoverGpus can fake every GPU type, each as its driver would name it") {
  const std::vector<std::pair<std::string, std::uint64_t>> memory = {
      {"H100", 80}, {"A100-80GB", 80}, {"A100", 40},  {"T4", 16},   {"L4", 24},
      {"A10G", 24}, {"L40S", 48},      {"H200", 141}, {"B200", 192}};
  REQUIRE(memory.size() == core::kGpuTypes.size());
  for (const auto& [type, gib] : memory) {
    INFO(type);
    auto gpus = agents::DiscoverGpus("fake:" + type);
    REQUIRE(gpus.ok());
    REQUIRE(gpus->size() == 1);
    const agents::Gpu& gpu = gpus->front();
    CHECK(gpu.type == type);
    CHECK(gpu.memory_bytes == gib * kGiB);
    CHECK(agents::GpuTypeFromDriverName(gpu.name, gpu.memory_bytes) == type);
  }
}

TEST_CASE("DiscoverGpus spells a fake type as gantry does, whatever its case") {
  auto gpus = agents::DiscoverGpus("fake:a100-80gbx1");
  REQUIRE(gpus.ok());
  CHECK(gpus->front().type == "A100-80GB");
}

TEST_CASE("DiscoverGpus names an unknown fake type and suggests the closest") {
  std::string message = ErrorOf("fake:H10x2");
  CHECK_THAT(message, Catch::Contains("\"H10\""));
  CHECK_THAT(message, Catch::Contains("did you mean \"H100\"?"));
  CHECK_THAT(ErrorOf("fake:H100x1,Voodoo2x1"), Catch::Contains("\"Voodoo2\""));
}

TEST_CASE("DiscoverGpus rejects bad fake counts, naming the entry") {
  CHECK_THAT(ErrorOf("fake:H100x0"),
             Catch::Contains("\"H100x0\"") && Catch::Contains("at least 1"));
  CHECK_THAT(ErrorOf("fake:H100xeight"),
             Catch::Contains("\"eight\"") && Catch::Contains("not a number"));
  CHECK_THAT(ErrorOf("fake:H100x-1"), Catch::Contains("\"-1\""));
  CHECK_THAT(ErrorOf("fake:H100x2y"), Catch::Contains("\"2y\""));
  CHECK_THAT(ErrorOf("fake:H100x"), Catch::Contains("\"H100x\""));
  CHECK_THAT(ErrorOf("fake:x4"), Catch::Contains("\"x4\""));
  CHECK_THAT(ErrorOf("fake:H100x99999999999999999999"), Catch::Contains("at most"));
}

TEST_CASE("DiscoverGpus rejects empty fake entries") {
  CHECK_THAT(ErrorOf("fake:"), Catch::Contains("names no GPU"));
  CHECK_THAT(ErrorOf("fake:H100x1,,L4x1"), Catch::Contains("empty entry"));
  CHECK_THAT(ErrorOf("fake:H100x1,"), Catch::Contains("empty entry"));
}

TEST_CASE("DiscoverGpus rejects an unknown mode, naming it") {
  std::string message = ErrorOf("autp");
  CHECK_THAT(message, Catch::Contains("\"autp\""));
  CHECK_THAT(message, Catch::Contains("did you mean \"auto\"?"));
  CHECK_THAT(ErrorOf(""), Catch::Contains("unknown --gpus mode"));
}

TEST_CASE("DiscoverGpus auto lists what the CUDA driver sees, or nothing without one") {
  // On a host without libcuda.so.1 this is an empty list; on a GPU host, the
  // real GPUs. Either way it is no error.
  auto gpus = agents::DiscoverGpus("auto");
  REQUIRE(gpus.ok());
  for (std::size_t i = 0; i < gpus->size(); ++i) {
    const agents::Gpu& gpu = (*gpus)[i];
    INFO(gpu.name);
    CHECK(gpu.index == static_cast<int>(i));
    CHECK(gpu.memory_bytes > 0);
    CHECK(gpu.uuid.starts_with("GPU-"));
    CHECK(gpu.uuid.size() == 40);
    CHECK_FALSE(gpu.type.empty());
  }
}

TEST_CASE("GpuTypeFromDriverName maps the drivers' names to gantry's types") {
  CHECK(agents::GpuTypeFromDriverName("NVIDIA H100 80GB HBM3", 80 * kGiB) == "H100");
  CHECK(agents::GpuTypeFromDriverName("NVIDIA H100 PCIe", 80 * kGiB) == "H100");
  CHECK(agents::GpuTypeFromDriverName("NVIDIA A100-SXM4-80GB", 80 * kGiB) == "A100-80GB");
  CHECK(agents::GpuTypeFromDriverName("NVIDIA A100 80GB PCIe", 80 * kGiB) == "A100-80GB");
  CHECK(agents::GpuTypeFromDriverName("NVIDIA A100-SXM4-40GB", 40 * kGiB) == "A100");
  CHECK(agents::GpuTypeFromDriverName("NVIDIA A100-PCIE-40GB", 40 * kGiB) == "A100");
  CHECK(agents::GpuTypeFromDriverName("Tesla T4", 15 * kGiB) == "T4");
  CHECK(agents::GpuTypeFromDriverName("NVIDIA L4", 22 * kGiB) == "L4");
  CHECK(agents::GpuTypeFromDriverName("NVIDIA A10G", 22 * kGiB) == "A10G");
  CHECK(agents::GpuTypeFromDriverName("NVIDIA L40S", 44 * kGiB) == "L40S");
  CHECK(agents::GpuTypeFromDriverName("NVIDIA H200", 140 * kGiB) == "H200");
  CHECK(agents::GpuTypeFromDriverName("NVIDIA B200", 178 * kGiB) == "B200");
}

TEST_CASE("GpuTypeFromDriverName tells an A100's size by its memory when the name does not") {
  CHECK(agents::GpuTypeFromDriverName("NVIDIA A100", 79 * kGiB) == "A100-80GB");
  CHECK(agents::GpuTypeFromDriverName("NVIDIA A100", 39 * kGiB) == "A100");
}

TEST_CASE("GpuTypeFromDriverName keeps the driver's name for GPUs gantry does not know") {
  CHECK(agents::GpuTypeFromDriverName("NVIDIA GH200 480GB", 96 * kGiB) == "NVIDIA GH200 480GB");
  CHECK(agents::GpuTypeFromDriverName("NVIDIA L40", 44 * kGiB) == "NVIDIA L40");
  CHECK(agents::GpuTypeFromDriverName("NVIDIA A10", 22 * kGiB) == "NVIDIA A10");
  CHECK(agents::GpuTypeFromDriverName("NVIDIA GeForce RTX 4090", 24 * kGiB) ==
        "NVIDIA GeForce RTX 4090");
}
