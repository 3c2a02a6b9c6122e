#include "builder/image_builder.h"

#include <date/date.h>

#include <chrono>
#include <filesystem>

#include "builder/build_sandbox.h"
#include "builder/copy_source.h"
#include "builder/debootstrap_base.h"
#include "builder/image_config.h"
#include "builder/image_manifest.h"
#include "builder/layer_cache.h"
#include "builder/platform.h"
#include "builder/registry_client.h"
#include "builder/rootfs.h"
#include "builder/store_lock.h"
#include "builder/tree_diff.h"
#include "core/canonical_json.h"
#include "core/image_reference.h"
#include "core/overloaded.h"
#include "core/sha256.h"
#include "spec/canonical.h"

namespace builder {
namespace {

using nlohmann::json;

// The image as the steps so far have made it.
struct ImageState {
  std::string key;  // cache key of the base and every step so far
  std::vector<Layer> layers;
  ImageSettings settings;
  json history = json::array();
};

std::string ChainKey(const std::string& parent, const json& step, const std::string& inputs) {
  return core::Sha256Digest(parent + "\n" + core::CanonicalJson(step) + "\n" + inputs);
}

// The key of a layer made with `compression`: gzip keys are as they were
// before zstd existed (so caches and digests stay valid); a zstd layer of
// the same step has a key of its own.
std::string CompressedKey(const std::string& key, spec::Compression compression) {
  if (compression == spec::Compression::kGzip) return key;
  return ChainKey(key, json{{"compression", "zstd"}}, "");
}

std::string Timestamp(std::int64_t epoch) {
  return date::format("%FT%TZ", date::sys_seconds(std::chrono::seconds(epoch)));
}

core::Error BuildError(const std::string& image, const std::string& message) {
  return core::Error{core::ErrorCode::kInvalidSpec, "image " + image + ": " + message, {}};
}

// 'text' for /bin/sh, whatever text holds.
std::string ShellQuote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

std::string Words(const std::vector<std::string>& words) {
  std::string text;
  for (const std::string& word : words) text += (text.empty() ? "" : " ") + word;
  return text;
}

// The shell command a run-like step runs, and whether it has network.
struct Command {
  std::string text;
  bool network = true;
};

std::optional<Command> CommandOf(const spec::Step& step) {
  return std::visit(
      core::Overloaded{
          [](const spec::RunStep& run) -> std::optional<Command> {
            return Command{run.command, run.network};
          },
          [](const spec::AptInstallStep& apt) -> std::optional<Command> {
            std::string packages;
            for (const std::string& package : apt.packages) packages += " " + ShellQuote(package);
            return Command{
                "export DEBIAN_FRONTEND=noninteractive && apt-get update -qq && "
                "apt-get install -y -qq --no-install-recommends" +
                    packages + " && apt-get clean && rm -rf /var/lib/apt/lists/*",
                true};
          },
          [](const spec::PipInstallStep& pip) -> std::optional<Command> {
            std::string requirements;
            for (const std::string& requirement : pip.requirements)
              requirements += " " + ShellQuote(requirement);
            return Command{
                "python3 -m pip install --no-cache-dir --no-input --break-system-packages" +
                    requirements,
                true};
          },
          [](const auto&) -> std::optional<Command> { return std::nullopt; },
      },
      step);
}

std::string Describe(const spec::Step& step) {
  return std::visit(
      core::Overloaded{
          [](const spec::CopyStep& copy) { return "copy " + copy.src + " " + copy.dst; },
          [](const spec::RunStep& run) { return "run " + run.command; },
          [](const spec::EnvStep& env) {
            std::string keys;
            for (const auto& [key, value] : env.variables) keys += " " + key;
            return "env" + keys;
          },
          [](const spec::WorkdirStep& workdir) { return "workdir " + workdir.path; },
          [](const spec::UserStep& user) { return "user " + user.user; },
          [](const spec::EntrypointStep& entrypoint) {
            return "entrypoint " + Words(entrypoint.args);
          },
          [](const spec::CmdStep& cmd) { return "cmd " + Words(cmd.args); },
          [](const spec::LabelsStep& labels) {
            std::string keys;
            for (const auto& [key, value] : labels.labels) keys += " " + key;
            return "labels" + keys;
          },
          [](const spec::AptInstallStep& apt) { return "apt_install " + Words(apt.packages); },
          [](const spec::PipInstallStep& pip) { return "pip_install " + Words(pip.requirements); },
      },
      step);
}

// Applies a step that changes only the image config; false for layer steps.
bool ApplySetting(const spec::Step& step, ImageSettings* settings) {
  return std::visit(core::Overloaded{
                        [&](const spec::EnvStep& env) {
                          for (const auto& [key, value] : env.variables)
                            settings->SetEnv(key, value);
                          return true;
                        },
                        [&](const spec::WorkdirStep& workdir) {
                          settings->workdir = workdir.path;
                          return true;
                        },
                        [&](const spec::UserStep& user) {
                          settings->user = user.user;
                          return true;
                        },
                        [&](const spec::EntrypointStep& entrypoint) {
                          settings->entrypoint = entrypoint.args;
                          return true;
                        },
                        [&](const spec::CmdStep& cmd) {
                          settings->cmd = cmd.args;
                          return true;
                        },
                        [&](const spec::LabelsStep& labels) {
                          for (const auto& [key, value] : labels.labels)
                            settings->labels[key] = value;
                          return true;
                        },
                        [](const auto&) { return false; },
                    },
                    step);
}

// A scratch folder under the store's temporary folder, removed with the object.
class ScratchRoot {
 public:
  explicit ScratchRoot(std::filesystem::path path) : path_(std::move(path)) {
    std::filesystem::create_directories(path_);
    // Only root may look in: a base image's setuid or file-capability
    // programs must not be something any user of the host can run.
    std::error_code ignored;  // as unsafe as before, not a failed build
    std::filesystem::permissions(path_.parent_path(), std::filesystem::perms::owner_all, ignored);
  }
  ~ScratchRoot() {
    std::error_code ignored;  // a leftover scratch folder is not worth failing a build for
    std::filesystem::remove_all(path_, ignored);
  }
  ScratchRoot(const ScratchRoot&) = delete;
  ScratchRoot& operator=(const ScratchRoot&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// The state a base image starts a build from: its settings, layers and
// history (kept when it matches its layers, one non-empty entry each).
// Docker layer media types become their OCI names: the bytes, and so the
// digests, are the same.
ImageState BaseState(const StoredImage& image, const std::string& key, const std::string& origin) {
  ImageState state;
  state.key = key;
  state.settings = image.settings;
  for (std::size_t i = 0; i < image.layers.size(); ++i) {
    Descriptor blob = image.layers[i];
    if (blob.media_type == kDockerLayerGzipMediaType) blob.media_type = kOciLayerGzipMediaType;
    state.layers.push_back(Layer{image.diff_ids[i], blob});
  }
  json history = image.config_json.value("history", json::array());
  std::size_t with_layers = 0;
  for (const json& entry : history) with_layers += entry.value("empty_layer", false) ? 0 : 1;
  if (history.is_array() && with_layers == state.layers.size()) {
    state.history = history;
  } else {
    for (std::size_t i = 0; i < state.layers.size(); ++i) {
      state.history.push_back(
          {{"created_by", "base layer " + std::to_string(i + 1) + " of " + origin}});
    }
  }
  return state;
}

// The image of an OCI layout: its manifest, config and layers, with every
// blob imported into `store`.
core::Result<ImageState> ResolveLayoutBase(const spec::OciLayoutBase& base,
                                           const std::filesystem::path& context,
                                           ContentStore& store) {
  std::filesystem::path root = context / base.path;
  auto layout = ContentStore::OpenExisting(root);
  if (!layout) return layout.error();
  auto found = layout->Find(base.tag);
  if (!found) return found.error();
  if (!*found) {
    return core::Error{core::ErrorCode::kNotFound,
                       "no image tagged " + base.tag + " in the OCI layout " + root.string(),
                       {}};
  }
  auto image = ReadStoredImage(*layout, (*found)->digest);
  if (!image) return image.error();
  for (const Descriptor& layer : image->layers) {
    auto imported = store.ImportBlob(*layout, layer.digest);
    if (!imported) return imported.error();
  }
  return BaseState(*image, (*found)->digest, base.path);
}

// The image of a registry reference. The store tags a pulled image by its
// normalised reference; when it has the whole image under that name it is
// used as it is (no network: a rebuild stays offline and fast, and
// `gantry pull REF` refreshes a moved tag). Otherwise it is pulled, over
// plain HTTP only for loopback registries and those in
// GANTRY_INSECURE_REGISTRIES (IsInsecureRegistry).
core::Result<ImageState> ResolveRegistryBase(const std::string& image_name,
                                             const spec::RegistryBase& base, ContentStore& store) {
  auto reference = core::ParseImageReference(base.reference);
  if (!reference) return BuildError(image_name, reference.error().message);
  const std::string name = reference->ToString();
  std::string digest;
  auto found = store.Find(name);
  if (found && *found) {
    auto stored = ReadStoredImage(store, (*found)->digest);
    bool complete = stored.ok();
    for (std::size_t i = 0; complete && i < stored->layers.size(); ++i)
      complete = store.HasBlob(stored->layers[i].digest);
    if (complete) digest = (*found)->digest;
  }
  if (digest.empty()) {
    RegistryOptions options;
    options.insecure = IsInsecureRegistry(reference->domain);
    RegistryClient client(reference->domain, options);
    auto pulled = client.Pull(*reference, HostPlatform(), store, name);
    if (!pulled) {
      return core::Error{
          pulled.error().code,
          "image " + image_name + ": pulling " + name + ": " + pulled.error().message,
          {}};
    }
    digest = pulled->manifest.digest;
  }
  auto image = ReadStoredImage(store, digest);
  if (!image) return image.error();
  return BaseState(*image, digest, name);
}

// A Debian root made by debootstrap, one layer, cached by what decides its
// content (DebootstrapRecipe) so that only the first build runs debootstrap.
core::Result<ImageState> ResolveDebootstrapBase(const std::string& image,
                                                const spec::DebootstrapBase& debootstrap,
                                                ContentStore& store, const BuildOptions& options) {
  DebootstrapRecipe recipe = DebootstrapRecipe::ForHost(debootstrap.suite);
  ImageState state;
  state.key = recipe.CacheKey();
  const std::string layer_key = CompressedKey(state.key, options.layer.compression);
  LayerCache cache(store);
  std::optional<Layer> layer = options.no_cache ? std::nullopt : cache.Lookup(layer_key);
  if (!layer) {
    auto built = BuildDebootstrapBase(recipe, store, options.layer);
    if (!built)
      return core::Error{built.error().code, "image " + image + ": " + built.error().message, {}};
    auto recorded = cache.Record(layer_key, *built);
    if (!recorded) return recorded.error();
    layer = *built;
  }
  state.layers.push_back(*layer);
  state.settings.SetEnv("PATH", kDefaultPath);
  state.history.push_back({{"created", Timestamp(options.layer.source_date_epoch)},
                           {"created_by", "debootstrap " + debootstrap.suite}});
  return state;
}

core::Result<ImageState> ResolveBase(const spec::Image& image, const std::filesystem::path& context,
                                     ContentStore& store, const BuildOptions& options) {
  return std::visit(
      core::Overloaded{
          [&](const spec::ScratchBase&) -> core::Result<ImageState> {
            ImageState state;
            state.key = core::Sha256Digest("gantry base: scratch");
            state.settings.SetEnv("PATH", kDefaultPath);
            return state;
          },
          [&](const spec::OciLayoutBase& layout) -> core::Result<ImageState> {
            return ResolveLayoutBase(layout, context, store);
          },
          [&](const spec::RegistryBase& registry) -> core::Result<ImageState> {
            return ResolveRegistryBase(image.name, registry, store);
          },
          [&](const spec::DebootstrapBase& debootstrap) -> core::Result<ImageState> {
            return ResolveDebootstrapBase(image.name, debootstrap, store, options);
          },
      },
      image.base);
}

// Runs a command on the image so far and makes a layer of what it changed:
// the layers are unpacked into a scratch root, the root is snapshotted, the
// command runs isolated inside it, and the difference becomes the layer.
core::Result<Layer> RunStep(const std::string& image, std::size_t index, const Command& command,
                            const std::vector<Layer>& layers, const ImageSettings& settings,
                            ContentStore& store, const LayerOptions& options) {
  ScratchRoot root(store.TempPath("root"));
  for (const Layer& layer : layers) {
    auto unpacked = UnpackLayer(store.BlobPath(layer.blob.digest), root.path());
    if (!unpacked) return unpacked.error();
  }
  auto before = TreeSnapshot::Take(root.path());
  if (!before) return before.error();
  SandboxCommand sandbox;
  sandbox.command = command.text;
  sandbox.env = settings.env;
  sandbox.workdir = settings.workdir.empty() ? "/" : settings.workdir;
  sandbox.user = settings.user;
  sandbox.network = command.network;
  auto result = RunInRoot(root.path(), sandbox);
  if (!result)
    return BuildError(image, "step " + std::to_string(index + 1) + ": " + result.error().message);
  if (result->exit_code != 0) {
    return BuildError(image, "step " + std::to_string(index + 1) + " (run " + command.text +
                                 ") failed with exit code " + std::to_string(result->exit_code) +
                                 "; its output:\n" + result->output);
  }
  auto entries = DiffTree(*before, root.path());
  if (!entries) return entries.error();
  return WriteLayer(std::move(entries).value(), store, options);
}

}  // namespace

core::Result<BuiltImage> ImageBuilder::Build(const spec::App& app, const spec::Image& image) {
  // Held for the whole build: a prune waits until the image is tagged.
  auto in_use = StoreLock::ForBuild(store_);
  if (!in_use) return in_use.error();
  BuildOptions options = options_;
  options.layer.compression = image.compression;
  auto report_step = [&](StepReport& report, bool finished,
                         std::chrono::steady_clock::time_point started) {
    report.finished = finished;
    report.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (options.on_step) options.on_step(report);
  };
  auto base_started = std::chrono::steady_clock::now();
  StepReport base_report;
  base_report.image = image.name;
  base_report.count = image.steps.size();
  base_report.description = "from " + spec::BaseToJson(image.base).dump();
  report_step(base_report, false, base_started);
  auto base = ResolveBase(image, app.context, store_, options);
  if (!base) return base.error();
  base_report.has_layer = !base->layers.empty();
  base_report.cached = true;
  for (const Layer& layer : base->layers) base_report.layer_bytes += layer.blob.size;
  report_step(base_report, true, base_started);
  ImageState state = std::move(base).value();
  state.key = CompressedKey(state.key, image.compression);
  LayerCache cache(store_);
  const std::string created = Timestamp(options.layer.source_date_epoch);

  for (std::size_t index = 0; index < image.steps.size(); ++index) {
    const spec::Step& step = image.steps[index];
    auto started = std::chrono::steady_clock::now();
    StepReport report;
    report.image = image.name;
    report.index = index + 1;
    report.count = image.steps.size();
    report.description = Describe(step);
    report_step(report, false, started);
    json step_json = spec::StepToJson(step);
    json history = {{"created", created}, {"created_by", "gantry " + report.description}};

    if (ApplySetting(step, &state.settings)) {
      state.key = ChainKey(state.key, step_json, "");
      history["empty_layer"] = true;
      report.cached = true;
    } else {
      std::string inputs;
      std::vector<LayerEntry> copied;
      if (const auto* copy = std::get_if<spec::CopyStep>(&step)) {
        auto source = CollectCopySource(app.context, *copy, options.layer.source_date_epoch);
        if (!source)
          return BuildError(image.name,
                            "step " + std::to_string(index + 1) + ": " + source.error().message);
        inputs = source->digest;
        copied = std::move(source->entries);
      }
      state.key = ChainKey(state.key, step_json, inputs);
      std::optional<Layer> layer = options.no_cache ? std::nullopt : cache.Lookup(state.key);
      report.cached = layer.has_value();
      if (!layer) {
        core::Result<Layer> written = core::Error{};
        if (std::holds_alternative<spec::CopyStep>(step)) {
          written = WriteLayer(std::move(copied), store_, options.layer);
        } else {
          written = RunStep(image.name, index, *CommandOf(step), state.layers, state.settings,
                            store_, options.layer);
        }
        if (!written) return written.error();
        auto recorded = cache.Record(state.key, *written);
        if (!recorded) return recorded.error();
        layer = *written;
      }
      report.has_layer = true;
      report.layer_bytes = layer->blob.size;
      state.layers.push_back(*layer);
    }
    state.history.push_back(history);
    report_step(report, true, started);
  }

  // An OCI manifest lists at least one layer: an image of settings alone gets an empty one.
  if (state.layers.empty()) {
    auto empty = WriteLayer({}, store_, options.layer);
    if (!empty) return empty.error();
    state.layers.push_back(*empty);
    state.history.push_back({{"created", created}, {"created_by", "gantry empty layer"}});
  }

  json diff_ids = json::array();
  json layers = json::array();
  for (const Layer& layer : state.layers) {
    diff_ids.push_back(layer.diff_id);
    layers.push_back(layer.blob.ToJson());
  }
  json config = {{"architecture", kArchitecture},
                 {"os", "linux"},
                 {"created", created},
                 {"config", state.settings.ToJson()},
                 {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}},
                 {"history", state.history}};
  auto config_blob = store_.PutBlob(config.dump(), kOciConfigMediaType);
  if (!config_blob) return config_blob.error();
  json manifest = {{"schemaVersion", 2},
                   {"mediaType", kOciManifestMediaType},
                   {"config", config_blob->ToJson()},
                   {"layers", layers}};
  auto manifest_blob = store_.PutBlob(manifest.dump(), kOciManifestMediaType);
  if (!manifest_blob) return manifest_blob.error();
  auto tagged = store_.Tag(image.name, *manifest_blob);
  if (!tagged) return tagged.error();
  return BuiltImage{image.name, *manifest_blob};
}

}  // namespace builder
