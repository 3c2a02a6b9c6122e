#include "agents/desired_state.h"

#include <algorithm>
#include <cctype>
#include <initializer_list>
#include <limits>
#include <set>
#include <utility>

#include "core/schedule_times.h"

namespace agents {
namespace {

using nlohmann::json;

core::Error FieldError(const std::string& path, const std::string& message) {
  return core::Error{core::ErrorCode::kInvalidArgument, path + ": " + message, {}};
}

/// Reads one JSON object of the document: refuses fields it does not know
/// and reports every problem with the field's path. The first error wins;
/// callers check `error()` once after reading all the fields they want.
class ObjectReader {
 public:
  ObjectReader(const json& object, std::string path, std::initializer_list<const char*> known)
      : object_(object), path_(std::move(path)) {
    if (!object_.is_object()) {
      Fail(path_.empty() ? "document" : path_, "expected an object");
      return;
    }
    std::set<std::string> allowed(known.begin(), known.end());
    for (const auto& [key, value] : object_.items()) {
      if (!allowed.count(key)) Fail(Path(key), "unknown field");
    }
  }

  std::string Path(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }
  const std::optional<core::Error>& error() const { return error_; }
  void Fail(const std::string& path, const std::string& message) {
    if (!error_) error_ = FieldError(path, message);
  }
  bool Has(const char* key) const { return object_.is_object() && object_.contains(key); }
  const json* Get(const char* key, bool required) {
    if (!object_.is_object()) return nullptr;
    auto found = object_.find(key);
    if (found == object_.end()) {
      if (required) Fail(Path(key), "missing");
      return nullptr;
    }
    return &*found;
  }

  void String(const char* key, std::string* out, bool required = false) {
    if (const json* value = Get(key, required)) {
      if (!value->is_string()) return Fail(Path(key), "expected a string");
      *out = value->get<std::string>();
    }
  }
  template <typename Int>
  void Integer(const char* key, Int* out, std::int64_t min, bool required = false) {
    if (const json* value = Get(key, required)) {
      if (!value->is_number_integer() || value->get<std::int64_t>() < min ||
          (value->is_number_unsigned() &&
           value->get<std::uint64_t>() > std::uint64_t(std::numeric_limits<std::int64_t>::max())) ||
          std::cmp_greater(value->get<std::int64_t>(), std::numeric_limits<Int>::max())) {
        return Fail(Path(key), "expected an integer >= " + std::to_string(min));
      }
      *out = static_cast<Int>(value->get<std::int64_t>());
    }
  }
  void Milliseconds(const char* key, std::chrono::milliseconds* out, std::int64_t min) {
    std::int64_t count = out->count();
    Integer(key, &count, min);
    *out = std::chrono::milliseconds(count);
  }
  void Number(const char* key, double* out, double min) {
    if (const json* value = Get(key, false)) {
      if (!value->is_number() || value->get<double>() < min) {
        return Fail(Path(key), "expected a number >= " + std::to_string(min));
      }
      *out = value->get<double>();
    }
  }
  void StringList(const char* key, std::vector<std::string>* out) {
    if (const json* value = Get(key, false)) {
      if (!value->is_array()) return Fail(Path(key), "expected a list of strings");
      for (const json& item : *value) {
        if (!item.is_string()) return Fail(Path(key), "expected a list of strings");
        out->push_back(item.get<std::string>());
      }
    }
  }
  void StringMap(const char* key, std::map<std::string, std::string>* out) {
    if (const json* value = Get(key, false)) {
      if (!value->is_object()) return Fail(Path(key), "expected an object of strings");
      for (const auto& [name, item] : value->items()) {
        if (!item.is_string()) return Fail(Path(key) + "." + name, "expected a string");
        (*out)[name] = item.get<std::string>();
      }
    }
  }

