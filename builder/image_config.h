#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace builder {

/// The runtime settings of an image (the `config` object of an OCI image
/// config): a base's settings, then changed by env, workdir, user,
/// entrypoint, cmd and labels steps, and seen by later run steps.
struct ImageSettings {
  std::vector<std::string> env;  // "KEY=VALUE", one per key, in the order first set
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::string workdir;
  std::string user;
  std::map<std::string, std::string> labels;

  /// Sets KEY (replacing an earlier value in place).
  void SetEnv(const std::string& key, const std::string& value);

  nlohmann::json ToJson() const;
  /// Reads an OCI image config's `config` object; unknown fields are ignored.
  static ImageSettings FromJson(const nlohmann::json& config);
};

/// PATH as Docker sets it for images that do not: what run steps and
/// containers of a scratch-based image find commands with.
inline constexpr char kDefaultPath[] =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

}  // namespace builder
