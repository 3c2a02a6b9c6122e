#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "agents/gpu_inventory.h"
#include "agents/runtime_spec.h"
#include "core/result.h"

namespace agents {

/// The kind of the CDI specs that `nvidia-ctk cdi generate` writes (and the
/// NVIDIA container toolkit's nvidia-cdi-refresh keeps current), whose
/// devices are whole GPUs named by index ("0"), by UUID ("GPU-…") and "all".
inline constexpr char kNvidiaGpuCdiKind[] = "nvidia.com/gpu";

/// Where CDI specs are, lowest priority first (the CDI registry's default:
/// /var/run/cdi, written at boot, wins over /etc/cdi).
inline const std::vector<std::filesystem::path> kDefaultCdiSpecDirs = {"/etc/cdi", "/var/run/cdi"};

/// What a container must get to use some GPUs, as the host's CDI specs say
/// it (the Container Device Interface, github.com/cncf-tags/
/// container-device-interface, SPEC.md: a spec's top-level `containerEdits`
/// and each device's): the driver's libraries and binaries bind-mounted in,
/// its device nodes, hooks that refresh the container's linker cache and
/// make symlinks, and env. It is used in place of GpuEnv and GpuDeviceNodes
/// when the host has a spec for every GPU a container holds.
struct CdiEdits {
  std::vector<std::string> env;          // "KEY=VALUE", later entries winning
  std::vector<DeviceNode> device_nodes;  // one per container path
  std::vector<BindMount> mounts;         // one per container path
  std::vector<Hook> hooks;               // in the order the specs list them
};

/// The edits that give a container exactly `gpus`, from the CDI specs of
/// kind "nvidia.com/gpu" in `spec_dirs`.
///
/// Every *.json, *.yaml and *.yml file in the folders is read (a folder that
/// does not exist has none); one that is not JSON or YAML, or is a spec of
/// that kind that breaks the CDI format (a missing `cdiVersion`, a
/// `cdiVersion` other than 0.x or 1.x, a device without a name, a field of
/// the wrong type, a relative path, an unknown hook name, a mount that is not
/// a bind mount), is a kParse error naming the file. Specs of other kinds are
/// not looked into beyond their `kind`. Fields gantry does not use
/// (`annotations`, `intelRdt`, `netDevices`, `additionalGids`) are ignored.
///
/// Devices are found as the CDI registry finds them: by name across all
/// specs of the kind, a spec in a later folder overriding a device of the
/// same name in an earlier one; two specs in the same folder naming the same
/// device are a kConflict error naming both. Each GPU's device is the one
/// named by its UUID, else (specs made with --device-name-strategy=index
/// only) by its index; "all" is never used, so a container sees only its
/// own GPUs.
///
/// The result is, as a CDI runtime injects it, each spec's top-level edits
/// once (when the first of its devices is taken), each GPU's device edits
/// after them, then `CUDA_VISIBLE_DEVICES` set to the GPUs' UUIDs (see
/// ApplyCdiEdits). A device node or mount at a container path already there
/// replaces the earlier one; a later env entry for a variable replaces the
/// earlier one.
///
/// std::nullopt, for the caller to fall back on GpuEnv and GpuDeviceNodes,
/// when `gpus` is empty, there is no spec of the kind, or one of the GPUs
/// has no device in them.
core::Result<std::optional<CdiEdits>> CdiEditsForGpus(
    const std::vector<Gpu>& gpus,
    const std::vector<std::filesystem::path>& spec_dirs = kDefaultCdiSpecDirs);

/// Puts `edits` into `spec`, where GpuEnv's entries would go (after the
/// image's, the function's and the secrets' env, before the call's own
/// overrides; and `spec->devices` is then left without GpuDeviceNodes):
/// - env entries replace the same variable's earlier value or are appended.
///   NVIDIA_VISIBLE_DEVICES is the spec's (nvidia-ctk writes "void": the
///   devices are injected by CDI, so the legacy nvidia-container-runtime-hook
///   must do nothing, and an image's "all" must not make a tool believe it
///   has every GPU); gantry's own NVIDIA_VISIBLE_DEVICES is not set.
///   CUDA_VISIBLE_DEVICES (the UUIDs, added by CdiEditsForGpus) is kept: it
///   names exactly the GPUs whose nodes are in the container, so CUDA sees the
///   same devices with or without it, numbered in the lease's order.
/// - device nodes and mounts replace those of `spec` at the same container
///   path (as a CDI runtime does) or are appended;
/// - hooks are appended.
void ApplyCdiEdits(const CdiEdits& edits, ContainerSpec* spec);

}  // namespace agents