 private:
  const json& object_;
  std::string path_;
  std::optional<core::Error> error_;
};

/// Names become folder names and container ids: nothing that could climb
/// out of a folder or confuse runc.
bool IsValidName(const std::string& name) {
  if (name.empty() || name.size() > 63) return false;
  if (!std::islower(static_cast<unsigned char>(name[0])) &&
      !std::isdigit(static_cast<unsigned char>(name[0]))) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::islower(static_cast<unsigned char>(c)) ||
           std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '_';
  });
}

bool IsEnvKey(const std::string& key) {
  return !key.empty() && key.find('=') == std::string::npos && key.find('\0') == std::string::npos;
}

std::optional<core::Error> CheckName(const std::string& path, const std::string& name) {
  if (IsValidName(name)) return std::nullopt;
  return FieldError(
      path, "invalid name \"" + name + "\" (lower-case letters, digits, - and _; 63 at most)");
}

std::optional<core::Error> ReadFunction(const json& value, const std::string& path,
                                        FunctionState* function) {
  ObjectReader reader(value, path,
                      {"image", "command", "env", "cpu", "memory_bytes", "gpu", "timeout_ms",
                       "retries", "retry_backoff_ms", "min_containers", "max_containers",
                       "buffer_containers", "scaledown_window_ms", "max_inputs",
                       "target_utilisation", "web", "schedule", "secrets", "volumes"});
  if (const json* image = reader.Get("image", true)) {
    ObjectReader image_reader(*image, reader.Path("image"), {"digest", "reference"});
    image_reader.String("digest", &function->image.digest, true);
    image_reader.String("reference", &function->image.reference);
    if (image_reader.error()) return image_reader.error();
    const std::string& digest = function->image.digest;
    if (digest.size() != 71 || digest.rfind("sha256:", 0) != 0 ||
        digest.find_first_not_of("0123456789abcdef", 7) != std::string::npos) {
      return FieldError(reader.Path("image.digest"),
                        "expected sha256: and 64 lower-case hex digits");
    }
  }
  reader.StringList("command", &function->command);
  reader.StringMap("env", &function->env);
  reader.Number("cpu", &function->cpu, 0);
  reader.Integer("memory_bytes", &function->memory_bytes, 0);
  if (const json* gpu = reader.Get("gpu", false)) {
    GpuClaim claim;
    ObjectReader gpu_reader(*gpu, reader.Path("gpu"), {"type", "count"});
    gpu_reader.String("type", &claim.type, true);
    gpu_reader.Integer("count", &claim.count, 1);
    if (gpu_reader.error()) return gpu_reader.error();
    function->gpu = claim;
  }
  reader.Milliseconds("timeout_ms", &function->timeout, 1);
  reader.Integer("retries", &function->retries, 0);
  reader.Milliseconds("retry_backoff_ms", &function->retry_backoff, 0);
  reader.Integer("min_containers", &function->min_containers, 0);
  reader.Integer("max_containers", &function->max_containers, 1);
  reader.Integer("buffer_containers", &function->buffer_containers, 0);
  reader.Milliseconds("scaledown_window_ms", &function->scaledown_window, 1);
  reader.Integer("max_inputs", &function->max_inputs, 1);
  reader.Number("target_utilisation", &function->target_utilisation, 0);
  if (const json* web = reader.Get("web", false)) {
    WebState state;
    ObjectReader web_reader(*web, reader.Path("web"),
                            {"port_env", "health_path", "auth", "queue_timeout_ms", "max_queued",
                             "startup_timeout_ms"});
    web_reader.String("port_env", &state.port_env);
    web_reader.String("health_path", &state.health_path);
    std::string auth = WebAuthName(state.auth);
    web_reader.String("auth", &auth);
    web_reader.Milliseconds("queue_timeout_ms", &state.queue_timeout, 1);
    web_reader.Integer("max_queued", &state.max_queued, 0);
    web_reader.Milliseconds("startup_timeout_ms", &state.startup_timeout, 1);
    if (web_reader.error()) return web_reader.error();
    auto auth_mode = core::WebAuthFromName(auth);
    if (!auth_mode) return FieldError(web_reader.Path("auth"), "expected public, token or key");
    state.auth = *auth_mode;
    if (!IsEnvKey(state.port_env)) {
      return FieldError(web_reader.Path("port_env"),
                        "invalid variable name \"" + state.port_env + "\"");
    }
    if (!state.health_path.empty() &&
        (state.health_path[0] != '/' ||
         state.health_path.find_first_of(" \r\n") != std::string::npos)) {
      return FieldError(web_reader.Path("health_path"),
                        "expected a path starting with /, without spaces");
    }
    function->web = state;
  }
  if (const json* schedule = reader.Get("schedule", false)) {
    ScheduleState state;
    ObjectReader schedule_reader(*schedule, reader.Path("schedule"),
                                 {"cron", "timezone", "every_ms", "overlap", "catch_up"});
    schedule_reader.String("cron", &state.cron);
    schedule_reader.String("timezone", &state.timezone);
    if (schedule_reader.Has("every_ms")) {
      std::chrono::milliseconds every{0};
      schedule_reader.Milliseconds("every_ms", &every, 1);
      state.every = every;
    }
    std::string overlap = OverlapName(state.overlap);
    schedule_reader.String("overlap", &overlap);
    schedule_reader.Integer("catch_up", &state.catch_up, 0);
    if (schedule_reader.error()) return schedule_reader.error();
    if (state.cron.empty() == !state.every.has_value()) {
      return FieldError(reader.Path("schedule"), "expected exactly one of cron and every_ms");
    }
    auto times = state.every ? core::ScheduleTimes::Every(*state.every)
                             : core::ScheduleTimes::Cron(state.cron, state.timezone);
    if (!times) {
      return FieldError(schedule_reader.Path(state.every ? "every_ms" : "cron"),
                        times.error().message);
    }
    auto overlap_mode = core::OverlapFromName(overlap);
    if (!overlap_mode) {
      return FieldError(schedule_reader.Path("overlap"), "expected skip, allow or replace");
    }
    state.overlap = *overlap_mode;
    function->schedule = state;
  }
  reader.StringList("secrets", &function->secrets);
  reader.StringMap("volumes", &function->volumes);
  if (reader.error()) return reader.error();
  if (function->web && function->schedule) {
    return FieldError(reader.Path("schedule"), "a web function cannot have a schedule");
  }

  for (const auto& [key, unused] : function->env) {
    if (!IsEnvKey(key))
      return FieldError(reader.Path("env"), "invalid variable name \"" + key + "\"");
  }
  if (function->min_containers > function->max_containers) {
    return FieldError(reader.Path("min_containers"), "more than max_containers");
  }
  if (function->target_utilisation <= 0 || function->target_utilisation > 1) {
    return FieldError(reader.Path("target_utilisation"), "expected a number in (0, 1]");
  }
  for (const auto& [mount, volume] : function->volumes) {
    if (mount.empty() || mount[0] != '/' || mount.find("/../") != std::string::npos ||
        mount.ends_with("/..")) {
      return FieldError(reader.Path("volumes"),
                        "mount path \"" + mount + "\" must be absolute, without ..");
    }
  }
  return std::nullopt;
}

