#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/function_modes.h"
#include "core/gpu_type.h"

/// The typed model of an app spec: what `spec::Load` makes of a YAML or Lua
/// file once it is valid. Plain structs with every default filled in, so that
/// the builder, planner and exporters read values, never re-interpret text.
/// README.md documents every field; schemas/app.schema.json is its JSON Schema.
namespace spec {

using Duration = std::chrono::milliseconds;

/// Where an image starts. `from:` in the spec.
struct ScratchBase {};
struct OciLayoutBase {  // "oci:PATH[:TAG]", PATH relative to the spec's folder
  std::string path;
  std::string tag = "latest";
};
struct RegistryBase {  // "registry.example.com/team/img:tag", normalised as docker does
  std::string reference;
};
struct DebootstrapBase {  // {debootstrap: bookworm}
  std::string suite;
};
using Base = std::variant<ScratchBase, OciLayoutBase, RegistryBase, DebootstrapBase>;

/// How an image's layers are compressed. `compression:` in the spec.
enum class Compression {
  kGzip,  // application/vnd.oci.image.layer.v1.tar+gzip, what every tool reads
  kZstd,  // application/vnd.oci.image.layer.v1.tar+zstd, faster to pack and to unpack
};

/// The steps of an image, each one layer or one change to the image config.
struct CopyStep {
  std::string src;     // relative to the build context (the spec's folder)
  std::string dst;     // absolute path in the image
  std::string ignore;  // an ignore file in the context, "" for none
};
struct RunStep {
  std::string command;  // run by /bin/sh -c
  bool network = true;  // `network: none` turns it off
};
struct EnvStep {
  std::map<std::string, std::string> variables;
};
struct WorkdirStep {
  std::string path;
};
struct UserStep {
  std::string user;  // "uid[:gid]" or a name known to the image
};
struct EntrypointStep {
  std::vector<std::string> args;
};
struct CmdStep {
  std::vector<std::string> args;
};
struct LabelsStep {
  std::map<std::string, std::string> labels;
};
struct AptInstallStep {
  std::vector<std::string> packages;
};
struct PipInstallStep {
  std::vector<std::string> requirements;
};
using Step = std::variant<CopyStep, RunStep, EnvStep, WorkdirStep, UserStep, EntrypointStep,
                          CmdStep, LabelsStep, AptInstallStep, PipInstallStep>;

/// An image: a base plus ordered steps. Image-level `entrypoint`, `cmd`,
/// `env`, `workdir`, `user` and `labels` are read as steps appended after
/// `steps`, so there is one way to say each thing.
struct Image {
  std::string name;
  Base base;
  std::vector<Step> steps;
  Compression compression = Compression::kGzip;
};

/// One acceptable GPU: a type from spec::kGpuTypes (or "any") and a count.
struct GpuRequest {
  std::string type;
  int count = 1;
};

struct Retries {
  int max = 0;                        // retries after the first attempt
  Duration backoff = Duration(1000);  // wait before the first retry, doubled each time
};

/// Who may call a web endpoint.
using core::WebAuth;

/// A function that serves HTTP on a port the agent assigns.
struct Web {
  std::string port_env = "PORT";  // variable that carries the port
  std::string health_path;        // "" means ready once the port accepts a connection
  WebAuth auth = WebAuth::kPublic;
  Duration queue_timeout = Duration(30'000);    // a request's wait for a ready container; then 503
  int max_queued = 1000;                        // requests waiting at once; more get a 503 at once
  Duration startup_timeout = Duration(60'000);  // how long a new container has to become ready
};

/// What happens when a scheduled run is due while the previous one still runs.
using core::Overlap;

/// When a job function fires: a cron expression in a timezone, or a period.
struct Schedule {
  std::string cron;  // "" when `every` is set; whitespace normalised
  std::string timezone = "UTC";
  std::optional<Duration> every;
  Overlap overlap = Overlap::kSkip;
  int catch_up = 1;  // missed runs made up after downtime, the most recent ones
};

/// A function: an image and a command, its resources, and either `web`
/// (a long-running server), `schedule` (a job fired on time) or neither
/// (a job run by calls).
struct Function {
  std::string name;
  std::string image;                 // a key of App::images
  std::vector<std::string> command;  // empty: the image's entrypoint and cmd
  std::map<std::string, std::string> env;
  std::optional<Web> web;
  std::optional<Schedule> schedule;
  std::vector<GpuRequest> gpu;          // fallback order; empty: no GPU
  double cpu = 0.125;                   // cores
  std::uint64_t memory = 128ull << 20;  // bytes
  Duration timeout = Duration(300'000);
  Retries retries;
  int min_containers = 0;
  int max_containers = 10;
  int buffer_containers = 0;
  Duration scaledown_window = Duration(60'000);
  int max_inputs = 1;  // concurrent inputs per container
  // Web: the concurrent requests per container the autoscaler aims at, at
  // most max_inputs (which a burst may reach); unset: max_inputs.
  std::optional<int> target_inputs;
  std::vector<std::string> secrets;            // keys of App::secrets
  std::map<std::string, std::string> volumes;  // mount path -> key of App::volumes
};

/// Named key/values read from the deployer's machine at plan time; the spec
/// says only where they come from.
struct Secret {
  std::string name;
  std::vector<std::string> from_env;  // environment variable names
  std::string from_file;              // a dotenv file, relative to the spec's folder
};

/// A named persistent directory on each agent that mounts it.
struct Volume {
  std::string name;
};

enum class OnExceed { kStop, kAlert };

struct Budget {
  std::optional<double> daily_usd;
  std::optional<double> monthly_usd;
  OnExceed on_exceed = OnExceed::kStop;
};

struct App {
  std::string name;
  std::map<std::string, Image> images;
  std::map<std::string, Function> functions;
  std::map<std::string, Secret> secrets;
  std::map<std::string, Volume> volumes;
  std::optional<Budget> budget;
  std::filesystem::path source;   // the spec file
  std::filesystem::path context;  // its folder: the build context
};

/// GPU types a function may ask for (core/gpu_type.h, shared with the agents'
/// inventory). "any" means any of them.
using core::kGpuTypes;

}  // namespace spec
