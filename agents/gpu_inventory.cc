#include "agents/gpu_inventory.h"

#include <dlfcn.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstddef>
#include <memory>

#include "core/gpu_type.h"
#include "core/hex.h"
#include "core/sha256.h"
#include "core/suggestion.h"
#include "core/text.h"

#if defined(GANTRY_HAVE_CUDA_H)
#include <cuda.h>
#endif

namespace agents {
namespace {

constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;

/// The most GPUs one "fake:" entry may make: far above any real host, low
/// enough that a typo such as "H100x80000000" is an error, not a huge list.
constexpr int kMaxFakeCount = 1024;

/// What a made-up GPU of each of gantry's types looks like: the name its
/// driver gives the real one, and its memory.
struct FakeModel {
  const char* type;
  const char* name;
  std::uint64_t memory_gib;
};

constexpr FakeModel kFakeModels[] = {
    {"T4", "Tesla T4", 16},
    {"L4", "NVIDIA L4", 24},
    {"A10G", "NVIDIA A10G", 24},
    {"A100", "NVIDIA A100-SXM4-40GB", 40},
    {"A100-80GB", "NVIDIA A100-SXM4-80GB", 80},
    {"L40S", "NVIDIA L40S", 48},
    {"H100", "NVIDIA H100 80GB HBM3", 80},
    {"H200", "NVIDIA H200", 141},
    {"B200", "NVIDIA B200", 192},
};

bool SameIgnoringCase(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::toupper(static_cast<unsigned char>(x)) ==
           std::toupper(static_cast<unsigned char>(y));
  });
}

std::string Quote(std::string_view text) {
  return "\"" + std::string(text) + "\"";
}

std::string JoinTypes() {
  std::string joined;
  for (const std::string& type : core::kGpuTypes) {
    if (!joined.empty()) joined += ", ";
    joined += type;
  }
  return joined;
}

core::Error InvalidMode(std::string_view mode, const std::string& message) {
  return core::Error{
      core::ErrorCode::kInvalidArgument, "--gpus " + Quote(mode) + ": " + message, {}};
}

/// "GPU-" and 32 hex digits grouped 8-4-4-4-12, as nvidia-smi prints UUIDs.
std::string FormatUuid(const unsigned char (&bytes)[16]) {
  std::string hex = core::HexEncode(bytes, sizeof bytes);
  return "GPU-" + hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20);
}

/// A made-up GPU's UUID: the first 16 bytes of sha256("fake:INDEX:TYPE"), so
/// that the same --gpus option gives the same UUIDs on every start.
std::string FakeUuid(int index, std::string_view type) {
  std::string digest =
      core::Sha256Digest("fake:" + std::to_string(index) + ":" + std::string(type));
  std::string_view hex = std::string_view(digest).substr(std::string_view("sha256:").size());
  unsigned char bytes[16];
  for (int i = 0; i < 16; ++i) {
    std::from_chars(hex.data() + 2 * i, hex.data() + 2 * i + 2, bytes[i], 16);
  }
  return FormatUuid(bytes);
}

/// "fake:H100x8,A100-80GBx2": each entry is TYPE or TYPExCOUNT.
core::Result<std::vector<Gpu>> FakeGpus(std::string_view mode) {
  std::string_view list = mode.substr(std::string_view("fake:").size());
  if (core::TrimSpaces(list).empty()) {
    return InvalidMode(mode, "names no GPU; write TYPExCOUNT entries, as in \"fake:H100x8\"");
  }
  std::vector<Gpu> gpus;
  std::size_t start = 0;
  while (start <= list.size()) {
    std::size_t comma = list.find(',', start);
    std::size_t end = comma == std::string_view::npos ? list.size() : comma;
    std::string_view entry = core::TrimSpaces(list.substr(start, end - start));
    start = end + 1;
    if (entry.empty()) return InvalidMode(mode, "has an empty entry (a stray comma?)");

    std::string_view type = entry;
    int count = 1;
    if (std::size_t x = entry.find_last_of("xX"); x != std::string_view::npos) {
      type = entry.substr(0, x);
      std::string_view count_text = entry.substr(x + 1);
      if (count_text.empty()) {
        return InvalidMode(mode, "the entry " + Quote(entry) + " has no count after 'x'");
      }
      auto [rest, failure] =
          std::from_chars(count_text.data(), count_text.data() + count_text.size(), count);
      if (failure == std::errc::result_out_of_range) {
        count = kMaxFakeCount + 1;
      } else if (failure != std::errc() || rest != count_text.data() + count_text.size() ||
                 count_text.front() == '-') {
        return InvalidMode(
            mode, "the count " + Quote(count_text) + " in " + Quote(entry) + " is not a number");
      }
      if (count < 1) {
        return InvalidMode(mode, "the count in " + Quote(entry) + " must be at least 1");
      }
      if (count > kMaxFakeCount) {
        return InvalidMode(mode, "the count in " + Quote(entry) + " must be at most " +
                                     std::to_string(kMaxFakeCount));
      }
    }
    if (type.empty()) return InvalidMode(mode, "the entry " + Quote(entry) + " has no GPU type");

    const FakeModel* model = nullptr;
    for (const FakeModel& candidate : kFakeModels) {
      if (SameIgnoringCase(candidate.type, type)) model = &candidate;
    }
    if (model == nullptr) {
      std::string message = "unknown GPU type " + Quote(type);
      if (auto suggestion = core::ClosestMatch(type, core::kGpuTypes)) {
        message += "; did you mean " + Quote(*suggestion) + "?";
      }
      return InvalidMode(mode, message + " (known: " + JoinTypes() + ")");
    }
    for (int i = 0; i < count; ++i) {
      Gpu gpu;
      gpu.index = static_cast<int>(gpus.size());
      gpu.type = model->type;
      gpu.name = model->name;
      gpu.memory_bytes = model->memory_gib * kGiB;
      gpu.uuid = FakeUuid(gpu.index, gpu.type);
      gpus.push_back(std::move(gpu));
    }
  }
  return gpus;
}

