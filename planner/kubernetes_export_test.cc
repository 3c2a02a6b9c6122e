#include "planner/kubernetes_export.h"

#include <catch2/catch.hpp>
#include <functional>
#include <set>

#include "core/base64.h"
#include "core/quantity.h"
#include "planner/export_test_support.h"
#include "spec/loader.h"

namespace planner {
namespace {

using Json = nlohmann::ordered_json;
using testing::ExportSpecs;
using testing::FakeImageReferences;
using testing::LoadSpec;

ExportedManifests Export(const spec::App& app,
                         KubernetesAutoscaler autoscaler = KubernetesAutoscaler::kKnative,
                         std::string namespace_name = "") {
  KubernetesExportOptions options;
  options.inputs.image_references = FakeImageReferences(app);
  options.autoscaler = autoscaler;
  options.namespace_name = std::move(namespace_name);
  auto manifests = ExportKubernetes(app, options);
  INFO((manifests.ok() ? "" : manifests.error().message));
  REQUIRE(manifests.ok());
  return std::move(manifests).value();
}

const Json* Find(const ExportedManifests& manifests, const std::string& kind,
                 const std::string& name) {
  for (const Json& document : manifests.documents) {
    if (document["kind"] == kind && document["metadata"]["name"] == name) return &document;
  }
  return nullptr;
}

// The pod template of the object a function became, whatever its kind.
const Json* PodTemplate(const Json& object) {
  const std::string kind = object["kind"];
  if (kind == "CronJob") return &object["spec"]["jobTemplate"]["spec"]["template"];
  if (kind == "Deployment" || kind == "Job" ||
      (kind == "Service" && object["apiVersion"] == "serving.knative.dev/v1"))
    return &object["spec"]["template"];
  return nullptr;
}

// The objects `function` became; the first holds its pod template.
std::vector<const Json*> FunctionObjects(const ExportedManifests& manifests,
                                         const std::string& function) {
  std::vector<const Json*> objects;
  for (const Json& document : manifests.documents) {
    if (document["metadata"]["labels"]["app.kubernetes.io/component"] == function &&
        PodTemplate(document) != nullptr)
      objects.push_back(&document);
  }
  return objects;
}

spec::App LoadYamlText(const std::string& text) {
  auto app = spec::LoadText(text, spec::Format::kYaml, "app.yaml");
  INFO((app.ok() ? "" : app.error().front().ToString()));
  REQUIRE(app.ok());
  return std::move(app).value();
}

TEST_CASE("every example exports to the golden Kubernetes manifests, with Knative and with HPA") {
  for (const std::string& spec_path : ExportSpecs()) {
    spec::App app = LoadSpec(spec_path);
    const std::string name = std::filesystem::path(spec_path).parent_path().filename().string();
    INFO(spec_path);
    testing::CheckGolden(name + ".kubernetes.yaml", testing::GoldenText(Export(app)));
    testing::CheckGolden(name + ".kubernetes-hpa.yaml",
                         testing::GoldenText(Export(app, KubernetesAutoscaler::kHpa)));
  }
}

TEST_CASE("the everything spec sets every field of a function somewhere") {
  spec::App app = LoadSpec("tests/export/everything/app.yaml");
  std::set<std::string> all;
  std::set<std::string> set;
  for (const auto& [name, function] : app.functions) {
    for (const std::string& field : testing::AllFunctionFields(app, name)) all.insert(field);
    for (const std::string& field : testing::FunctionFields(app, name)) set.insert(field);
  }
  CHECK(set == all);
  CHECK(app.budget);
  CHECK_FALSE(app.secrets.empty());
  CHECK_FALSE(app.volumes.empty());
}

// The round-trip property: each function, schedule, secret and volume is in
// the output, and each field of the spec is either found there or named by a
// warning. A field added to the spec fails here until the exporter says what
// becomes of it.
TEST_CASE("every function, schedule, secret, volume and field is exported or warned about") {
  for (const std::string& spec_path : ExportSpecs()) {
    for (auto autoscaler : {KubernetesAutoscaler::kKnative, KubernetesAutoscaler::kHpa}) {
      spec::App app = LoadSpec(spec_path);
      ExportedManifests manifests = Export(app, autoscaler);
      const bool knative = autoscaler == KubernetesAutoscaler::kKnative;
      INFO(spec_path << (knative ? " (knative)" : " (hpa)"));
      for (const auto& [name, secret] : app.secrets) {
        INFO("secret " << name);
        CHECK(testing::Warned(manifests.warnings, "secrets." + name));
      }
      for (const auto& [name, volume] : app.volumes) {
        INFO("volume " << name);
        CHECK(Find(manifests, "PersistentVolumeClaim", app.name + "-" + name) != nullptr);
      }
      if (app.budget) CHECK(testing::Warned(manifests.warnings, "budget"));
      const auto references = FakeImageReferences(app);
      for (const auto& [name, function] : app.functions) {
        INFO("function " << name);
        auto objects = FunctionObjects(manifests, name);
        REQUIRE_FALSE(objects.empty());
        const Json& object = *objects.front();
        const Json& pod = *PodTemplate(object);
        const Json& container = pod["spec"]["containers"][0];
        const Json annotations = pod["metadata"].value("annotations", Json::object());
        const Json& job =
            object["kind"] == "CronJob" ? object["spec"]["jobTemplate"]["spec"] : object["spec"];
        auto has_env = [&](const std::string& variable, const std::string& value) {
          for (const Json& entry : container.value("env", Json::array())) {
            if (entry["name"] == variable && entry["value"] == value) return true;
          }
          return false;
        };
        auto has_mount = [&](const std::string& path) {
          for (const Json& mount : container.value("volumeMounts", Json::array())) {
            if (mount["mountPath"] == path) return true;
          }
          return false;
        };
        auto annotation = [&](const std::string& key, const std::string& value) {
          return annotations.value("autoscaling.knative.dev/" + key, "") == value;
        };
        const bool cron_job = object["kind"] == "CronJob";
        const std::map<std::string, std::function<bool()>> mapped = {
            {"image", [&] { return container["image"] == references.at(function.image); }},
            {"command",
             [&] { return function.command.empty() || container["command"] == function.command; }},
            {"env",
             [&] {
               for (const auto& [key, value] : function.env)
                 if (!has_env(key, value)) return false;
               return true;
             }},
            {"cpu", [&] { return container["resources"]["requests"].contains("cpu"); }},
            {"memory",
             [&] {
               return container["resources"]["requests"]["memory"] ==
                      core::FormatSize(function.memory);
             }},
            {"gpu",
             [&] {
               return function.gpu.empty() || container["resources"]["limits"]["nvidia.com/gpu"] ==
                                                  function.gpu.front().count;
             }},
            {"timeout",
             [&] {
               auto seconds = WholeSeconds(function.timeout);
               return function.web ? knative && pod["spec"]["timeoutSeconds"] == seconds
                                   : job["activeDeadlineSeconds"] == seconds;
             }},
            {"retries.max",
             [&] { return !function.web && job["backoffLimit"] == function.retries.max; }},
            {"min_containers",
             [&] {
               return function.web &&
                      (knative ? annotation("min-scale", std::to_string(function.min_containers))
                               : (*Find(manifests, "HorizontalPodAutoscaler",
                                        app.name + "-" + name))["spec"]["minReplicas"] ==
                                     function.min_containers);
             }},
            {"max_containers",
             [&] {
               return function.web &&
                      (knative ? annotation("max-scale", std::to_string(function.max_containers))
                               : (*Find(manifests, "HorizontalPodAutoscaler",
                                        app.name + "-" + name))["spec"]["maxReplicas"] ==
                                     function.max_containers);
             }},
            {"max_inputs",
             [&] {
               return knative && function.web &&
                      pod["spec"]["containerConcurrency"] == function.max_inputs &&
                      (function.target_inputs ||
                       annotation("target", std::to_string(function.max_inputs)));
             }},
            {"target_inputs",
             [&] {
               return knative && function.target_inputs &&
                      annotation("target", std::to_string(*function.target_inputs));
             }},
            {"scaledown_window",
             [&] {
               return function.web &&
                      (knative ? annotation("scale-to-zero-pod-retention-period",
                                            GoDuration(function.scaledown_window))
                               : (*Find(manifests, "HorizontalPodAutoscaler",
                                        app.name + "-" + name))["spec"]["behavior"]["scaleDown"]
                                                               ["stabilizationWindowSeconds"] ==
                                     WholeSeconds(function.scaledown_window));
             }},
            {"secrets",
             [&] {
               return function.secrets.size() == container.value("envFrom", Json::array()).size();
             }},
            {"volumes",
             [&] {
               for (const auto& [path, volume] : function.volumes)
                 if (!has_mount(path)) return false;
               return true;
             }},
            {"web.port_env",
             [&] {
               return (knative && function.web->port_env == "PORT") ||
                      has_env(function.web->port_env, "8080");
             }},
            {"web.health_path",
             [&] {
               return function.web->health_path.empty() ||
                      container["readinessProbe"]["httpGet"]["path"] == function.web->health_path;
             }},
            {"web.startup_timeout",
             [&] {
               return knative ? annotations["serving.knative.dev/progress-deadline"] ==
                                    GoDuration(function.web->startup_timeout)
                              : container["startupProbe"]["failureThreshold"] ==
                                    WholeSeconds(function.web->startup_timeout);
             }},
            {"schedule.cron", [&] { return cron_job && object["spec"].contains("schedule"); }},
            {"schedule.every", [&] { return cron_job && object["spec"].contains("schedule"); }},
            {"schedule.timezone",
             [&] { return cron_job && object["spec"]["timeZone"] == function.schedule->timezone; }},
            {"schedule.overlap",
             [&] { return cron_job && object["spec"].contains("concurrencyPolicy"); }},
            {"schedule.catch_up",
             [&] {
               return cron_job && (function.schedule->catch_up == 1 ||
                                   object["spec"].contains("startingDeadlineSeconds"));
             }},
        };
        for (const std::string& field : testing::FunctionFields(app, name)) {
          INFO("field " << field);
          auto check = mapped.find(field);
          bool exported = check != mapped.end() && check->second();
          CHECK(
              (exported || testing::Warned(manifests.warnings, "functions." + name + "." + field)));
        }
      }
    }
  }
}

// hello's function as examples/hello had it.
const char* kHello =
    "app: hello\nimages: {web: {from: scratch}}\n"
    "functions:\n"
    "  site: {image: web, web: {health_path: /}, cpu: 0.25, memory: 64Mi, min_containers: 0,\n"
    "         max_containers: 3, max_inputs: 8, scaledown_window: 30s}\n";

TEST_CASE("a web function is a Knative Service with its scaling as annotations") {
  spec::App app = LoadYamlText(kHello);
  ExportedManifests manifests = Export(app, KubernetesAutoscaler::kKnative, "web");
  REQUIRE(manifests.documents.size() == 1);
  const Json& service = manifests.documents[0];
  CHECK(service["apiVersion"] == "serving.knative.dev/v1");
  CHECK(service["metadata"]["name"] == "hello-site");
  CHECK(service["metadata"]["namespace"] == "web");
  CHECK(service["metadata"]["labels"]["app.kubernetes.io/name"] == "hello");
  CHECK(service["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "gantry");
  const Json& annotations = service["spec"]["template"]["metadata"]["annotations"];
  CHECK(annotations["autoscaling.knative.dev/min-scale"] == "0");
  CHECK(annotations["autoscaling.knative.dev/max-scale"] == "3");
  CHECK(annotations["autoscaling.knative.dev/target"] == "8");
  CHECK(annotations["autoscaling.knative.dev/scale-to-zero-pod-retention-period"] == "30s");
  const Json& container = service["spec"]["template"]["spec"]["containers"][0];
  CHECK(container["image"] == FakeImageReferences(app).at("web"));
  CHECK(container["resources"]["limits"]["cpu"] == "250m");
  CHECK(container["resources"]["limits"]["memory"] == "64Mi");
  CHECK(container["readinessProbe"]["httpGet"]["path"] == "/");
  // Knative sets PORT itself and refuses it in env.
  CHECK_FALSE(container.contains("env"));
}

TEST_CASE(
    "with --autoscaler hpa a web function is a Deployment, Service and HPA, and scale to zero is "
    "lost") {
  spec::App app = LoadSpec("examples/hello/app.yaml");
  ExportedManifests manifests = Export(app, KubernetesAutoscaler::kHpa);
  const Json* deployment = Find(manifests, "Deployment", "hello-site");
  const Json* hpa = Find(manifests, "HorizontalPodAutoscaler", "hello-site");
  REQUIRE(deployment != nullptr);
  REQUIRE(Find(manifests, "Service", "hello-site") != nullptr);
  REQUIRE(hpa != nullptr);
  CHECK((*hpa)["apiVersion"] == "autoscaling/v2");
  CHECK((*hpa)["spec"]["minReplicas"] == 1);
  CHECK((*hpa)["spec"]["maxReplicas"] == 3);
  const Json& container = (*deployment)["spec"]["template"]["spec"]["containers"][0];
  CHECK(container["env"] == Json::array({{{"name", "PORT"}, {"value", "8080"}}}));
  CHECK(testing::Warned(manifests.warnings, "functions.site.min_containers"));
  bool said = false;
  for (const std::string& warning : manifests.warnings)
    said = said || warning.find("(scale to zero) is lost") != std::string::npos;
  CHECK(said);
}

TEST_CASE("GPU fallbacks become required and preferred node affinity on the product label") {
  spec::App app = LoadYamlText(
      "app: gpus\nimages: {box: {from: scratch}}\n"
      "functions:\n"
      "  train: {image: box, gpu: [\"H100:2\", \"A100-80GB:2\", \"L4:1\"]}\n"
      "  any: {image: box, gpu: any}\n");
  ExportedManifests manifests = Export(app);
  const Json& pod = (*Find(manifests, "Job", "gpus-train"))["spec"]["template"]["spec"];
  CHECK(pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 2);
  const Json& affinity = pod["affinity"]["nodeAffinity"];
  const Json& required = affinity["requiredDuringSchedulingIgnoredDuringExecution"]
                                 ["nodeSelectorTerms"][0]["matchExpressions"][0];
  CHECK(required["key"] == "nvidia.com/gpu.product");
  std::vector<std::string> allowed = GpuProductLabels("H100");
  allowed.insert(allowed.end(), GpuProductLabels("A100-80GB").begin(),
                 GpuProductLabels("A100-80GB").end());
  CHECK(required["values"] == allowed);
  const Json& preferred = affinity["preferredDuringSchedulingIgnoredDuringExecution"];
  REQUIRE(preferred.size() == 2);
  CHECK(preferred[0]["weight"] == 100);
  CHECK(preferred[0]["preference"]["matchExpressions"][0]["values"] == GpuProductLabels("H100"));
  CHECK(preferred[1]["weight"] == 90);
  CHECK(testing::Warned(manifests.warnings, "functions.train.gpu"));
  CHECK(pod["tolerations"][0]["key"] == "nvidia.com/gpu");
  // `any` places on every GPU node.
  const Json& any_pod = (*Find(manifests, "Job", "gpus-any"))["spec"]["template"]["spec"];
  CHECK_FALSE(any_pod.contains("affinity"));
  CHECK(any_pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1);
}

TEST_CASE("every GPU type has node labels") {
  for (const std::string& type : spec::kGpuTypes) {
    INFO(type);
    CHECK_FALSE(GpuProductLabels(type).empty());
  }
}

TEST_CASE("a job function is a suspended Job, a schedule a CronJob") {
  spec::App app = LoadSpec("tests/export/everything/app.yaml");
  ExportedManifests manifests = Export(app);
  const Json* batch = Find(manifests, "Job", "everything-batch");
  REQUIRE(batch != nullptr);
  CHECK((*batch)["spec"]["suspend"] == true);
  CHECK((*batch)["spec"]["backoffLimit"] == 2);
  CHECK((*batch)["spec"]["activeDeadlineSeconds"] == 300);
  CHECK((*batch)["spec"]["template"]["spec"]["restartPolicy"] == "Never");
  const Json* nightly = Find(manifests, "CronJob", "everything-nightly");
  REQUIRE(nightly != nullptr);
  // Day-of-week 7 is Sunday for gantry, 0 for Kubernetes.
  CHECK((*nightly)["spec"]["schedule"] == "0 3 * * 1-6,0");
  CHECK((*nightly)["spec"]["timeZone"] == "Europe/Paris");
  CHECK((*nightly)["spec"]["concurrencyPolicy"] == "Replace");
  CHECK((*nightly)["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] == 7200);
  CHECK((*nightly)["spec"]["jobTemplate"]["spec"]["backoffLimit"] == 4);
  CHECK(testing::Warned(manifests.warnings, "functions.nightly.schedule.catch_up"));
  const Json* poll = Find(manifests, "CronJob", "everything-poll");
  REQUIRE(poll != nullptr);
  CHECK((*poll)["spec"]["schedule"] == "*/15 * * * *");
  CHECK((*poll)["spec"]["timeZone"] == "UTC");
  CHECK((*poll)["spec"]["concurrencyPolicy"] == "Allow");
  CHECK((*poll)["spec"]["startingDeadlineSeconds"] == 60);
}

TEST_CASE("a period cron cannot say is a suspended Job and a warning") {
  spec::App app = LoadYamlText(
      "app: odd\nimages: {box: {from: scratch}}\n"
      "functions: {tick: {image: box, schedule: {every: 7m}}}\n");
  ExportedManifests manifests = Export(app);
  CHECK(Find(manifests, "CronJob", "odd-tick") == nullptr);
  CHECK(Find(manifests, "Job", "odd-tick") != nullptr);
  CHECK(testing::Warned(manifests.warnings, "functions.tick.schedule.every"));
}

TEST_CASE("secrets are references to create, or Secrets with base64 values when given") {
  spec::App app = LoadSpec("tests/export/everything/app.yaml");
  ExportedManifests references = Export(app);
  for (const Json& document : references.documents) CHECK(document["kind"] != "Secret");
  CHECK(testing::Warned(references.warnings, "secrets.db"));
  const Json& api = (*Find(references, "Service", "everything-api"))["spec"]["template"]["spec"];
  CHECK(api["containers"][0]["envFrom"] ==
        Json::array({{{"secretRef", {{"name", "everything-hf"}}}},
                     {{"secretRef", {{"name", "everything-db"}}}}}));

  KubernetesExportOptions options;
  options.inputs.image_references = FakeImageReferences(app);
  options.inputs.secret_values = std::map<std::string, SecretPairs>{
      {"hf", {{"HF_TOKEN", "hf_abc"}}}, {"db", {{"DB_USER", "ana"}, {"DB_PASSWORD", "p@ss"}}}};
  auto with_values = ExportKubernetes(app, options);
  REQUIRE(with_values.ok());
  const Json* db = Find(*with_values, "Secret", "everything-db");
  REQUIRE(db != nullptr);
  CHECK((*db)["data"]["DB_PASSWORD"] == core::Base64Encode("p@ss"));
  CHECK((*db)["data"]["DB_USER"] == core::Base64Encode("ana"));
  CHECK_FALSE(testing::Warned(with_values->warnings, "secrets.db"));
  for (const std::string& warning : with_values->warnings)
    CHECK(warning.find("p@ss") == std::string::npos);
}

TEST_CASE("a volume mounted by several containers is a ReadWriteMany claim") {
  spec::App app = LoadSpec("examples/fleet/app.lua");
  ExportedManifests manifests = Export(app);
  const Json* claim = Find(manifests, "PersistentVolumeClaim", "fleet-weights");
  REQUIRE(claim != nullptr);
  CHECK((*claim)["spec"]["accessModes"] == Json::array({"ReadWriteMany"}));
  CHECK((*claim)["spec"]["resources"]["requests"]["storage"] == "10Gi");
}

TEST_CASE("a name Kubernetes cannot take is an error naming the field") {
  spec::App app = LoadYamlText(
      "app: a-rather-long-application-name\nimages: {box: {from: scratch}}\n"
      "functions: {a-job-with-a-long-name-too: {image: box, schedule: {cron: \"@daily\"}}}\n");
  KubernetesExportOptions options;
  options.inputs.image_references = FakeImageReferences(app);
  auto manifests = ExportKubernetes(app, options);
  REQUIRE_FALSE(manifests.ok());
  CHECK(manifests.error().code == core::ErrorCode::kInvalidArgument);
  CHECK(manifests.error().message ==
        "functions.a-job-with-a-long-name-too: the Kubernetes name "
        "a-rather-long-application-name-a-job-with-a-long-name-too is longer than 52 characters: "
        "shorten the app's or its name");
}

}  // namespace
}  // namespace planner