std::optional<core::Error> ReadBudget(const json& value, const std::string& path,
                                      BudgetState* budget) {
  ObjectReader reader(value, path, {"daily_usd", "monthly_usd", "on_exceed"});
  for (auto [key, cap] : {std::pair{"daily_usd", &budget->daily_usd},
                          std::pair{"monthly_usd", &budget->monthly_usd}}) {
    if (!reader.Has(key)) continue;
    double usd = 0;
    reader.Number(key, &usd, 0);
    *cap = usd;
  }
  std::string on_exceed = BudgetActionName(budget->on_exceed);
  reader.String("on_exceed", &on_exceed);
  if (reader.error()) return reader.error();
  if (on_exceed != "stop" && on_exceed != "alert")
    return FieldError(reader.Path("on_exceed"), "expected stop or alert");
  budget->on_exceed = on_exceed == "stop" ? BudgetAction::kStop : BudgetAction::kAlert;
  if (!budget->daily_usd && !budget->monthly_usd)
    return FieldError(path, "expected daily_usd, monthly_usd or both");
  return std::nullopt;
}

std::optional<core::Error> ReadApp(const json& value, const std::string& path, AppState* app) {
  ObjectReader reader(value, path, {"functions", "secrets", "volumes", "web_key_sha256", "budget"});
  reader.StringList("volumes", &app->volumes);
  reader.String("web_key_sha256", &app->web_key_sha256);
  if (const json* budget = reader.Get("budget", false)) {
    BudgetState state;
    if (auto error = ReadBudget(*budget, reader.Path("budget"), &state)) return error;
    app->budget = state;
  }
  const json* functions = reader.Get("functions", true);
  const json* secrets = reader.Get("secrets", false);
  if (reader.error()) return reader.error();

  for (const std::string& volume : app->volumes) {
    if (auto error = CheckName(reader.Path("volumes"), volume)) return error;
  }
  if (!app->web_key_sha256.empty() &&
      (app->web_key_sha256.size() != 64 ||
       app->web_key_sha256.find_first_not_of("0123456789abcdef") != std::string::npos)) {
    return FieldError(reader.Path("web_key_sha256"), "expected 64 lower-case hex digits");
  }
  if (secrets) {
    if (!secrets->is_object()) return FieldError(reader.Path("secrets"), "expected an object");
    for (const auto& [name, values] : secrets->items()) {
      std::string secret_path = reader.Path("secrets") + "." + name;
      if (auto error = CheckName(secret_path, name)) return error;
      if (!values.is_object()) return FieldError(secret_path, "expected an object of strings");
      auto& pairs = app->secrets[name];
      for (const auto& [key, secret_value] : values.items()) {
        // The value is never echoed back, right or wrong.
        if (!secret_value.is_string())
          return FieldError(secret_path + "." + key, "expected a string");
        if (!IsEnvKey(key)) return FieldError(secret_path, "invalid variable name \"" + key + "\"");
        pairs[key] = secret_value.get<std::string>();
      }
    }
  }
  if (!functions->is_object()) return FieldError(reader.Path("functions"), "expected an object");
  for (const auto& [name, function_value] : functions->items()) {
    std::string function_path = reader.Path("functions") + "." + name;
    if (auto error = CheckName(function_path, name)) return error;
    FunctionState function;
    function.name = name;
    if (auto error = ReadFunction(function_value, function_path, &function)) return error;
    for (const std::string& secret : function.secrets) {
      if (!app->secrets.count(secret)) {
        return FieldError(function_path + ".secrets", "no secret \"" + secret + "\" in this app");
      }
    }
    for (const auto& [mount, volume] : function.volumes) {
      if (std::find(app->volumes.begin(), app->volumes.end(), volume) == app->volumes.end()) {
        return FieldError(function_path + ".volumes", "no volume \"" + volume + "\" in this app");
      }
    }
    if (function.web && function.web->auth == WebAuth::kKey && app->web_key_sha256.empty()) {
      return FieldError(function_path + ".web.auth", "key needs the app's web_key_sha256");
    }
    app->functions.emplace(name, std::move(function));
  }
  return std::nullopt;
}

}  // namespace

