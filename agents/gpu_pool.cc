#include "agents/gpu_pool.h"

namespace agents {

GpuLease::GpuLease(GpuLease&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)), gpus_(std::move(other.gpus_)) {}

GpuLease& GpuLease::operator=(GpuLease&& other) noexcept {
  if (this != &other) {
    Release();
    pool_ = std::exchange(other.pool_, nullptr);
    gpus_ = std::move(other.gpus_);
  }
  return *this;
}

GpuLease::~GpuLease() {
  Release();
}

void GpuLease::Release() {
  if (pool_) pool_->Release(gpus_);
  pool_ = nullptr;
  gpus_.clear();
}

GpuPool::GpuPool(std::vector<Gpu> gpus) : gpus_(std::move(gpus)), busy_(gpus_.size(), false) {}

bool GpuPool::Matches(const Gpu& gpu, const std::string& type) const {
  return type == "any" || gpu.type == type;
}

int GpuPool::CountOf(const std::string& type) const {
  int count = 0;
  for (const Gpu& gpu : gpus_) count += Matches(gpu, type) ? 1 : 0;
  return count;
}

std::map<std::string, std::pair<int, int>> GpuPool::HeldAndFree() {
  std::lock_guard lock(mutex_);
  std::map<std::string, std::pair<int, int>> counts;
  for (std::size_t i = 0; i < gpus_.size(); ++i) {
    auto& [held, free] = counts[gpus_[i].type];
    ++(busy_[i] ? held : free);
  }
  return counts;
}

core::Result<GpuLease> GpuPool::Acquire(const GpuClaim& claim) {
  if (CountOf(claim.type) < claim.count) {
    return core::Error{
        core::ErrorCode::kConflict,
        "this host has fewer than " + std::to_string(claim.count) + " " + claim.type + " GPUs",
        {}};
  }
  std::unique_lock lock(mutex_);
  std::uint64_t ticket = next_ticket_++;
  std::vector<std::size_t> taken;
  released_.wait(lock, [&] {
    if (stopping_) return true;
    if (serving_ != ticket) return false;
    taken.clear();
    for (std::size_t i = 0; i < gpus_.size() && int(taken.size()) < claim.count; ++i) {
      if (!busy_[i] && Matches(gpus_[i], claim.type)) taken.push_back(i);
    }
    return int(taken.size()) == claim.count;
  });
  if (stopping_) return core::Error{core::ErrorCode::kConflict, "the agent is stopping", {}};
  ++serving_;
  std::vector<Gpu> leased;
  for (std::size_t i : taken) {
    busy_[i] = true;
    leased.push_back(gpus_[i]);
  }
  lock.unlock();
  released_.notify_all();  // the next in line may be served by what is left
  return GpuLease(this, std::move(leased));
}

void GpuPool::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  released_.notify_all();
}

void GpuPool::Release(const std::vector<Gpu>& gpus) {
  {
    std::lock_guard lock(mutex_);
    for (const Gpu& gpu : gpus) {
      for (std::size_t i = 0; i < gpus_.size(); ++i) {
        if (gpus_[i].uuid == gpu.uuid) busy_[i] = false;
      }
    }
  }
  released_.notify_all();
}

std::vector<std::string> GpuEnv(const std::vector<Gpu>& gpus) {
  if (gpus.empty()) return {};
  std::string uuids;
  for (const Gpu& gpu : gpus) uuids += (uuids.empty() ? "" : ",") + gpu.uuid;
  return {"NVIDIA_VISIBLE_DEVICES=" + uuids, "CUDA_VISIBLE_DEVICES=" + uuids};
}

std::vector<std::filesystem::path> GpuDeviceNodes(const std::vector<Gpu>& gpus,
                                                  const std::filesystem::path& dev) {
  std::vector<std::filesystem::path> nodes;
  if (gpus.empty()) return nodes;
  auto add = [&](const std::string& name) {
    std::error_code error;
    if (std::filesystem::is_character_file(dev / name, error)) nodes.push_back(dev / name);
  };
  for (const Gpu& gpu : gpus) add("nvidia" + std::to_string(gpu.index));
  for (const char* shared : {"nvidiactl", "nvidia-uvm", "nvidia-uvm-tools"}) add(shared);
  return nodes;
}

}  // namespace agents
