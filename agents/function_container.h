#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "agents/agent_records.h"
#include "agents/desired_state.h"
#include "agents/function_logs.h"
#include "agents/gpu_pool.h"
#include "agents/host_limits.h"
#include "agents/image_layers.h"
#include "agents/metrics.h"
#include "agents/runc_runtime.h"
#include "agents/runtime_spec.h"
#include "agents/usage_ledger.h"
#include "core/result.h"

namespace agents {

/// A function of the desired state with what this host adds to it: its
/// secrets' values, its volumes' folders. Everything a function's container
/// is made from besides what one call or one web container adds. Made by
/// the agent from the desired state; read by the call runner and the web
/// functions.
struct PreparedFunction {
  std::string app;
  FunctionState function;
  std::vector<std::string> secret_env;  // "KEY=VALUE" from the function's secrets
  std::map<std::string, std::filesystem::path> volume_dirs;  // mount path -> host folder

  bool operator==(const PreparedFunction&) const = default;
};

/// The parts of the host a function's containers (job calls and web
/// containers alike) are made with.
struct ContainerParts {
  ImageLayers* layers = nullptr;
  const RuncRuntime* runtime = nullptr;
  AgentRecords* records = nullptr;
  GpuPool* gpus = nullptr;
  FunctionLogs* logs = nullptr;
  UsageLedger* ledger = nullptr;  // null: containers are not metered
  bool pass_gpu_devices = false;  // real GPUs: their /dev nodes go into the container
  HostLimits limits;
  std::filesystem::path containers_dir;  // DATA_DIR/containers
  std::filesystem::path calls_dir;       // DATA_DIR/calls
  AgentMetrics* metrics = nullptr;       // null: nothing is counted
};

/// What one container adds to its function: the call's arguments, and
/// variables set after the function's and its secrets' (a call's env
/// overrides, a web container's port).
struct ContainerInputs {
  std::vector<std::string> args;
  std::vector<std::string> env;  // "KEY=VALUE"
};

/// The container spec of one container of `function` over `rootfs` (a root
/// made from `image`): the function's command (or the image's entrypoint,
/// plus its cmd when no args are given) followed by the args; env from the
/// image, the function, its secrets, `inputs.env`, then the GPUs (later ones
/// winning, so that nothing widens a container's view past its lease); the
/// image's workdir and user (names looked up in the image's own /etc/passwd
/// and /etc/group, read without leaving the root); the function's memory and
/// CPU limits and volumes; with `pass_gpu_devices` (real GPUs) the host's CDI
/// spec for the GPUs when it has one, else their /dev nodes.
core::Result<ContainerSpec> FunctionContainerSpec(
    const std::string& container_id, const std::filesystem::path& rootfs,
    const PreparedImage& image, const PreparedFunction& function, const ContainerInputs& inputs,
    const std::vector<Gpu>& gpus, bool pass_gpu_devices);

/// Meters one container of `function` holding `gpus`, with its function's
/// CPU and memory, for as long as the meter lives (usage_ledger.h); `call`
/// is the job call it runs ("" for a web container). Nothing without a
/// ledger in `parts`.
UsageMeter MeterContainer(const ContainerParts& parts, const PreparedFunction& function,
                          const std::string& container_id, const std::string& call,
                          const std::vector<Gpu>& gpus);

}  // namespace agents
