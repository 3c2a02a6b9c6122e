#include "planner/compose_export.h"

#include "core/quantity.h"

namespace planner {
namespace {

using Json = nlohmann::ordered_json;

constexpr int kContainerPort = 8080;

// Compose reads "$" in values as interpolation; "$$" is a literal one.
std::string Literal(const std::string& value) {
  std::string escaped;
  for (char c : value) {
    if (c == '$') escaped += '$';
    escaped += c;
  }
  return escaped;
}

// Docker's memory units: "64m", "2g", or bytes.
std::string DockerMemory(std::uint64_t bytes) {
  constexpr std::pair<std::uint64_t, const char*> kUnits[] = {
      {1ull << 30, "g"}, {1ull << 20, "m"}, {1ull << 10, "k"}};
  for (const auto& [unit, suffix] : kUnits) {
    if (bytes % unit == 0) return std::to_string(bytes / unit) + suffix;
  }
  return std::to_string(bytes);
}

class ComposeExporter {
 public:
  ComposeExporter(const spec::App& app, const ComposeExportOptions& options)
      : app_(app), options_(options) {}

  core::Result<ExportedManifests> Export() {
    result_.warnings = UnexportableFieldWarnings(app_);
    Json services = Json::object();
    for (const auto& [name, function] : app_.functions) {
      auto service = Service(function);
      if (!service) return service.error();
      services[name] = *service;
    }
    Json compose = {{"services", services}};
    if (!app_.volumes.empty()) {
      Json volumes = Json::object();
      for (const auto& [name, volume] : app_.volumes) volumes[name] = Json::object();
      compose["volumes"] = volumes;
    }
    result_.documents.push_back(compose);
    return std::move(result_);
  }

 private:
  void Warn(std::string warning) { result_.warnings.push_back(std::move(warning)); }

  // KEY -> value for each key of the function's secrets that compose
  // can name; `from_file` secrets without values become env_file entries.
  void AddSecrets(const spec::Function& function, Json* environment, Json* env_files) {
    for (const std::string& name : function.secrets) {
      const spec::Secret& secret = app_.secrets.at(name);
      if (options_.inputs.secret_values) {
        auto values = options_.inputs.secret_values->find(name);
        if (values == options_.inputs.secret_values->end()) continue;
        for (const auto& [key, value] : values->second) (*environment)[key] = Literal(value);
        continue;
      }
      for (const std::string& variable : secret.from_env)
        (*environment)[variable] =
            "${" + variable + ":?secret " + name + " needs " + variable + " set}";
      if (!secret.from_file.empty())
        env_files->push_back((options_.spec_folder / secret.from_file).lexically_normal().string());
    }
  }

  // A web function runs `replicas` containers; a job one container per run.
  void WarnScaling(const spec::Function& function, int replicas) {
    const spec::Function defaults;
    const std::string path = "functions." + function.name + ".";
    if (function.web && function.min_containers == 0)
      Warn(path + "min_containers: 0 (scale to zero) is lost: compose runs 1 container");
    if (!function.web && function.min_containers != defaults.min_containers)
      Warn(path + "min_containers: " + std::to_string(function.min_containers) +
           " is not exported: compose starts a job's container per run");
    if (function.web ? function.max_containers != replicas
                     : function.max_containers != defaults.max_containers)
      Warn(path + "max_containers: " + std::to_string(function.max_containers) +
           " is not exported: compose does not autoscale");
    if (function.max_inputs != defaults.max_inputs)
      Warn(path + "max_inputs: " + std::to_string(function.max_inputs) +
           " is not exported: compose does not limit inputs per container");
    if (function.target_inputs)
      Warn(path + "target_inputs: " + std::to_string(*function.target_inputs) +
           " is not exported: compose does not autoscale");
    if (function.scaledown_window != defaults.scaledown_window)
      Warn(path + "scaledown_window: " + core::FormatDuration(function.scaledown_window) +
           " is not exported: compose does not scale down");
  }

