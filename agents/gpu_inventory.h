#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace agents {

/// One whole GPU of this host, as the agent reports it in `GET /v1/node` and
/// assigns it, exclusively, to one container at a time.
struct Gpu {
  int index = 0;     // the driver's ordinal (CUDA device index)
  std::string type;  // gantry's type name: "H100", "A100-80GB", ... (core/gpu_type.h)
  std::string name;  // the driver's own name: "NVIDIA H100 80GB HBM3"
  std::uint64_t memory_bytes = 0;
  std::string uuid;  // "GPU-…", as nvidia-smi and NVIDIA_VISIBLE_DEVICES spell it
};

/// The GPUs a host offers. `mode` is the agent's `--gpus` option:
/// - "none": no GPU;
/// - "auto": the CUDA driver API, loaded with dlopen("libcuda.so.1") at run
///   time (no link-time dependency); a host without the driver has none;
/// - "fake:H100x8,A100-80GBx2": made-up GPUs for hosts without one (tests),
///   with stable made-up UUIDs; an unknown type or a bad count is an error
///   naming it.
core::Result<std::vector<Gpu>> DiscoverGpus(std::string_view mode);

/// gantry's type name (core/gpu_type.h) for a GPU the driver calls `name`:
/// "NVIDIA H100 80GB HBM3" is "H100", "NVIDIA A100-SXM4-80GB" is "A100-80GB".
/// An A100 whose name does not say its size is told by `memory_bytes`. A name
/// that is none of gantry's types is kept as the driver spells it: the node
/// report still shows what the host has, though no spec can ask for it until
/// core/gpu_type.h lists it.
std::string GpuTypeFromDriverName(std::string_view name, std::uint64_t memory_bytes);

}  // namespace agents