const char* BudgetActionName(BudgetAction action) {
  return action == BudgetAction::kStop ? "stop" : "alert";
}

const FunctionState* DesiredState::FindFunction(std::string_view app,
                                                std::string_view function) const {
  auto found_app = apps.find(std::string(app));
  if (found_app == apps.end()) return nullptr;
  auto found = found_app->second.functions.find(std::string(function));
  return found == found_app->second.functions.end() ? nullptr : &found->second;
}

core::Result<DesiredState> ParseDesiredState(const json& document) {
  DesiredState state;
  ObjectReader reader(document, "", {"generation", "apps"});
  reader.Integer("generation", &state.generation, 1, true);
  const json* apps = reader.Get("apps", true);
  if (reader.error()) return *reader.error();
  if (!apps->is_object()) return FieldError("apps", "expected an object");
  for (const auto& [name, app_value] : apps->items()) {
    if (auto error = CheckName("apps." + name, name)) return *error;
    AppState app;
    app.name = name;
    if (auto error = ReadApp(app_value, "apps." + name, &app)) return *error;
    state.apps.emplace(name, std::move(app));
  }
  return state;
}

core::Result<DesiredState> ParseDesiredState(std::string_view text) {
  json document = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) {
    return core::Error{core::ErrorCode::kParse, "the desired state is not valid JSON", {}};
  }
  return ParseDesiredState(document);
}

