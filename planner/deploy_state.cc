#include "planner/deploy_state.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <system_error>
#include <utility>

#include "core/atomic_file.h"
#include "core/lock_holder.h"
#include "core/random.h"
#include "core/unique_fd.h"

namespace planner {
namespace {

using json = nlohmann::json;

/// How often a waiting StateLock tries the lock again.
core::Error Invalid(const std::string& member, const std::string& what) {
  return core::Error{core::ErrorCode::kInvalidArgument, "state: " + member + ": " + what, {}};
}

core::Error IoError(const std::string& what, const std::filesystem::path& path) {
  return core::Error{core::ErrorCode::kIo, what + ": " + std::strerror(errno),
                     core::Location{path.string(), 0, 0}};
}

/// `object`'s members must be exactly `members`; `where` prefixes their names.
core::Status CheckMembers(const json& object, const std::set<std::string>& members,
                          const std::string& where) {
  for (const auto& [key, value] : object.items()) {
    if (!members.contains(key)) return Invalid(where + key, "unknown member");
  }
  for (const std::string& key : members) {
    if (!object.contains(key)) return Invalid(where + key, "missing");
  }
  return core::Ok{};
}

core::Status MakeParent(const std::filesystem::path& path) {
  if (path.parent_path().empty()) return core::Ok{};
  std::error_code error;
  std::filesystem::create_directories(path.parent_path(), error);
  if (error) {
    return core::Error{core::ErrorCode::kIo, "cannot create the folder: " + error.message(),
                       core::Location{path.parent_path().string(), 0, 0}};
  }
  return core::Ok{};
}

/// The conflict a waiter reports, from what the holder wrote into the lock file.
core::Error Locked(const std::filesystem::path& state_path, int fd) {
  return core::Error{
      core::ErrorCode::kConflict,
      "state " + state_path.string() + " is locked by " + core::DescribeLockHolder(fd),
      {}};
}

}  // namespace

nlohmann::json DeployState::ToJson() const {
  json agent_records = json::object();
  for (const auto& [name, record] : agents) {
    agent_records[name] = {
        {"url", record.url}, {"generation", record.generation}, {"app", record.app}};
  }
  return {{"version", kVersion},
          {"lineage", lineage},
          {"serial", serial},
          {"app", app},
          {"images", images},
          {"budget", budget},
          {"placement", placement.is_null() ? json::object() : placement},
          {"agents", agent_records}};
}

core::Result<DeployState> DeployState::FromJson(const nlohmann::json& document) {
  if (!document.is_object()) return Invalid("(document)", "expected an object");
  if (!document.contains("version") || !document["version"].is_number_integer()) {
    return Invalid("version", "expected an integer");
  }
  if (document["version"].get<long long>() != kVersion) {
    return Invalid("version", std::to_string(document["version"].get<long long>()) +
                                  " is not supported (this gantry reads version " +
                                  std::to_string(kVersion) + ")");
  }
  if (auto checked = CheckMembers(
          document,
          {"version", "lineage", "serial", "app", "images", "budget", "placement", "agents"}, "");
      !checked.ok()) {
    return checked.error();
  }
  DeployState state;
  for (const char* key : {"lineage", "app"}) {
    if (!document[key].is_string()) return Invalid(key, "expected a string");
  }
  state.lineage = document["lineage"].get<std::string>();
  state.app = document["app"].get<std::string>();
  if (!document["serial"].is_number_integer() || document["serial"].get<long long>() < 0) {
    return Invalid("serial", "expected an integer >= 0");
  }
  state.serial = document["serial"].get<std::int64_t>();
  if (!document["images"].is_object()) return Invalid("images", "expected an object");
  for (const auto& [image, digest] : document["images"].items()) {
    if (!digest.is_string()) return Invalid("images." + image, "expected a string");
    state.images[image] = digest.get<std::string>();
  }
  if (!document["budget"].is_null() && !document["budget"].is_object()) {
    return Invalid("budget", "expected an object or null");
  }
  state.budget = document["budget"];
  if (!document["placement"].is_object()) return Invalid("placement", "expected an object");
  state.placement = document["placement"];
  if (!document["agents"].is_object()) return Invalid("agents", "expected an object");
  for (const auto& [name, record] : document["agents"].items()) {
    std::string where = "agents." + name;
    if (!record.is_object()) return Invalid(where, "expected an object");
    if (auto checked = CheckMembers(record, {"url", "generation", "app"}, where + ".");
        !checked.ok()) {
      return checked.error();
    }
    if (!record["url"].is_string()) return Invalid(where + ".url", "expected a string");
    if (!record["generation"].is_number_integer()) {
      return Invalid(where + ".generation", "expected an integer");
    }
    if (!record["app"].is_object()) return Invalid(where + ".app", "expected an object");
    state.agents[name] = AgentRecord{record["url"].get<std::string>(),
                                     record["generation"].get<std::int64_t>(), record["app"]};
  }
  return state;
}

std::filesystem::path DefaultStatePath(const std::filesystem::path& spec_file,
                                       const std::string& app) {
  return spec_file.parent_path() / ".gantry" / "state" / (app + ".json");
}

core::Result<std::optional<DeployState>> ReadState(const std::filesystem::path& path) {
  auto text = core::ReadFile(path);
  if (!text.ok()) {
    if (text.error().code == core::ErrorCode::kNotFound) return std::optional<DeployState>();
    return text.error();
  }
  json document = json::parse(*text, nullptr, false);
  if (document.is_discarded()) {
    return core::Error{core::ErrorCode::kParse, "the state file is not valid JSON",
                       core::Location{path.string(), 0, 0}};
  }
  auto state = DeployState::FromJson(document);
  if (!state.ok()) {
    core::Error error = state.error();
    error.location = core::Location{path.string(), 0, 0};
    return error;
  }
  return std::optional<DeployState>(std::move(state).value());
}

core::Status WriteState(const std::filesystem::path& path, const DeployState& state) {
  if (auto made = MakeParent(path); !made.ok()) return made.error();
  // The state names every agent and hashes of secret values: 0600 from its first byte.
  return core::WriteFileAtomically(path, state.ToJson().dump(2) + "\n", 0600);
}

core::Result<StateLock> StateLock::Acquire(const std::filesystem::path& state_path,
                                           const std::string& operation,
                                           std::chrono::milliseconds wait) {
  if (auto made = MakeParent(state_path); !made.ok()) return made.error();
  std::filesystem::path lock_path = state_path;
  lock_path += ".lock";
  core::UniqueFd fd(open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd.valid()) return IoError("cannot open the lock file", lock_path);

  auto locked = core::FlockWithin(fd.get(), LOCK_EX, wait);
  if (!locked) return IoError("cannot lock", lock_path);
  if (!*locked) return Locked(state_path, fd.get());
  if (!core::WriteLockHolder(fd.get(), operation))
    return IoError("cannot write the lock file", lock_path);
  return StateLock(fd.release());
}

StateLock::StateLock(StateLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

StateLock& StateLock::operator=(StateLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

StateLock::~StateLock() {
  if (fd_ >= 0) close(fd_);  // closing the last descriptor releases the flock
}

}  // namespace planner
