#include "spec/canonical.h"

#include "core/canonical_json.h"
#include "core/overloaded.h"

namespace spec {
namespace {

using nlohmann::json;

// Seconds, as a whole number when the duration is whole seconds.
json Seconds(Duration duration) {
  if (duration.count() % 1000 == 0) return duration.count() / 1000;
  return static_cast<double>(duration.count()) / 1000.0;
}

using core::Overloaded;

}  // namespace

json BaseToJson(const Base& base) {
  return std::visit(Overloaded{
                        [](const ScratchBase&) -> json { return "scratch"; },
                        [](const OciLayoutBase& layout) -> json {
                          return "oci:" + layout.path + ":" + layout.tag;
                        },
                        [](const RegistryBase& registry) -> json { return registry.reference; },
                        [](const DebootstrapBase& debootstrap) -> json {
                          return {{"debootstrap", debootstrap.suite}};
                        },
                    },
                    base);
}

json StepToJson(const Step& step) {
  return std::visit(
      Overloaded{
          [](const CopyStep& copy) -> json {
            json body = {{"src", copy.src}, {"dst", copy.dst}};
            if (!copy.ignore.empty()) body["ignore"] = copy.ignore;
            return {{"copy", body}};
          },
          [](const RunStep& run) -> json {
            return {
                {"run", {{"command", run.command}, {"network", run.network ? "default" : "none"}}}};
          },
          [](const EnvStep& env) -> json {
            return {{"env", env.variables}};
          },
          [](const WorkdirStep& workdir) -> json {
            return {{"workdir", workdir.path}};
          },
          [](const UserStep& user) -> json {
            return {{"user", user.user}};
          },
          [](const EntrypointStep& entrypoint) -> json {
            return {{"entrypoint", entrypoint.args}};
          },
          [](const CmdStep& cmd) -> json {
            return {{"cmd", cmd.args}};
          },
          [](const LabelsStep& labels) -> json {
            return {{"labels", labels.labels}};
          },
          [](const AptInstallStep& apt) -> json {
            return {{"apt_install", apt.packages}};
          },
          [](const PipInstallStep& pip) -> json {
            return {{"pip_install", pip.requirements}};
          },
      },
      step);
}

namespace {

json ImageJson(const Image& image) {
  json steps = json::array();
  for (const Step& step : image.steps) steps.push_back(StepToJson(step));
  json body = {{"from", BaseToJson(image.base)}, {"steps", steps}};
  // Only when not the default: gzip images keep the digests they had before the field.
  if (image.compression == Compression::kZstd) body["compression"] = "zstd";
  return body;
}

json FunctionJson(const Function& function) {
  json gpu = json::array();
  for (const GpuRequest& request : function.gpu)
    gpu.push_back(request.type + ":" + std::to_string(request.count));
  json body = {
      {"image", function.image},
      {"command", function.command},
      {"env", json(function.env)},
      {"gpu", gpu},
      {"cpu", function.cpu},
      {"memory", function.memory},
      {"timeout", Seconds(function.timeout)},
      {"retries", {{"max", function.retries.max}, {"backoff", Seconds(function.retries.backoff)}}},
      {"min_containers", function.min_containers},
      {"max_containers", function.max_containers},
      {"buffer_containers", function.buffer_containers},
      {"scaledown_window", Seconds(function.scaledown_window)},
      {"max_inputs", function.max_inputs},
      {"secrets", function.secrets},
      {"volumes", json(function.volumes)},
  };
  // Only when set: functions without it keep the form they had before the field.
  if (function.target_inputs) body["target_inputs"] = *function.target_inputs;
  if (function.web) {
    body["web"] = {{"port_env", function.web->port_env},
                   {"auth", core::WebAuthName(function.web->auth)},
                   {"queue_timeout", Seconds(function.web->queue_timeout)},
                   {"max_queued", function.web->max_queued},
                   {"startup_timeout", Seconds(function.web->startup_timeout)}};
    if (!function.web->health_path.empty()) body["web"]["health_path"] = function.web->health_path;
  }
  if (function.schedule) {
    json schedule = {{"overlap", core::OverlapName(function.schedule->overlap)},
                     {"catch_up", function.schedule->catch_up}};
    if (function.schedule->every) {
      schedule["every"] = Seconds(*function.schedule->every);
    } else {
      schedule["cron"] = function.schedule->cron;
      schedule["timezone"] = function.schedule->timezone;
    }
    body["schedule"] = schedule;
  }
  return body;
}

json SecretJson(const Secret& secret) {
  json body = json::object();
  if (!secret.from_env.empty()) body["from_env"] = secret.from_env;
  if (!secret.from_file.empty()) body["from_file"] = secret.from_file;
  return body;
}

}  // namespace

json BudgetToJson(const Budget& budget) {
  json body = {{"on_exceed", budget.on_exceed == OnExceed::kStop ? "stop" : "alert"}};
  if (budget.daily_usd) body["daily_usd"] = *budget.daily_usd;
  if (budget.monthly_usd) body["monthly_usd"] = *budget.monthly_usd;
  return body;
}

namespace {

template <typename T, typename ToJson>
json Section(const std::map<std::string, T>& resources, ToJson to_json) {
  json section = json::object();
  for (const auto& [name, resource] : resources) section[name] = to_json(resource);
  return section;
}

template <typename T, typename ToJson>
std::map<std::string, std::string> SectionDigests(const std::map<std::string, T>& resources,
                                                  ToJson to_json) {
  std::map<std::string, std::string> digests;
  for (const auto& [name, resource] : resources)
    digests[name] = core::CanonicalDigest(to_json(resource));
  return digests;
}

}  // namespace

json ToCanonicalJson(const App& app) {
  json canonical = {
      {"app", app.name},
      {"images", Section(app.images, ImageJson)},
      {"functions", Section(app.functions, FunctionJson)},
      {"secrets", Section(app.secrets, SecretJson)},
      {"volumes", Section(app.volumes, [](const Volume&) { return json::object(); })},
  };
  if (app.budget) canonical["budget"] = BudgetToJson(*app.budget);
  return canonical;
}

json Digests::ToJson() const {
  json digests = {{"app", app},
                  {"images", images},
                  {"functions", functions},
                  {"secrets", secrets},
                  {"volumes", volumes}};
  if (!budget.empty()) digests["budget"] = budget;
  return digests;
}

Digests ComputeDigests(const App& app) {
  Digests digests;
  digests.app = core::CanonicalDigest(ToCanonicalJson(app));
  digests.images = SectionDigests(app.images, ImageJson);
  digests.functions = SectionDigests(app.functions, FunctionJson);
  digests.secrets = SectionDigests(app.secrets, SecretJson);
  digests.volumes = SectionDigests(app.volumes, [](const Volume&) { return json::object(); });
  if (app.budget) digests.budget = core::CanonicalDigest(BudgetToJson(*app.budget));
  return digests;
}

}  // namespace spec