  void WarnGpus(const spec::Function& function) {
    if (function.gpu.empty()) return;
    const std::string path = "functions." + function.name + ".gpu: ";
    const spec::GpuRequest& first = function.gpu.front();
    if (first.type != "any")
      Warn(path + first.type + " is not exported: compose reserves " + std::to_string(first.count) +
           " GPU(s) of whatever type the host has");
    for (std::size_t i = 1; i < function.gpu.size(); ++i)
      Warn(path + "fallback " + function.gpu[i].type + ":" + std::to_string(function.gpu[i].count) +
           " is not exported: a single host has the GPUs it has");
  }

  void WarnLifecycle(const spec::Function& function) {
    const spec::Function defaults;
    const spec::Web default_web;
    const std::string path = "functions." + function.name + ".";
    if (function.timeout != defaults.timeout)
      Warn(path + "timeout: " + core::FormatDuration(function.timeout) +
           " is not exported: compose puts no deadline on a container");
    if (function.retries.max != defaults.retries.max)
      Warn(path + "retries: " + std::to_string(function.retries.max) +
           " is not exported: docker compose run does not retry");
    if (function.web) {
      if (!function.web->health_path.empty())
        Warn(path + "web.health_path: " + function.web->health_path +
             " is not exported: without gantry's router nothing waits for readiness");
      if (function.web->startup_timeout != default_web.startup_timeout)
        Warn(path + "web.startup_timeout: " + core::FormatDuration(function.web->startup_timeout) +
             " is not exported: without gantry's router nothing waits for readiness");
    }
    if (function.schedule) {
      const spec::Schedule& schedule = *function.schedule;
      std::string when = schedule.every ? "every " + core::FormatDuration(*schedule.every)
                                        : "\"" + schedule.cron + "\" in " + schedule.timezone;
      Warn(path + "schedule: " + when +
           " is not exported: compose has no scheduler; run docker compose run --rm " +
           function.name + " from the host's cron");
    }
  }

  core::Result<Json> Service(const spec::Function& function) {
    auto reference = options_.inputs.image_references.find(function.image);
    if (reference == options_.inputs.image_references.end()) {
      return core::Error{
          core::ErrorCode::kInvalidArgument,
          "functions." + function.name + ": image " + function.image + " has no pushed reference",
          {}};
    }
    Json service = {{"image", reference->second}};
    // The command replaces the image's entrypoint and cmd, as on an agent.
    if (!function.command.empty()) {
      Json entrypoint = Json::array();
      for (const std::string& arg : function.command) entrypoint.push_back(Literal(arg));
      service["entrypoint"] = entrypoint;
    }
    Json environment = Json::object();
    for (const auto& [name, value] : function.env) environment[name] = Literal(value);
    if (function.web) environment[function.web->port_env] = std::to_string(kContainerPort);
    Json env_files = Json::array();
    AddSecrets(function, &environment, &env_files);
    if (!environment.empty()) service["environment"] = environment;
    if (!env_files.empty()) service["env_file"] = env_files;
    if (function.web)
      service["ports"] = Json::array({{{"target", kContainerPort}}});
    else
      service["profiles"] = Json::array({"jobs"});
    if (!function.volumes.empty()) {
      Json volumes = Json::array();
      for (const auto& [path, volume] : function.volumes) volumes.push_back(volume + ":" + path);
      service["volumes"] = volumes;
    }
    const int replicas = function.web ? std::max(1, function.min_containers) : 1;
    Json resources = {
        {"limits",
         {{"cpus", Json(function.cpu).dump()}, {"memory", DockerMemory(function.memory)}}}};
    if (!function.gpu.empty()) {
      resources["reservations"] = {
          {"devices", Json::array({{{"driver", "nvidia"},
                                    {"count", function.gpu.front().count},
                                    {"capabilities", Json::array({"gpu"})}}})}};
    }
    Json deploy = Json::object();
    if (function.web) deploy["replicas"] = replicas;
    deploy["resources"] = resources;
    service["deploy"] = deploy;
    service["restart"] = function.web ? "unless-stopped" : "no";
    WarnScaling(function, replicas);
    WarnGpus(function);
    WarnLifecycle(function);
    return service;
  }

  const spec::App& app_;
  const ComposeExportOptions& options_;
  ExportedManifests result_;
};

}  // namespace

core::Result<ExportedManifests> ExportCompose(const spec::App& app,
                                              const ComposeExportOptions& options) {
  return ComposeExporter(app, options).Export();
}

}  // namespace planner
