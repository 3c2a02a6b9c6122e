#include "builder/registry_auth.h"

#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/base64.h"
#include "core/subprocess.h"
#include "core/text.h"

namespace builder {
namespace {

std::string Lower(std::string_view text) {
  std::string lower(text);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower;
}

bool IsTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// Reads the text of a parse: a cursor over the header value.
struct Cursor {
  std::string_view text;
  std::size_t at = 0;

  void SkipSpaces() {
    while (at < text.size() && (text[at] == ' ' || text[at] == '\t')) ++at;
  }
  bool Done() const { return at >= text.size(); }
  std::string Token() {
    std::size_t start = at;
    while (at < text.size() && IsTokenChar(text[at])) ++at;
    return std::string(text.substr(start, at - start));
  }
  // A quoted-string with its backslash escapes undone; nullopt when unterminated.
  std::optional<std::string> Quoted() {
    std::string value;
    for (++at; at < text.size(); ++at) {
      if (text[at] == '"') {
        ++at;
        return value;
      }
      if (text[at] == '\\' && at + 1 < text.size()) ++at;
      value += text[at];
    }
    return std::nullopt;
  }
};

// "https://index.docker.io/v1/" -> "index.docker.io"; "127.0.0.1:5000" as it is.
std::string HostOfKey(std::string_view key) {
  if (auto scheme = key.find("://"); scheme != std::string_view::npos)
    key.remove_prefix(scheme + 3);
  return Lower(key.substr(0, key.find('/')));
}

bool SameRegistry(const std::string& key_host, const std::string& registry) {
  std::string wanted = Lower(registry);
  if (key_host == wanted) return true;
  auto is_docker_hub = [](const std::string& host) {
    return host == "docker.io" || host == "index.docker.io" || host == "registry-1.docker.io";
  };
  return is_docker_hub(key_host) && is_docker_hub(wanted);
}

core::Error ConfigError(const std::string& source, const std::string& message) {
  return core::Error{core::ErrorCode::kParse, message, core::Location{source, 0, 0}};
}

}  // namespace

std::vector<AuthChallenge> ParseAuthChallenges(std::string_view header) {
  std::vector<AuthChallenge> challenges;
  Cursor cursor{header};
  while (true) {
    cursor.SkipSpaces();
    while (!cursor.Done() && cursor.text[cursor.at] == ',') {
      ++cursor.at;
      cursor.SkipSpaces();
    }
    if (cursor.Done()) break;
    std::string scheme = cursor.Token();
    if (scheme.empty()) break;
    AuthChallenge challenge{Lower(scheme), {}};
    // auth-params: name=value or name="value", separated by commas. A name
    // followed by a space and another token starts the next challenge.
    while (true) {
      cursor.SkipSpaces();
      std::size_t saved = cursor.at;
      std::string name = cursor.Token();
      cursor.SkipSpaces();
      if (name.empty() || cursor.Done() || cursor.text[cursor.at] != '=') {
        cursor.at = saved;  // the next challenge's scheme (or the end)
        break;
      }
      ++cursor.at;
      cursor.SkipSpaces();
      std::optional<std::string> value;
      if (!cursor.Done() && cursor.text[cursor.at] == '"') {
        value = cursor.Quoted();
        if (!value) {
          challenges.push_back(std::move(challenge));
          return challenges;
        }
      } else {
        // A bare value: a token in the RFC, but realms are written bare as URLs too.
        std::size_t start = cursor.at;
        while (!cursor.Done() && cursor.text[cursor.at] != ',' && cursor.text[cursor.at] != ' ' &&
               cursor.text[cursor.at] != '\t')
          ++cursor.at;
        value = std::string(cursor.text.substr(start, cursor.at - start));
      }
      challenge.parameters[Lower(name)] = *value;
      cursor.SkipSpaces();
      if (!cursor.Done() && cursor.text[cursor.at] == ',') ++cursor.at;
    }
    challenges.push_back(std::move(challenge));
  }
  return challenges;
}

core::Result<std::optional<RegistryCredentials>> DockerConfigCredentials(
    std::string_view config_text, const std::string& registry, const std::string& source) {
  nlohmann::json config = nlohmann::json::parse(config_text, nullptr, /*allow_exceptions=*/false);
  if (!config.is_object()) return ConfigError(source, "not a JSON object");
  if (!config.contains("auths")) return std::optional<RegistryCredentials>();
  if (!config["auths"].is_object()) return ConfigError(source, "`auths` is not an object");
  for (const auto& [key, entry] : config["auths"].items()) {
    if (!SameRegistry(HostOfKey(key), registry) || !entry.is_object()) continue;
    RegistryCredentials credentials;
    credentials.source = source;
    if (entry.contains("auth") && entry["auth"].is_string() &&
        !entry["auth"].get<std::string>().empty()) {
      std::optional<std::string> decoded = core::Base64Decode(entry["auth"].get<std::string>());
      std::size_t colon = decoded ? decoded->find(':') : std::string::npos;
      if (colon == std::string::npos) {
        return ConfigError(source, "the `auth` of " + key + " is not base64 of \"user:password\"");
      }
      credentials.username = decoded->substr(0, colon);
      credentials.password = decoded->substr(colon + 1);
      return std::optional<RegistryCredentials>(std::move(credentials));
    }
    if (entry.contains("username") && entry["username"].is_string() && entry.contains("password") &&
        entry["password"].is_string()) {
      credentials.username = entry["username"].get<std::string>();
      credentials.password = entry["password"].get<std::string>();
      return std::optional<RegistryCredentials>(std::move(credentials));
    }
  }
  return std::optional<RegistryCredentials>();
}

core::Result<std::optional<std::string>> DockerConfigHelper(std::string_view config_text,
                                                            const std::string& registry,
                                                            const std::string& source) {
  nlohmann::json config = nlohmann::json::parse(config_text, nullptr, /*allow_exceptions=*/false);
  if (!config.is_object()) return ConfigError(source, "not a JSON object");
  if (config.contains("credHelpers")) {
    if (!config["credHelpers"].is_object())
      return ConfigError(source, "`credHelpers` is not an object");
    for (const auto& [key, helper] : config["credHelpers"].items()) {
      if (!SameRegistry(HostOfKey(key), registry)) continue;
      if (!helper.is_string() || helper.get<std::string>().empty())
        return ConfigError(source, "the `credHelpers` entry of " + key + " is not a helper's name");
      return std::optional<std::string>(helper.get<std::string>());
    }
  }
  if (config.contains("credsStore")) {
    if (!config["credsStore"].is_string())
      return ConfigError(source, "`credsStore` is not a helper's name");
    if (!config["credsStore"].get<std::string>().empty())
      return std::optional<std::string>(config["credsStore"].get<std::string>());
  }
  return std::optional<std::string>();
}

core::Result<std::optional<RegistryCredentials>> RunCredentialHelper(const std::string& helper,
                                                                     const std::string& registry,
                                                                     const std::string& source) {
  std::string program = "docker-credential-" + helper;
  auto fail = [&](const std::string& message) {
    return core::Error{
        core::ErrorCode::kIo,
        registry + ": the credential helper " + program + " (named in " + source + ") " + message,
        {}};
  };
  std::vector<std::string> environment;
  for (char** variable = environ; *variable != nullptr; ++variable)
    environment.emplace_back(*variable);
  auto resolved = core::ResolveProgram(program, environment);
  if (!resolved) return fail("is not installed: no " + program + " on PATH");
  // Docker's server URL: Docker Hub's is its v1 index, any other the registry's host[:port].
  std::string server =
      SameRegistry("docker.io", registry) ? "https://index.docker.io/v1/" : registry;
  core::SubprocessOptions options;
  options.argv = {*resolved, "get"};
  options.env = std::move(environment);
  options.stdin_data = server + "\n";
  options.stdout_to = core::Output::Capture(1 << 16);
  options.stderr_to = core::Output::Capture(1 << 16);
  auto ran = core::RunSubprocess(std::move(options));
  if (!ran) return fail("could not run: " + ran.error().message);
  if (ran->exit.code != 0) {
    // What it says on failure is a message, never the secret it did not give.
    // Docker's helpers say "credentials not found" on stdout; the error quotes
    // stderr only, as stdout may hold an answer printed before it failed.
    if ((ran->stdout_text + ran->stderr_text).find("credentials not found") != std::string::npos)
      return std::optional<RegistryCredentials>();
    std::string said = std::string(core::TrimSpaces(ran->stderr_text));
    said = said.substr(0, said.find('\n')).substr(0, 200);
    return fail("failed (exit " + std::to_string(ran->exit.code) + ")" +
                (said.empty() ? "" : ": " + said));
  }
  nlohmann::json answer =
      nlohmann::json::parse(ran->stdout_text, nullptr, /*allow_exceptions=*/false);
  if (!answer.is_object() || !answer.contains("Username") || !answer["Username"].is_string() ||
      !answer.contains("Secret") || !answer["Secret"].is_string()) {
    return fail("did not answer a JSON object with a Username and a Secret");
  }
  RegistryCredentials credentials;
  credentials.username = answer["Username"].get<std::string>();
  credentials.password = answer["Secret"].get<std::string>();
  credentials.source = program;
  credentials.identity_token = credentials.username == "<token>";
  return std::optional<RegistryCredentials>(std::move(credentials));
}

core::Result<std::optional<RegistryCredentials>> FindRegistryCredentials(
    const std::string& registry) {
  const char* user = std::getenv("GANTRY_REGISTRY_USER");
  const char* password = std::getenv("GANTRY_REGISTRY_PASSWORD");
  if (user != nullptr && password != nullptr && *user != '\0') {
    return std::optional<RegistryCredentials>(
        RegistryCredentials{user, password, "GANTRY_REGISTRY_USER"});
  }
  std::filesystem::path config;
  if (const char* folder = std::getenv("DOCKER_CONFIG"); folder != nullptr && *folder != '\0') {
    config = std::filesystem::path(folder) / "config.json";
  } else if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    config = std::filesystem::path(home) / ".docker" / "config.json";
  } else {
    return std::optional<RegistryCredentials>();
  }
  std::error_code error;
  if (!std::filesystem::is_regular_file(config, error)) return std::optional<RegistryCredentials>();
  auto text = core::ReadFile(config);
  if (!text) return text.error();
  auto helper = DockerConfigHelper(*text, registry, config.string());
  if (!helper) return helper.error();
  if (*helper) {
    auto helped = RunCredentialHelper(**helper, registry, config.string());
    if (!helped || *helped) return helped;
  }
  return DockerConfigCredentials(*text, registry, config.string());
}

}  // namespace builder