// The few driver API entry points DiscoverGpus calls, as function pointer
// types for dlsym. With the CUDA Toolkit's cuda.h they are spelled with its
// own types; without it, with the same types written out (on Linux CUresult
// is an int-sized enum, CUdevice an int, CUuuid 16 bytes, CUDAAPI empty).
#if defined(GANTRY_HAVE_CUDA_H)
using CudaResult = CUresult;
using CudaDevice = CUdevice;
using CudaUuid = CUuuid;
constexpr CudaResult kCudaSuccess = CUDA_SUCCESS;
constexpr CudaResult kCudaNoDevice = CUDA_ERROR_NO_DEVICE;
using CuInit = CUresult(CUDAAPI*)(unsigned int flags);
using CuDeviceGetCount = CUresult(CUDAAPI*)(int* count);
using CuDeviceGet = CUresult(CUDAAPI*)(CUdevice* device, int ordinal);
using CuDeviceGetName = CUresult(CUDAAPI*)(char* name, int length, CUdevice device);
using CuDeviceTotalMem = CUresult(CUDAAPI*)(std::size_t* bytes, CUdevice device);
using CuDeviceGetUuid = CUresult(CUDAAPI*)(CUuuid* uuid, CUdevice device);
using CuGetErrorName = CUresult(CUDAAPI*)(CUresult error, const char** name);
#else
using CudaResult = int;
using CudaDevice = int;
struct CudaUuid {
  char bytes[16];
};
constexpr CudaResult kCudaSuccess = 0;
constexpr CudaResult kCudaNoDevice = 100;  // CUDA_ERROR_NO_DEVICE
using CuInit = int (*)(unsigned int flags);
using CuDeviceGetCount = int (*)(int* count);
using CuDeviceGet = int (*)(int* device, int ordinal);
using CuDeviceGetName = int (*)(char* name, int length, int device);
using CuDeviceTotalMem = int (*)(std::size_t* bytes, int device);
using CuDeviceGetUuid = int (*)(CudaUuid* uuid, int device);
using CuGetErrorName = int (*)(int error, const char** name);
#endif
static_assert(sizeof(CudaUuid) == 16);

template <typename Function>
Function Symbol(void* library, const char* name) {
  return reinterpret_cast<Function>(dlsym(library, name));
}

