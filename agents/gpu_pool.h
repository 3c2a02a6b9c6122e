#pragma once

#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "agents/desired_state.h"
#include "agents/gpu_inventory.h"
#include "core/result.h"

namespace agents {

class GpuPool;

/// Whole GPUs held by one container, given back to the pool when the lease
/// goes.
class GpuLease {
 public:
  GpuLease() = default;
  GpuLease(GpuLease&& other) noexcept;
  GpuLease& operator=(GpuLease&& other) noexcept;
  GpuLease(const GpuLease&) = delete;
  GpuLease& operator=(const GpuLease&) = delete;
  ~GpuLease();

  const std::vector<Gpu>& gpus() const { return gpus_; }

 private:
  friend class GpuPool;
  GpuLease(GpuPool* pool, std::vector<Gpu> gpus) : pool_(pool), gpus_(std::move(gpus)) {}
  void Release();

  GpuPool* pool_ = nullptr;
  std::vector<Gpu> gpus_;
};

/// The host's GPUs, each assigned to at most one container at a time.
/// Containers asking for more than are free wait, in the order they asked.
class GpuPool {
 public:
  explicit GpuPool(std::vector<Gpu> gpus);

  /// Takes `claim.count` free GPUs of `claim.type` ("any": of any type),
  /// lowest index first, waiting until that many are free. kConflict at once
  /// when the host does not have that many of the type at all.
  core::Result<GpuLease> Acquire(const GpuClaim& claim);

  /// Ends every wait in Acquire (with an error): the agent is stopping.
  void Stop();

  /// GPUs of the type the host has, free or not.
  int CountOf(const std::string& type) const;
  /// Per GPU type of the host: how many are held by containers now, and
  /// how many are free (GET /metrics).
  std::map<std::string, std::pair<int, int>> HeldAndFree();

 private:
  friend class GpuLease;
  void Release(const std::vector<Gpu>& gpus);
  bool Matches(const Gpu& gpu, const std::string& type) const;

  std::vector<Gpu> gpus_;
  std::vector<bool> busy_;  // by position in gpus_
  std::mutex mutex_;
  std::condition_variable released_;
  std::uint64_t next_ticket_ = 0;
  std::uint64_t serving_ = 0;
  bool stopping_ = false;
};

/// What shows a container exactly `gpus` and nothing else: the variables the
/// NVIDIA stack reads (NVIDIA_VISIBLE_DEVICES, CUDA_VISIBLE_DEVICES, by UUID,
/// which keeps their meaning whatever the numbering inside), and the host
/// device nodes to pass in: /dev/nvidiaN of each GPU plus the shared control
/// nodes (/dev/nvidiactl, /dev/nvidia-uvm, /dev/nvidia-uvm-tools), those that
/// exist under `dev` (hosts with fake GPUs have none).
std::vector<std::string> GpuEnv(const std::vector<Gpu>& gpus);
std::vector<std::filesystem::path> GpuDeviceNodes(const std::vector<Gpu>& gpus,
                                                  const std::filesystem::path& dev = "/dev");

}  // namespace agents
