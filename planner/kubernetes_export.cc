#include "planner/kubernetes_export.h"

#include <algorithm>
#include <cmath>
#include <regex>
#include <set>

#include "core/base64.h"
#include "core/quantity.h"

namespace planner {
namespace {

using Json = nlohmann::ordered_json;

// The port a web function's container listens on: Knative's default, also
// passed in the function's port variable.
constexpr int kContainerPort = 8080;
// Kubernetes object names (DNS labels), and CronJob names, to which the
// controller appends 11 characters for each Job.
constexpr std::size_t kMaxNameLength = 63;
constexpr std::size_t kMaxCronJobNameLength = 52;
// The HPA's target when it has only CPU to go by.
constexpr int kCpuUtilizationPercent = 80;
// The size a volume's claim asks for: the spec has none.
constexpr const char* kVolumeSize = "10Gi";
constexpr const char* kGpuResource = "nvidia.com/gpu";
constexpr const char* kGpuProductLabel = "nvidia.com/gpu.product";

// Product names as NVIDIA's GPU feature discovery labels nodes (the
// marketing name with dashes), for every SKU of each gantry type.
const std::map<std::string, std::vector<std::string>> kGpuProducts = {
    {"T4", {"Tesla-T4"}},
    {"L4", {"NVIDIA-L4"}},
    {"A10G", {"NVIDIA-A10G"}},
    {"A100", {"NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-PCIE-40GB"}},
    {"A100-80GB", {"NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-80GB-PCIe"}},
    {"L40S", {"NVIDIA-L40S"}},
    {"H100", {"NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-PCIe", "NVIDIA-H100-NVL"}},
    {"H200", {"NVIDIA-H200", "NVIDIA-H200-NVL"}},
    {"B200", {"NVIDIA-B200"}},
};

// "250m" or "4": a CPU quantity in whole millicores.
std::string CpuQuantity(double cores) {
  auto millicores = std::llround(cores * 1000);
  if (millicores % 1000 == 0) return std::to_string(millicores / 1000);
  return std::to_string(millicores) + "m";
}

const char* ConcurrencyPolicy(core::Overlap overlap) {
  switch (overlap) {
    case core::Overlap::kAllow:
      return "Allow";
    case core::Overlap::kReplace:
      return "Replace";
    case core::Overlap::kSkip:
      break;
  }
  return "Forbid";
}

// A period as cron, when one fires at the same instants: periods that
// divide an hour or a day, anchored at the epoch like gantry's, in UTC.
std::optional<std::string> PeriodAsCron(std::chrono::milliseconds every) {
  if (every.count() % 60'000 != 0) return std::nullopt;
  long long minutes = every.count() / 60'000;
  if (minutes == 1) return "* * * * *";
  if (minutes < 60 && 60 % minutes == 0) return "*/" + std::to_string(minutes) + " * * * *";
  if (minutes == 60) return "0 * * * *";
  if (minutes % 60 == 0 && 24 % (minutes / 60) == 0) {
    long long hours = minutes / 60;
    return hours == 24 ? "0 0 * * *" : "0 */" + std::to_string(hours) + " * * *";
  }
  return std::nullopt;
}

// gantry's cron with day-of-week 7 (Sunday) written as 0, which is all
// Kubernetes' parser takes; nullopt when a 7 is left in a step.
std::optional<std::string> KubernetesCron(const std::string& cron) {
  if (cron.empty() || cron[0] == '@') return cron;
  auto last_space = cron.rfind(' ');
  std::string day_of_week = cron.substr(last_space + 1);
  static const std::regex kSunday(R"((^|,)7(?=,|$))");
  static const std::regex kToSunday(R"((^|,)([0-6])-7(?=,|$))");
  day_of_week = std::regex_replace(day_of_week, kSunday, "$010");
  day_of_week = std::regex_replace(day_of_week, kToSunday, "$01$2-6,0");
  if (day_of_week.find('7') != std::string::npos) return std::nullopt;
  return cron.substr(0, last_space + 1) + day_of_week;
}

class KubernetesExporter {
 public:
  KubernetesExporter(const spec::App& app, const KubernetesExportOptions& options)
      : app_(app), options_(options) {}

  core::Result<ExportedManifests> Export() {
    result_.warnings = UnexportableFieldWarnings(app_);
    for (const auto& [name, secret] : app_.secrets) {
      if (auto status = AddSecret(secret); !status.ok()) return status.error();
    }
    for (const auto& [name, volume] : app_.volumes) {
      if (auto status = AddVolume(volume); !status.ok()) return status.error();
    }
    for (const auto& [name, function] : app_.functions) {
      auto status = function.web ? AddWebFunction(function) : AddJobFunction(function);
      if (!status.ok()) return status.error();
    }
    if (!knative_features_.empty()) {
      std::string features;
      for (const std::string& feature : knative_features_)
        features += (features.empty() ? "" : ", ") + feature;
      result_.warnings.push_back("knative: these Services need the features " + features +
                                 " enabled in Knative's config-features");
    }
    return std::move(result_);
  }

 private:
  // APP-NAME, checked against Kubernetes' rules for an object named so.
  core::Result<std::string> ObjectName(const std::string& name, const std::string& path,
                                       std::size_t max_length = kMaxNameLength,
                                       bool dns_1035 = false) const {
    std::string object = app_.name + "-" + name;
    if (object.size() > max_length) {
      return core::Error{core::ErrorCode::kInvalidArgument,
                         path + ": the Kubernetes name " + object + " is longer than " +
                             std::to_string(max_length) +
                             " characters: shorten the app's or its name",
                         {}};
    }
    if (dns_1035 && !std::isalpha(static_cast<unsigned char>(object[0]))) {
      return core::Error{core::ErrorCode::kInvalidArgument,
                         path + ": the Kubernetes Service name " + object +
                             " must start with a letter: rename the app",
                         {}};
    }
    return object;
  }

  Json Labels(const std::string& component) const {
    return Json{{"app.kubernetes.io/name", app_.name},
                {"app.kubernetes.io/component", component},
                {"app.kubernetes.io/managed-by", "gantry"}};
  }

  Json SelectorLabels(const std::string& component) const {
    return Json{{"app.kubernetes.io/name", app_.name}, {"app.kubernetes.io/component", component}};
  }

  Json Metadata(const std::string& object_name, const std::string& component) const {
    Json metadata = {{"name", object_name}};
    if (!options_.namespace_name.empty()) metadata["namespace"] = options_.namespace_name;
    metadata["labels"] = Labels(component);
    return metadata;
  }

  void Warn(std::string warning) { result_.warnings.push_back(std::move(warning)); }

  core::Status AddSecret(const spec::Secret& secret) {
    auto name = ObjectName(secret.name, "secrets." + secret.name);
    if (!name) return name.error();
    if (!options_.inputs.secret_values) {
      std::string keys;
      for (const std::string& variable : secret.from_env)
        keys += (keys.empty() ? "" : ", ") + variable;
      if (!secret.from_file.empty())
        keys += (keys.empty() ? "those of " : " and those of ") + secret.from_file;
      Warn("secrets." + secret.name + ": values are not exported (no --include-secret-values): " +
           "create the Secret " + *name + " with the keys " + keys +
           " before applying (kubectl create secret generic " + *name + " --from-literal=KEY=...)");
      return core::Ok{};
    }
    Json data = Json::object();
    auto values = options_.inputs.secret_values->find(secret.name);
    if (values != options_.inputs.secret_values->end()) {
      for (const auto& [key, value] : values->second) data[key] = core::Base64Encode(value);
    }
    result_.documents.push_back(Json{{"apiVersion", "v1"},
                                     {"kind", "Secret"},
                                     {"metadata", Metadata(*name, secret.name)},
                                     {"type", "Opaque"},
                                     {"data", data}});
    return core::Ok{};
  }

  core::Status AddVolume(const spec::Volume& volume) {
    auto name = ObjectName(volume.name, "volumes." + volume.name);
    if (!name) return name.error();
    // Shared when more than one container may mount it at once.
    int mounts = 0;
    for (const auto& [function_name, function] : app_.functions) {
      for (const auto& [path, volume_name] : function.volumes) {
        if (volume_name == volume.name) mounts += function.max_containers;
      }
    }
    const char* access_mode = mounts > 1 ? "ReadWriteMany" : "ReadWriteOnce";
    Warn("volumes." + volume.name + ": the spec gives no size: the claim " + *name + " asks for " +
         kVolumeSize + " (" + access_mode +
         ") of the cluster's default storage class; edit it before applying");
    result_.documents.push_back(
        Json{{"apiVersion", "v1"},
             {"kind", "PersistentVolumeClaim"},
             {"metadata", Metadata(*name, volume.name)},
             {"spec",
              {{"accessModes", Json::array({access_mode})},
               {"resources", {{"requests", {{"storage", kVolumeSize}}}}}}}});
    return core::Ok{};
  }

  // The function's one container; `port_env` is set when the platform does
  // not set it itself.
  core::Result<Json> Container(const spec::Function& function, bool knative) {
    auto reference = options_.inputs.image_references.find(function.image);
    if (reference == options_.inputs.image_references.end()) {
      return core::Error{
          core::ErrorCode::kInvalidArgument,
          "functions." + function.name + ": image " + function.image + " has no pushed reference",
          {}};
    }
    Json container = {{"name", function.name}, {"image", reference->second}};
    if (!function.command.empty()) container["command"] = function.command;
    Json env = Json::array();
    for (const auto& [name, value] : function.env)
      env.push_back({{"name", name}, {"value", value}});
    // Knative sets PORT itself (and refuses it in env).
    if (function.web && !(knative && function.web->port_env == "PORT"))
      env.push_back({{"name", function.web->port_env}, {"value", std::to_string(kContainerPort)}});
    if (!env.empty()) container["env"] = env;
    if (!function.secrets.empty()) {
      Json env_from = Json::array();
      for (const std::string& secret : function.secrets) {
        auto name = ObjectName(secret, "secrets." + secret);
        if (!name) return name.error();
        env_from.push_back({{"secretRef", {{"name", *name}}}});
      }
      container["envFrom"] = env_from;
    }
    if (function.web)
      container["ports"] =
          Json::array({{{"name", knative ? "http1" : "http"}, {"containerPort", kContainerPort}}});
    Json requests = {{"cpu", CpuQuantity(function.cpu)},
                     {"memory", core::FormatSize(function.memory)}};
    Json limits = requests;
    if (!function.gpu.empty()) limits[kGpuResource] = function.gpu.front().count;
    container["resources"] = {{"requests", requests}, {"limits", limits}};
    if (!function.volumes.empty()) {
      Json mounts = Json::array();
      for (const auto& [path, volume] : function.volumes)
        mounts.push_back({{"name", volume}, {"mountPath", path}});
      container["volumeMounts"] = mounts;
    }
    if (function.web) {
      Json probe_handler =
          function.web->health_path.empty()
              ? Json{{"tcpSocket", {{"port", kContainerPort}}}}
              : Json{{"httpGet", {{"path", function.web->health_path}, {"port", kContainerPort}}}};
      // Knative probes the port itself until ready; a health path replaces that.
      if (!knative || !function.web->health_path.empty())
        container["readinessProbe"] = probe_handler;
      if (!knative) {
        Json startup = probe_handler;
        startup["periodSeconds"] = 1;
        startup["failureThreshold"] = WholeSeconds(function.web->startup_timeout);
        container["startupProbe"] = startup;
      }
    }
    return container;
  }

  // GPUs: the first entry's count as the limit; its type and every
  // fallback with the same count as the nodes allowed, in order of preference.
  void PlaceOnGpus(const spec::Function& function, Json* pod_spec, bool knative) {
    if (function.gpu.empty()) return;
    const std::string path = "functions." + function.name + ".gpu";
    const int count = function.gpu.front().count;
    std::vector<std::string> allowed;
    Json preferred = Json::array();
    bool any = false;
    int weight = 100;
    for (const spec::GpuRequest& request : function.gpu) {
      if (request.count != count) {
        Warn(path + ": " + request.type + ":" + std::to_string(request.count) +
             " is not exported: a pod asks for one GPU count, " + std::to_string(count) +
             " on every type");
        continue;
      }
      if (request.type == "any") {
        any = true;
        break;
      }
      const auto& products = GpuProductLabels(request.type);
      allowed.insert(allowed.end(), products.begin(), products.end());
      preferred.push_back({{"weight", weight},
                           {"preference",
                            {{"matchExpressions", Json::array({{{"key", kGpuProductLabel},
                                                                {"operator", "In"},
                                                                {"values", products}}})}}}});
      weight = std::max(1, weight - 10);
    }
    Json node_affinity = Json::object();
    if (!any && !allowed.empty()) {
      node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
          {"nodeSelectorTerms",
           Json::array({{{"matchExpressions", Json::array({{{"key", kGpuProductLabel},
                                                            {"operator", "In"},
                                                            {"values", allowed}}})}}})}};
    }
    if (preferred.size() > 1 || (any && !preferred.empty()))
      node_affinity["preferredDuringSchedulingIgnoredDuringExecution"] = preferred;
    if (!node_affinity.empty()) {
      (*pod_spec)["affinity"] = {{"nodeAffinity", node_affinity}};
      if (knative) knative_features_.insert("kubernetes.podspec-affinity");
    }
    (*pod_spec)["tolerations"] =
        Json::array({{{"key", kGpuResource}, {"operator", "Exists"}, {"effect", "NoSchedule"}}});
    if (knative) knative_features_.insert("kubernetes.podspec-tolerations");
  }

  core::Result<Json> PodSpec(const spec::Function& function, bool knative) {
    auto container = Container(function, knative);
    if (!container) return container.error();
    Json pod_spec = Json::object();
    if (!function.web) pod_spec["restartPolicy"] = "Never";
    pod_spec["containers"] = Json::array({*container});
    std::set<std::string> volumes;
    for (const auto& [path, volume] : function.volumes) volumes.insert(volume);
    if (!volumes.empty()) {
      Json pod_volumes = Json::array();
      for (const std::string& volume : volumes) {
        auto claim = ObjectName(volume, "volumes." + volume);
        if (!claim) return claim.error();
        pod_volumes.push_back(
            {{"name", volume}, {"persistentVolumeClaim", {{"claimName", *claim}}}});
      }
      pod_spec["volumes"] = pod_volumes;
      if (knative) {
        knative_features_.insert("kubernetes.podspec-persistent-volume-claim");
        knative_features_.insert("kubernetes.podspec-persistent-volume-write");
      }
    }
    PlaceOnGpus(function, &pod_spec, knative);
    return pod_spec;
  }

  // Scaling settings that only a web function's autoscaler reads, for a job.
  void WarnJobScaling(const spec::Function& function) {
    const spec::Function defaults;
    const std::string path = "functions." + function.name + ".";
    auto warn = [&](const char* field, const std::string& value, bool is_default) {
      if (!is_default)
        Warn(path + field + ": " + value +
             " is not exported: Kubernetes starts one pod per Job run, whatever runs already");
    };
    warn("min_containers", std::to_string(function.min_containers),
         function.min_containers == defaults.min_containers);
    warn("max_containers", std::to_string(function.max_containers),
         function.max_containers == defaults.max_containers);
    warn("max_inputs", std::to_string(function.max_inputs),
         function.max_inputs == defaults.max_inputs);
    warn("scaledown_window", core::FormatDuration(function.scaledown_window),
         function.scaledown_window == defaults.scaledown_window);
  }

  core::Result<Json> JobSpec(const spec::Function& function) {
    auto pod_spec = PodSpec(function, false);
    if (!pod_spec) return pod_spec.error();
    return Json{
        {"activeDeadlineSeconds", WholeSeconds(function.timeout)},
        {"backoffLimit", function.retries.max},
        {"template", {{"metadata", {{"labels", Labels(function.name)}}}, {"spec", *pod_spec}}}};
  }

  core::Status AddJobFunction(const spec::Function& function) {
    const std::string path = "functions." + function.name;
    WarnJobScaling(function);
    auto job_spec = JobSpec(function);
    if (!job_spec) return job_spec.error();
    if (function.schedule) {
      const spec::Schedule& schedule = *function.schedule;
      std::optional<std::string> cron;
      std::string timezone = schedule.timezone;
      if (schedule.every) {
        cron = PeriodAsCron(*schedule.every);
        timezone = "UTC";
        if (!cron)
          Warn(path + ".schedule.every: " + core::FormatDuration(*schedule.every) +
               " divides neither an hour nor a day, so cron cannot say it: the function is "
               "exported as a suspended Job only");
      } else {
        cron = KubernetesCron(schedule.cron);
        if (!cron) {
          return core::Error{core::ErrorCode::kInvalidArgument,
                             path + ".schedule.cron: \"" + schedule.cron +
                                 "\": Kubernetes takes no day-of-week 7 in a step: write "
                                 "Sunday as 0",
                             {}};
        }
      }
      if (cron) {
        auto name = ObjectName(function.name, path, kMaxCronJobNameLength);
        if (!name) return name.error();
        Json spec = {{"schedule", *cron},
                     {"timeZone", timezone},
                     {"concurrencyPolicy", ConcurrencyPolicy(schedule.overlap)}};
        if (schedule.catch_up == 0) {
          // Kubernetes makes up the last missed run within the deadline: a
          // minute is the controller's own slack, so nothing older runs.
          spec["startingDeadlineSeconds"] = 60;
        } else if (schedule.catch_up > 1) {
          Warn(path + ".schedule.catch_up: " + std::to_string(schedule.catch_up) +
               " is not exported: Kubernetes makes up at most the last missed run");
        }
        Warn(path +
             ".schedule: a CronJob's runs have no GANTRY_SCHEDULED_AT in their env: Kubernetes "
             "(1.28 on) gives each Job its due time as the annotation "
             "batch.kubernetes.io/cronjob-scheduled-timestamp instead");
        spec["jobTemplate"] = {{"metadata", {{"labels", Labels(function.name)}}},
                               {"spec", *job_spec}};
        result_.documents.push_back(Json{{"apiVersion", "batch/v1"},
                                         {"kind", "CronJob"},
                                         {"metadata", Metadata(*name, function.name)},
                                         {"spec", spec}});
        return core::Ok{};
      }
    }
    auto name = ObjectName(function.name, path);
    if (!name) return name.error();
    Json spec = {{"suspend", true}};
    spec.update(*job_spec);
    result_.documents.push_back(Json{{"apiVersion", "batch/v1"},
                                     {"kind", "Job"},
                                     {"metadata", Metadata(*name, function.name)},
                                     {"spec", spec}});
    return core::Ok{};
  }

  void WarnWebRetries(const spec::Function& function) {
    const spec::Retries defaults;
    if (function.retries.max != defaults.max || function.retries.backoff != defaults.backoff)
      Warn("functions." + function.name + ".retries: " + std::to_string(function.retries.max) +
           " is not exported: requests to a web function are not retried");
  }

  core::Status AddWebFunction(const spec::Function& function) {
    const std::string path = "functions." + function.name;
    WarnWebRetries(function);
    auto name = ObjectName(function.name, path, kMaxNameLength, true);
    if (!name) return name.error();
    const bool knative = options_.autoscaler == KubernetesAutoscaler::kKnative;
    auto pod_spec = PodSpec(function, knative);
    if (!pod_spec) return pod_spec.error();
    if (knative) {
      Json annotations = {
          {"autoscaling.knative.dev/min-scale", std::to_string(function.min_containers)},
          {"autoscaling.knative.dev/max-scale", std::to_string(function.max_containers)},
          {"autoscaling.knative.dev/target",
           std::to_string(function.target_inputs.value_or(function.max_inputs))},
          {"autoscaling.knative.dev/scale-to-zero-pod-retention-period",
           GoDuration(function.scaledown_window)},
          {"serving.knative.dev/progress-deadline", GoDuration(function.web->startup_timeout)}};
      Json revision_spec = {{"containerConcurrency", function.max_inputs},
                            {"timeoutSeconds", WholeSeconds(function.timeout)}};
      revision_spec.update(*pod_spec);
      result_.documents.push_back(
          Json{{"apiVersion", "serving.knative.dev/v1"},
               {"kind", "Service"},
               {"metadata", Metadata(*name, function.name)},
               {"spec",
                {{"template",
                  {{"metadata", {{"labels", Labels(function.name)}, {"annotations", annotations}}},
                   {"spec", revision_spec}}}}}});
      return core::Ok{};
    }
    const spec::Function defaults;
    if (function.min_containers == 0)
      Warn(path +
           ".min_containers: 0 (scale to zero) is lost with --autoscaler hpa: the "
           "Deployment keeps at least 1 replica");
    Warn(path + ".max_inputs: " + std::to_string(function.max_inputs) +
         " is not exported with --autoscaler hpa: the HorizontalPodAutoscaler scales on CPU (" +
         std::to_string(kCpuUtilizationPercent) + "% of the request), not on requests in flight");
    if (function.target_inputs)
      Warn(path + ".target_inputs: " + std::to_string(*function.target_inputs) +
           " is not exported with --autoscaler hpa: the HorizontalPodAutoscaler scales on CPU");
    if (function.timeout != defaults.timeout)
      Warn(path + ".timeout: " + core::FormatDuration(function.timeout) +
           " is not exported with --autoscaler hpa: a Service has no request timeout");
    Json selector = SelectorLabels(function.name);
    result_.documents.push_back(
        Json{{"apiVersion", "apps/v1"},
             {"kind", "Deployment"},
             {"metadata", Metadata(*name, function.name)},
             {"spec",
              {{"selector", {{"matchLabels", selector}}},
               {"template",
                {{"metadata", {{"labels", Labels(function.name)}}}, {"spec", *pod_spec}}}}}});
    result_.documents.push_back(Json{
        {"apiVersion", "v1"},
        {"kind", "Service"},
        {"metadata", Metadata(*name, function.name)},
        {"spec",
         {{"selector", selector},
          {"ports", Json::array({{{"name", "http"}, {"port", 80}, {"targetPort", "http"}}})}}}});
    result_.documents.push_back(Json{
        {"apiVersion", "autoscaling/v2"},
        {"kind", "HorizontalPodAutoscaler"},
        {"metadata", Metadata(*name, function.name)},
        {"spec",
         {{"scaleTargetRef", {{"apiVersion", "apps/v1"}, {"kind", "Deployment"}, {"name", *name}}},
          {"minReplicas", std::max(1, function.min_containers)},
          {"maxReplicas", function.max_containers},
          {"metrics", Json::array({{{"type", "Resource"},
                                    {"resource",
                                     {{"name", "cpu"},
                                      {"target",
                                       {{"type", "Utilization"},
                                        {"averageUtilization", kCpuUtilizationPercent}}}}}}})},
          {"behavior",
           {{"scaleDown",
             {{"stabilizationWindowSeconds", WholeSeconds(function.scaledown_window)}}}}}}}});
    return core::Ok{};
  }

  const spec::App& app_;
  const KubernetesExportOptions& options_;
  ExportedManifests result_;
  std::set<std::string> knative_features_;
};

}  // namespace

core::Result<ExportedManifests> ExportKubernetes(const spec::App& app,
                                                 const KubernetesExportOptions& options) {
  return KubernetesExporter(app, options).Export();
}

const std::vector<std::string>& GpuProductLabels(const std::string& type) {
  static const std::vector<std::string> kNone;
  auto found = kGpuProducts.find(type);
  return found == kGpuProducts.end() ? kNone : found->second;
}

}  // namespace planner
