#pragma once

#include <optional>
#include <string_view>

namespace core {

/// Settings of a function that the spec reads and an agent's desired state
/// carries, named the same in both (spec/ and agents/ share no code but
/// core/). Each has its name as written in specs and documents, and back.

/// Who may call a web function.
enum class WebAuth {
  kPublic,  // anyone who reaches the agent
  kToken,   // `Authorization: Bearer AGENT_TOKEN`
  kKey,     // `Authorization: Bearer KEY`, KEY hashing to the app's web key hash
};
const char* WebAuthName(WebAuth auth);  // "public", "token", "key"
std::optional<WebAuth> WebAuthFromName(std::string_view name);

/// What a scheduled run does when the previous run of the same schedule is
/// still queued or running.
enum class Overlap {
  kSkip,     // this run is skipped
  kAllow,    // both run
  kReplace,  // the previous run is stopped (interrupted), this one runs
};
const char* OverlapName(Overlap overlap);  // "skip", "allow", "replace"
std::optional<Overlap> OverlapFromName(std::string_view name);

}  // namespace core