/// The GPUs the CUDA driver sees, in its ordinal order.
core::Result<std::vector<Gpu>> CudaGpus() {
  struct LibraryCloser {
    void operator()(void* library) const { dlclose(library); }
  };
  std::unique_ptr<void, LibraryCloser> library(dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL));
  if (library == nullptr) return std::vector<Gpu>{};  // no driver: no GPU

  auto init = Symbol<CuInit>(library.get(), "cuInit");
  auto get_count = Symbol<CuDeviceGetCount>(library.get(), "cuDeviceGetCount");
  auto get_device = Symbol<CuDeviceGet>(library.get(), "cuDeviceGet");
  auto get_name = Symbol<CuDeviceGetName>(library.get(), "cuDeviceGetName");
  auto total_memory = Symbol<CuDeviceTotalMem>(library.get(), "cuDeviceTotalMem_v2");
  auto get_uuid = Symbol<CuDeviceGetUuid>(library.get(), "cuDeviceGetUuid_v2");
  if (get_uuid == nullptr) get_uuid = Symbol<CuDeviceGetUuid>(library.get(), "cuDeviceGetUuid");
  auto error_name = Symbol<CuGetErrorName>(library.get(), "cuGetErrorName");
  if (init == nullptr || get_count == nullptr || get_device == nullptr || get_name == nullptr ||
      total_memory == nullptr || get_uuid == nullptr) {
    return core::Error{core::ErrorCode::kIo,
                       "libcuda.so.1 lacks the driver API calls gantry needs (cuInit, "
                       "cuDeviceGetCount, cuDeviceGet, cuDeviceGetName, cuDeviceTotalMem_v2, "
                       "cuDeviceGetUuid); the NVIDIA driver is too old",
                       {}};
  }
  // Kept loaded from here on: cuInit starts the driver's threads, and libcuda
  // is not made to be unloaded. dlopen counts references, so a later
  // discovery reuses this one.
  library.release();

  auto failure = [&](const char* call, CudaResult result) {
    std::string text = "the CUDA driver's " + std::string(call) + " failed with error " +
                       std::to_string(static_cast<int>(result));
    const char* name = nullptr;
    if (error_name != nullptr && error_name(result, &name) == kCudaSuccess && name != nullptr) {
      text += " (" + std::string(name) + ")";
    }
    return core::Error{core::ErrorCode::kIo, text, {}};
  };

  CudaResult result = init(0);
  if (result == kCudaNoDevice) return std::vector<Gpu>{};  // a driver but no GPU
  if (result != kCudaSuccess) return failure("cuInit", result);
  int count = 0;
  if (result = get_count(&count); result != kCudaSuccess)
    return failure("cuDeviceGetCount", result);

  std::vector<Gpu> gpus;
  for (int ordinal = 0; ordinal < count; ++ordinal) {
    CudaDevice device{};
    if (result = get_device(&device, ordinal); result != kCudaSuccess) {
      return failure("cuDeviceGet", result);
    }
    char name[256] = {};
    if (result = get_name(name, static_cast<int>(sizeof(name)) - 1, device);
        result != kCudaSuccess) {
      return failure("cuDeviceGetName", result);
    }
    std::size_t memory_bytes = 0;
    if (result = total_memory(&memory_bytes, device); result != kCudaSuccess) {
      return failure("cuDeviceTotalMem_v2", result);
    }
    CudaUuid uuid{};
    if (result = get_uuid(&uuid, device); result != kCudaSuccess) {
      return failure("cuDeviceGetUuid", result);
    }
    unsigned char uuid_bytes[16];
    std::copy(std::begin(uuid.bytes), std::end(uuid.bytes), uuid_bytes);

    Gpu gpu;
    gpu.index = ordinal;
    gpu.name = name;
    gpu.memory_bytes = memory_bytes;
    gpu.type = GpuTypeFromDriverName(gpu.name, gpu.memory_bytes);
    gpu.uuid = FormatUuid(uuid_bytes);
    gpus.push_back(std::move(gpu));
  }
  return gpus;
}

}  // namespace

std::string GpuTypeFromDriverName(std::string_view name, std::uint64_t memory_bytes) {
  // Whole words only, so that "GH200" is no H200 and "L40" no L4.
  std::vector<std::string> words;
  std::string word;
  for (char c : name) {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      word += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    } else if (!word.empty()) {
      words.push_back(std::move(word));
      word.clear();
    }
  }
  if (!word.empty()) words.push_back(std::move(word));
  auto has = [&](std::string_view wanted) {
    return std::find(words.begin(), words.end(), wanted) != words.end();
  };

  if (has("B200")) return "B200";
  if (has("H200")) return "H200";
  if (has("H100")) return "H100";
  if (has("A100")) {
    if (has("80GB")) return "A100-80GB";
    if (has("40GB")) return "A100";
    // Between the two sizes (what the driver reports is a little under each).
    return memory_bytes > 60 * kGiB ? "A100-80GB" : "A100";
  }
  if (has("L40S")) return "L40S";
  if (has("A10G")) return "A10G";
  if (has("L4")) return "L4";
  if (has("T4")) return "T4";
  return std::string(name);
}

core::Result<std::vector<Gpu>> DiscoverGpus(std::string_view mode) {
  if (mode == "none") return std::vector<Gpu>{};
  if (mode == "auto") return CudaGpus();
  if (mode.starts_with("fake:")) return FakeGpus(mode);
  std::string message = "unknown --gpus mode " + Quote(mode);
  if (auto suggestion = core::ClosestMatch(mode, {"none", "auto", "fake:"})) {
    message += "; did you mean " + Quote(*suggestion) + "?";
  }
  return core::Error{core::ErrorCode::kInvalidArgument,
                     message + " (expected \"none\", \"auto\" or \"fake:TYPExCOUNT,...\")",
                     {}};
}

}  // namespace agents
