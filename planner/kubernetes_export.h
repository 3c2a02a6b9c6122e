#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/result.h"
#include "planner/export_manifests.h"
#include "spec/app.h"

namespace planner {

/// What scales a web function on Kubernetes.
enum class KubernetesAutoscaler {
  kKnative,  // a Knative Service: requests-based, down to zero
  kHpa,      // Deployment + Service + HorizontalPodAutoscaler (autoscaling/v2): CPU, at least 1
};

struct KubernetesExportOptions {
  ExportInputs inputs;
  std::string namespace_name;  // metadata.namespace of every object; "" leaves it to kubectl
  KubernetesAutoscaler autoscaler = KubernetesAutoscaler::kKnative;
};

/// The manifests that run `app` on Kubernetes, what `gantry export
/// kubernetes` writes (planner/README.md has the mapping table): per web
/// function a Knative Service (or Deployment, Service and HPA), per job
/// function a suspended Job, per schedule a CronJob, per secret a Secret
/// (with values only when given), per volume a PersistentVolumeClaim. No
/// I/O. Fails (kInvalidArgument) when an object name would break
/// Kubernetes' name rules, or an image has no reference.
core::Result<ExportedManifests> ExportKubernetes(const spec::App& app,
                                                 const KubernetesExportOptions& options);

/// The `nvidia.com/gpu.product` node label values (as NVIDIA's GPU feature
/// discovery writes them) that count as the gantry GPU type `type`.
const std::vector<std::string>& GpuProductLabels(const std::string& type);

}  // namespace planner
