#include "planner/fleet.h"

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>
#include <regex>
#include <system_error>

#include "core/atomic_file.h"
#include "core/gantry_home.h"
#include "core/text.h"

namespace planner {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int kFormatVersion = 1;

core::Error InvalidArgument(std::string message) {
  return core::Error{core::ErrorCode::kInvalidArgument, std::move(message), {}};
}

/// The same names as the agent's apps and functions: they end up in state
/// file names and in messages.
core::Status CheckName(const std::string& name) {
  static const std::regex kName("[a-z0-9][a-z0-9_-]*");
  if (!std::regex_match(name, kName)) {
    return InvalidArgument("agent name \"" + name + "\" must match [a-z0-9][a-z0-9_-]*");
  }
  return core::Ok{};
}

/// "http(s)://HOST:PORT" with nothing after but an optional "/", which is
/// dropped: the client appends the API's paths to it. The canonical URL.
core::Result<std::string> CheckUrl(const std::string& url) {
  static const std::regex kUrl(R"((https?)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})/?)");
  std::smatch parts;
  if (!std::regex_match(url, parts, kUrl)) {
    return InvalidArgument("agent URL \"" + url +
                           "\" must be http://HOST:PORT or https://HOST:PORT, without a path");
  }
  const std::string port_text = parts[3];
  int port = 0;
  std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port < 1 || port > 65535) {
    return InvalidArgument("agent URL \"" + url + "\": port " + port_text + " is not 1-65535");
  }
  return parts[1].str() + "://" + parts[2].str() + ":" + port_text;
}

/// What a file entry must be, whoever wrote it; the token file is only read
/// when a request is made (Add checks it once, up front).
core::Status CheckEntry(AgentEntry* entry) {
  if (auto name = CheckName(entry->name); !name.ok()) return name;
  auto url = CheckUrl(entry->url);
  if (!url) return url.error();
  entry->url = *url;
  if (entry->token_file.empty()) return InvalidArgument("agent " + entry->name + ": no token file");
  return core::Ok{};
}

core::Result<AgentEntry> EntryFromJson(const json& value) {
  if (!value.is_object()) return InvalidArgument("expected an object");
  for (const auto& [key, member] : value.items()) {
    if (key != "name" && key != "url" && key != "token_file" && key != "ca_file")
      return InvalidArgument(key + ": unknown field");
    if (!member.is_string()) return InvalidArgument(key + ": expected a string");
  }
  for (const char* key : {"name", "url", "token_file"}) {
    if (!value.contains(key)) return InvalidArgument(std::string(key) + ": missing");
  }
  AgentEntry entry{value["name"], value["url"], value["token_file"].get<std::string>(),
                   value.value("ca_file", std::string())};
  if (auto checked = CheckEntry(&entry); !checked.ok()) return checked.error();
  return entry;
}

}  // namespace

fs::path Fleet::DefaultFile() {
  return core::GantryHome() / "agents.json";
}

core::Result<Fleet> Fleet::Load(const fs::path& file) {
  Fleet fleet;
  fleet.file_ = file;
  std::error_code error;
  if (!fs::exists(file, error)) {
    if (error) {
      return core::Error{core::ErrorCode::kIo, file.string() + ": " + error.message(), {}};
    }
    return fleet;
  }
  auto text = core::ReadFile(file);
  if (!text) return text.error();
  auto broken = [&](const std::string& message) {
    return core::Error{
        core::ErrorCode::kParse, file.string() + ": " + message + " (fix or remove the file)", {}};
  };
  json document = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) return broken("not valid JSON");
  if (!document.is_object() || document.value("version", json()) != kFormatVersion) {
    return broken("expected {\"version\": 1, \"agents\": [...]}");
  }
  if (!document.contains("agents") || !document["agents"].is_array()) {
    return broken("agents: expected a list");
  }
  for (std::size_t index = 0; index < document["agents"].size(); ++index) {
    auto entry = EntryFromJson(document["agents"][index]);
    const std::string where = "agents[" + std::to_string(index) + "]";
    if (!entry) return broken(where + ": " + entry.error().message);
    if (fleet.Find(entry->name)) return broken(where + ": agent " + entry->name + " appears twice");
    fleet.agents_.push_back(std::move(entry).value());
  }
  std::sort(fleet.agents_.begin(), fleet.agents_.end(),
            [](const AgentEntry& a, const AgentEntry& b) { return a.name < b.name; });
  return fleet;
}

const AgentEntry* Fleet::Find(std::string_view name) const {
  auto found = std::find_if(agents_.begin(), agents_.end(),
                            [&](const AgentEntry& agent) { return agent.name == name; });
  return found == agents_.end() ? nullptr : &*found;
}

core::Status Fleet::Add(AgentEntry entry) {
  if (auto checked = CheckEntry(&entry); !checked.ok()) return checked;
  if (Find(entry.name)) {
    return core::Error{core::ErrorCode::kConflict,
                       "agent " + entry.name + " already exists (gantry agents rm " + entry.name +
                           " first to replace it)",
                       {}};
  }
  entry.token_file = fs::absolute(entry.token_file);
  if (!entry.ca_file.empty()) entry.ca_file = fs::absolute(entry.ca_file);
  if (auto token = ReadToken(entry); !token) return token.error();
  if (!entry.ca_file.empty() && !core::ReadFile(entry.ca_file).ok()) {
    return InvalidArgument("agent " + entry.name + ": cannot read the CA file " +
                           entry.ca_file.string());
  }
  auto position =
      std::upper_bound(agents_.begin(), agents_.end(), entry,
                       [](const AgentEntry& a, const AgentEntry& b) { return a.name < b.name; });
  agents_.insert(position, std::move(entry));
  return core::Ok{};
}

core::Status Fleet::Remove(std::string_view name) {
  auto removed =
      std::erase_if(agents_, [&](const AgentEntry& agent) { return agent.name == name; });
  if (removed == 0) {
    return core::Error{core::ErrorCode::kNotFound, "no agent " + std::string(name), {}};
  }
  return core::Ok{};
}

core::Status Fleet::Save() const {
  json agents = json::array();
  for (const AgentEntry& agent : agents_) {
    json value = {{"name", agent.name}, {"url", agent.url}, {"token_file", agent.token_file}};
    if (!agent.ca_file.empty()) value["ca_file"] = agent.ca_file;
    agents.push_back(std::move(value));
  }
  std::error_code error;
  if (file_.has_parent_path()) fs::create_directories(file_.parent_path(), error);
  if (error) {
    return core::Error{core::ErrorCode::kIo,
                       "cannot create " + file_.parent_path().string() + ": " + error.message(),
                       {}};
  }
  json document = {{"version", kFormatVersion}, {"agents", agents}};
  return core::WriteFileAtomically(file_, document.dump(2) + "\n");
}

core::Result<std::string> ReadToken(const AgentEntry& agent) {
  auto text = core::ReadFile(agent.token_file);
  if (!text) {
    return InvalidArgument("agent " + agent.name + ": cannot read the token file " +
                           agent.token_file.string());
  }
  std::string_view token = core::TrimSpaces(*text);
  if (token.empty()) {
    return InvalidArgument("agent " + agent.name + ": the token file " + agent.token_file.string() +
                           " is empty");
  }
  return std::string(token);
}

}  // namespace planner
