#include "agents/gpu_pool.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>

#include "tests/skip.h"
#include "tests/temp_dir.h"

namespace agents {
namespace {

std::vector<Gpu> FakeGpus(const std::string& mode) {
  auto gpus = DiscoverGpus(mode);
  REQUIRE(gpus.ok());
  return *gpus;
}

TEST_CASE("GPUs are leased whole and to one holder at a time", "[gpu_pool]") {
  GpuPool pool(FakeGpus("fake:H100x2,A100x1"));
  CHECK(pool.CountOf("H100") == 2);
  CHECK(pool.CountOf("any") == 3);
  CHECK(pool.CountOf("T4") == 0);

  auto first = pool.Acquire({"H100", 1});
  REQUIRE(first.ok());
  auto second = pool.Acquire({"H100", 1});
  REQUIRE(second.ok());
  REQUIRE(first->gpus().size() == 1);
  REQUIRE(second->gpus().size() == 1);
  CHECK(first->gpus()[0].uuid != second->gpus()[0].uuid);

  // A third H100 is not to be had until one comes back.
  std::atomic<bool> acquired = false;
  std::string third_uuid;
  std::thread waiter([&] {
    auto third = pool.Acquire({"H100", 1});  // Catch2's REQUIRE is for the main thread only
    if (third.ok() && third->gpus().size() == 1) third_uuid = third->gpus()[0].uuid;
    acquired = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CHECK_FALSE(acquired);
  std::string returned = first->gpus()[0].uuid;
  *first = GpuLease();  // gives the GPU back
  waiter.join();
  CHECK(acquired);
  CHECK(third_uuid == returned);
}

TEST_CASE("a claim the host can never meet fails at once", "[gpu_pool]") {
  GpuPool pool(FakeGpus("fake:H100x1"));
  auto lease = pool.Acquire({"H100", 2});
  REQUIRE_FALSE(lease.ok());
  CHECK(lease.error().code == core::ErrorCode::kConflict);
  CHECK_FALSE(pool.Acquire({"A100", 1}).ok());
  CHECK(pool.Acquire({"any", 1}).ok());
}

TEST_CASE("a container sees its GPUs by UUID and only their device nodes", "[gpu_pool]") {
  auto gpus = FakeGpus("fake:H100x3");
  std::vector<Gpu> mine = {gpus[1], gpus[2]};
  auto env = GpuEnv(mine);
  REQUIRE(env.size() == 2);
  CHECK(env[0] == "NVIDIA_VISIBLE_DEVICES=" + gpus[1].uuid + "," + gpus[2].uuid);
  CHECK(env[1] == "CUDA_VISIBLE_DEVICES=" + gpus[1].uuid + "," + gpus[2].uuid);
  CHECK(GpuEnv({}).empty());

  // A /dev of the test's own: /dev/null's device number stands in for a GPU's.
  if (!tests::RootOrSkip("device nodes (mknod) need root")) return;
  tests::TempDir dev("gantry-gpu-dev");
  for (const char* name : {"nvidia0", "nvidia1", "nvidia2", "nvidiactl"}) {
    REQUIRE(mknod((dev.path() / name).c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0);
  }
  auto nodes = GpuDeviceNodes(mine, dev.path());
  CHECK(nodes == std::vector<std::filesystem::path>{dev.path() / "nvidia1", dev.path() / "nvidia2",
                                                    dev.path() / "nvidiactl"});
  CHECK(GpuDeviceNodes({}, dev.path()).empty());
}

}  // namespace
}  // namespace agents