json ToJson(const DesiredState& state, bool redact_secrets) {
  json apps = json::object();
  for (const auto& [app_name, app] : state.apps) {
    json functions = json::object();
    for (const auto& [name, function] : app.functions) {
      json image = {{"digest", function.image.digest}};
      if (!function.image.reference.empty()) image["reference"] = function.image.reference;
      json value = {{"image", image},
                    {"command", function.command},
                    {"env", function.env},
                    {"cpu", function.cpu},
                    {"memory_bytes", function.memory_bytes},
                    {"timeout_ms", function.timeout.count()},
                    {"retries", function.retries},
                    {"retry_backoff_ms", function.retry_backoff.count()},
                    {"min_containers", function.min_containers},
                    {"max_containers", function.max_containers},
                    {"buffer_containers", function.buffer_containers},
                    {"scaledown_window_ms", function.scaledown_window.count()},
                    {"max_inputs", function.max_inputs},
                    {"target_utilisation", function.target_utilisation},
                    {"secrets", function.secrets},
                    {"volumes", function.volumes}};
      if (function.web) {
        const WebState& web = *function.web;
        value["web"] = {
            {"port_env", web.port_env},      {"health_path", web.health_path},
            {"auth", WebAuthName(web.auth)}, {"queue_timeout_ms", web.queue_timeout.count()},
            {"max_queued", web.max_queued},  {"startup_timeout_ms", web.startup_timeout.count()}};
      }
      if (function.schedule) {
        const ScheduleState& schedule = *function.schedule;
        json written = {{"overlap", OverlapName(schedule.overlap)},
                        {"catch_up", schedule.catch_up}};
        if (schedule.every) {
          written["every_ms"] = schedule.every->count();
        } else {
          written["cron"] = schedule.cron;
          written["timezone"] = schedule.timezone;
        }
        value["schedule"] = std::move(written);
      }
      if (function.gpu)
        value["gpu"] = {{"type", function.gpu->type}, {"count", function.gpu->count}};
      functions[name] = std::move(value);
    }
    json secrets = json::object();
    for (const auto& [secret_name, pairs] : app.secrets) {
      json values = json::object();
      for (const auto& [key, value] : pairs) values[key] = redact_secrets ? "(sensitive)" : value;
      secrets[secret_name] = std::move(values);
    }
    apps[app_name] = {{"functions", functions}, {"secrets", secrets}, {"volumes", app.volumes}};
    if (!app.web_key_sha256.empty()) apps[app_name]["web_key_sha256"] = app.web_key_sha256;
    if (app.budget) {
      json budget = {{"on_exceed", BudgetActionName(app.budget->on_exceed)}};
      if (app.budget->daily_usd) budget["daily_usd"] = *app.budget->daily_usd;
      if (app.budget->monthly_usd) budget["monthly_usd"] = *app.budget->monthly_usd;
      apps[app_name]["budget"] = std::move(budget);
    }
  }
  return {{"generation", state.generation}, {"apps", apps}};
}

}  // namespace agents
