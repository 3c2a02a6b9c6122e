// `gantry export kubernetes|compose FILE`: the app as manifests for another
// engine (planner/kubernetes_export.h, planner/compose_export.h), its
// images built, pushed and referenced by digest.

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>

#include "core/atomic_file.h"
#include "core/gantry_home.h"
#include "core/image_reference.h"
#include "planner/compose_export.h"
#include "planner/kubernetes_export.h"
#include "planner/secret_values.h"
#include "spec/loader.h"
#include "toolchain/app_images.h"
#include "toolchain/exit_code.h"
#include "toolchain/reporter.h"
#include "toolchain/verbs.h"

namespace toolchain {
namespace {

namespace fs = std::filesystem;

enum class ExportTarget { kKubernetes, kCompose };

struct ExportOptions {
  std::string file;
  std::string registry;
  std::string out = "-";
  std::string namespace_name;
  std::string autoscaler = "knative";
  std::string store;
  std::string tag = "latest";
  bool no_push = false;
  bool include_secret_values = false;
  bool insecure = false;
  bool quiet = false;
};

// Image name -> REGISTRY/NAMESPACE/IMAGE@sha256:…: pushed, or with
// --no-push named where `gantry push` put them.
core::Result<std::map<std::string, std::string>> ImageReferences(const spec::App& app,
                                                                 const ExportOptions& options) {
  ImageBuildOptions build;
  build.store = core::StoreOrDefault(options.store);
  build.quiet = options.quiet;
  auto digests = BuildAppImages(app, build);
  if (!digests) return digests.error();
  if (!options.no_push) {
    ImagePushOptions push;
    push.store = build.store;
    push.to = options.registry;
    push.tag = options.tag;
    push.insecure = options.insecure;
    push.quiet = options.quiet;
    return PushAppImages(*digests, push);
  }
  std::string registry = options.registry;
  while (!registry.empty() && registry.back() == '/') registry.pop_back();
  std::map<std::string, std::string> references;
  for (const auto& [name, digest] : *digests) {
    auto reference = core::ParseImageReference(registry + "/" + name + "@" + digest);
    if (!reference) {
      return core::Error{
          core::ErrorCode::kInvalidArgument, "--registry: " + reference.error().message, {}};
    }
    references[name] = reference->ToString();
  }
  return references;
}

// "deployment-fleet-api.yaml": the file of one object in --out DIR.
std::string ObjectFileName(const nlohmann::ordered_json& object) {
  std::string kind = object.value("kind", "object");
  std::transform(kind.begin(), kind.end(), kind.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return kind + "-" + object["metadata"].value("name", "unnamed") + ".yaml";
}

// Removes the manifests an earlier export of `app` wrote into `out` that
// this one did not write (`written`): objects the app no longer has, which
// `kubectl apply -f OUT` would bring back. Files not gantry's, or another
// app's, stay.
core::Status RemoveStaleManifests(const fs::path& out, const std::string& app,
                                  const std::set<fs::path>& written) {
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator(out, error)) {
    const fs::path& path = entry.path();
    if (!entry.is_regular_file() || path.extension() != ".yaml" || written.count(path)) continue;
    auto text = core::ReadFile(path);
    if (!text.ok() || !planner::IsExportedManifestOf(*text, app)) continue;
    if (!fs::remove(path, error) && error) break;
    std::fprintf(stderr, "removed %s: app %s no longer has this object\n", path.c_str(),
                 app.c_str());
  }
  if (error) return core::Error{core::ErrorCode::kIo, out.string() + ": " + error.message(), {}};
  return core::Ok{};
}

core::Status WriteOutput(ExportTarget target, const spec::App& app,
                         const planner::ExportedManifests& manifests,
                         const ExportOptions& options) {
  const std::string& out = options.out;
  if (out == "-") {
    std::fputs(planner::ManifestStream(manifests.documents).c_str(), stdout);
    return core::Ok{};
  }
  std::error_code error;
  fs::create_directories(out, error);
  if (error) return core::Error{core::ErrorCode::kIo, out + ": " + error.message(), {}};
  std::set<fs::path> written;
  for (const auto& document : manifests.documents) {
    fs::path path = fs::path(out) / (target == ExportTarget::kCompose ? std::string("compose.yaml")
                                                                      : ObjectFileName(document));
    // Secret values are readable by their owner only.
    bool secret = document.value("kind", "") == "Secret" ||
                  (target == ExportTarget::kCompose && options.include_secret_values);
    unsigned mode = secret ? 0600 : 0644;
    auto saved = core::WriteFileAtomically(path, planner::ManifestYaml(document), mode);
    if (!saved.ok()) return saved.error();
    std::printf("%s\n", path.c_str());
    written.insert(path);
  }
  if (target == ExportTarget::kCompose) return core::Ok{};  // one file, replaced
  return RemoveStaleManifests(out, app.name, written);
}

// `path` as an absolute folder without a trailing separator.
fs::path Folder(const fs::path& path) {
  fs::path folder = fs::absolute(path).lexically_normal();
  return folder.has_filename() ? folder : folder.parent_path();
}

core::Result<planner::ExportedManifests> Export(ExportTarget target, const spec::App& app,
                                                const ExportOptions& options) {
  planner::ExportInputs inputs;
  auto references = ImageReferences(app, options);
  if (!references) return references.error();
  inputs.image_references = std::move(*references);
  if (options.include_secret_values) {
    auto secrets = planner::ReadSecrets(app);
    if (!secrets) return secrets.error();
    inputs.secret_values = std::move(*secrets);
  }
  if (target == ExportTarget::kCompose) {
    planner::ComposeExportOptions compose;
    compose.inputs = std::move(inputs);
    fs::path context = Folder(app.context);
    compose.spec_folder =
        options.out == "-" ? context : context.lexically_relative(Folder(options.out));
    return planner::ExportCompose(app, compose);
  }
  planner::KubernetesExportOptions kubernetes;
  kubernetes.inputs = std::move(inputs);
  kubernetes.namespace_name = options.namespace_name;
  kubernetes.autoscaler = options.autoscaler == "hpa" ? planner::KubernetesAutoscaler::kHpa
                                                      : planner::KubernetesAutoscaler::kKnative;
  return planner::ExportKubernetes(app, kubernetes);
}

void RunExport(ExportTarget target, const ExportOptions& options, int* exit_code) {
  *exit_code = kExitUserError;
  auto app = spec::Load(options.file);
  if (!app) {
    ReportErrors(app.error());
    return;
  }
  auto manifests = Export(target, *app, options);
  if (!manifests) {
    ReportErrors({manifests.error()});
    return;
  }
  for (const std::string& warning : manifests->warnings)
    std::fprintf(stderr, "warning: %s\n", warning.c_str());
  auto written = WriteOutput(target, *app, *manifests, options);
  if (!written.ok()) {
    ReportErrors({written.error()});
    return;
  }
  *exit_code = kExitOk;
}

void AddCommonOptions(CLI::App* verb, ExportOptions* options) {
  verb->add_option("FILE", options->file, "Spec file (.yaml, .yml or .lua)")->required();
  verb->add_option("--registry", options->registry,
                   "REGISTRY/NAMESPACE the images are pushed to and pulled from")
      ->required();
  verb->add_option("--out", options->out, "A folder to write the files into, or - for stdout")
      ->capture_default_str();
  verb->add_option("--tag", options->tag, "The tag of every pushed image")->capture_default_str();
  verb->add_option("--store", options->store,
                   "The store to build in and push from (default: $GANTRY_HOME/store)");
  verb->add_flag("--no-push", options->no_push,
                 "Reference the images in --registry by digest without pushing them (pushed "
                 "before with gantry push)");
  verb->add_flag("--include-secret-values", options->include_secret_values,
                 "Read the secrets now and write their values into the output");
  verb->add_flag("--insecure", options->insecure, "Speak plain HTTP to the registry");
  verb->add_flag("-q,--quiet", options->quiet, "No build or push progress");
}

}  // namespace

void AddExportVerb(CLI::App& gantry, int* exit_code) {
  auto* verb = gantry.add_subcommand("export",
                                     "Write the app as manifests for Kubernetes or Docker Compose");
  verb->require_subcommand(1);

  auto* kubernetes = verb->add_subcommand(
      "kubernetes", "Knative Services (or Deployments and HPAs), Jobs, CronJobs, Secrets, PVCs");
  auto kubernetes_options = std::make_shared<ExportOptions>();
  AddCommonOptions(kubernetes, kubernetes_options.get());
  kubernetes->add_option("--namespace", kubernetes_options->namespace_name,
                         "The namespace of every object (default: kubectl's)");
  kubernetes
      ->add_option("--autoscaler", kubernetes_options->autoscaler,
                   "knative: a Knative Service per web function; hpa: Deployment, Service and "
                   "HorizontalPodAutoscaler, for clusters without Knative (no scale to zero)")
      ->check(CLI::IsMember({"knative", "hpa"}))
      ->capture_default_str();
  kubernetes->callback([kubernetes_options, exit_code] {
    RunExport(ExportTarget::kKubernetes, *kubernetes_options, exit_code);
  });

  auto* compose = verb->add_subcommand("compose", "A compose.yaml for one host with GPUs");
  auto compose_options = std::make_shared<ExportOptions>();
  AddCommonOptions(compose, compose_options.get());
  compose->callback([compose_options, exit_code] {
    RunExport(ExportTarget::kCompose, *compose_options, exit_code);
  });
}

}  // namespace toolchain
