#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace planner {

/// One registered agent: where its API listens and how to prove who we are.
/// The token itself is never copied here: only the file that holds it, read
/// when a request is made, so `agents.json` can be shown and shared.
struct AgentEntry {
  std::string name;                  // [a-z0-9][a-z0-9_-]*, the name plans and state use
  std::string url;                   // "http://HOST:PORT" or "https://HOST:PORT", no path
  std::filesystem::path token_file;  // absolute
  std::filesystem::path ca_file;     // absolute, or empty for the system's CAs
};

/// The agents this machine deploys to (`gantry agents add|ls|rm`), kept in
/// one JSON file, by default GantryHome()/agents.json, written atomically:
///   {"version": 1, "agents": [{"name", "url", "token_file", "ca_file"?}]}
/// with the agents sorted by name and every path absolute. A file that does
/// not read as that is an error (kParse) naming the file and the entry.
class Fleet {
 public:
  /// GantryHome()/agents.json.
  static std::filesystem::path DefaultFile();
  /// The fleet recorded in `file`; an empty fleet when the file does not exist.
  static core::Result<Fleet> Load(const std::filesystem::path& file);

  const std::vector<AgentEntry>& agents() const { return agents_; }  // sorted by name
  const AgentEntry* Find(std::string_view name) const;

  /// Adds an agent: its name must be new and valid, its URL http(s) with a
  /// host and port, its token file readable and non-empty (paths are made
  /// absolute). kInvalidArgument or kConflict, with nothing changed.
  core::Status Add(AgentEntry entry);
  /// kNotFound when there is no such agent.
  core::Status Remove(std::string_view name);
  /// Writes the fleet back to the file it was loaded from.
  core::Status Save() const;

 private:
  std::filesystem::path file_;
  std::vector<AgentEntry> agents_;
};

/// The agent's token, read from its token file (surrounding whitespace
/// dropped). The error names the file, never its content.
core::Result<std::string> ReadToken(const AgentEntry& agent);

}  // namespace planner
