#include "builder/image_config.h"

namespace builder {

void ImageSettings::SetEnv(const std::string& key, const std::string& value) {
  for (std::string& variable : env) {
    if (variable.compare(0, key.size() + 1, key + "=") == 0) {
      variable = key + "=" + value;
      return;
    }
  }
  env.push_back(key + "=" + value);
}

nlohmann::json ImageSettings::ToJson() const {
  nlohmann::json config = nlohmann::json::object();
  if (!env.empty()) config["Env"] = env;
  if (!entrypoint.empty()) config["Entrypoint"] = entrypoint;
  if (!cmd.empty()) config["Cmd"] = cmd;
  if (!workdir.empty()) config["WorkingDir"] = workdir;
  if (!user.empty()) config["User"] = user;
  if (!labels.empty()) config["Labels"] = labels;
  return config;
}

ImageSettings ImageSettings::FromJson(const nlohmann::json& config) {
  ImageSettings settings;
  if (!config.is_object()) return settings;
  auto strings = [&](const char* key) {
    std::vector<std::string> values;
    if (config.contains(key) && config[key].is_array()) {
      for (const auto& value : config[key]) {
        if (value.is_string()) values.push_back(value.get<std::string>());
      }
    }
    return values;
  };
  settings.env = strings("Env");
  settings.entrypoint = strings("Entrypoint");
  settings.cmd = strings("Cmd");
  if (config.contains("WorkingDir") && config["WorkingDir"].is_string())
    settings.workdir = config["WorkingDir"];
  if (config.contains("User") && config["User"].is_string()) settings.user = config["User"];
  if (config.contains("Labels") && config["Labels"].is_object()) {
    for (const auto& [key, value] : config["Labels"].items()) {
      if (value.is_string()) settings.labels[key] = value.get<std::string>();
    }
  }
  return settings;
}

}  // namespace builder
