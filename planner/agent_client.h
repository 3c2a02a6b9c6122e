#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/http_client.h"
#include "core/result.h"
#include "planner/fleet.h"

namespace planner {

/// The planner's side of the agent API (agents/README.md, schemas/): one
/// authenticated HTTP+JSON connection to one agent. Every request carries
/// `Authorization: Bearer TOKEN`; the token never appears in an error.
///
/// Errors: a transport failure is kIo, "agent NAME (URL): MESSAGE"; an
/// agent's JSON error keeps its code (409 kConflict, 404 kNotFound, 400
/// kInvalidArgument, 401 kInvalidArgument "agent NAME refused the token", 503
/// kUnavailable), its message prefixed with "agent NAME: ". Not thread-safe:
/// one client per thread.
class AgentClient {
 public:
  /// Reads the agent's token; no request is made yet.
  static core::Result<AgentClient> Open(const AgentEntry& agent);

  const AgentEntry& agent() const { return agent_; }

  core::Result<nlohmann::json> Node();     // GET /v1/node
  core::Result<nlohmann::json> Desired();  // GET /v1/desired (secrets redacted)
  core::Result<nlohmann::json> Status();   // GET /v1/status
  /// GET /v1/usage?since=&until=[&app=]: the usage records of the window
  /// [since_ms, until_ms) (Unix epoch milliseconds), of `app` or ("") every
  /// app, and their totals (schemas/usage.schema.json).
  core::Result<nlohmann::json> Usage(std::int64_t since_ms, std::int64_t until_ms,
                                     std::string_view app);

  /// GET /v1/logs?app=&since=[&function=][&cursor=]: the log lines of
  /// `function` (or, when "", of every function of `app`) of a time at or
  /// after `since_ms` (Unix epoch milliseconds), each as the agent keeps it:
  /// {"time_ms", "call" or "container", "stream", "text"}; in the order of
  /// each function's log. With a `cursor` (what the last call left there;
  /// "" the first time), only the lines written since that call, and the
  /// cursor is moved on: a followed log is read, not read again.
  core::Result<std::vector<nlohmann::json>> Logs(std::string_view app, std::string_view function,
                                                 std::int64_t since_ms,
                                                 std::string* cursor = nullptr);

  /// PUT /v1/desired/apps/APP: makes `app_document` (one member of the
  /// desired state's `apps`) the app's part of the agent's desired state,
  /// at `generation`. The agent's answer, {"generation", "changed"}.
  core::Result<nlohmann::json> PutApp(std::string_view app, std::int64_t generation,
                                      const nlohmann::json& app_document);
  /// DELETE /v1/desired/apps/APP?generation=N: removes the app from the agent.
  core::Result<nlohmann::json> DeleteApp(std::string_view app, std::int64_t generation);
  /// DELETE /v1/apps/APP/volumes/NAME: deletes a volume's files (once the
  /// desired state no longer names it). kNotFound when there are none.
  core::Result<nlohmann::json> DeleteVolume(std::string_view app, std::string_view volume);
  /// POST /v1/apps/APP/functions/FUNCTION/calls: a job call, `request` as
  /// the agent reads it ({"args", "stdin", "env"}). With `wait` the answer
  /// comes once the call has ended, with its output, however long it runs;
  /// without, at once, with the call's id.
  core::Result<nlohmann::json> Call(std::string_view app, std::string_view function,
                                    const nlohmann::json& request, bool wait);
  /// GET /v1/calls/ID: the call, with its output once it has ended.
  core::Result<nlohmann::json> FindCall(std::string_view id);
  /// GET /v1/calls/ID?stdout_from=&stderr_from=: the call with its output
  /// from those byte offsets on, also while it runs, and `stdout_next`,
  /// `stderr_next`: where to ask from next.
  core::Result<nlohmann::json> FollowCall(std::string_view id, std::uint64_t stdout_from,
                                          std::uint64_t stderr_from);

 private:
  AgentClient(AgentEntry agent, std::string token);
  /// `timeout` 0: no limit at all, not even on a silent connection (a call
  /// waited for says nothing until it ends).
  core::Result<nlohmann::json> Request(const std::string& method, const std::string& path,
                                       const nlohmann::json* body,
                                       std::chrono::seconds timeout = kRequestTimeout);

  /// Request without reading the answer: the body of a 2xx answer, or
  /// the error (as the class comment says).
  core::Result<core::HttpResponse> Exchange(const std::string& method, const std::string& path,
                                            const nlohmann::json* body,
                                            std::chrono::seconds timeout);

  /// An agent answers its API at once or is down: a plan over a fleet should
  /// not hang on one host. Applying a desired state pulls no image in the
  /// request (that happens after), so a minute is ample.
  static constexpr std::chrono::seconds kRequestTimeout{60};

  AgentEntry agent_;
  std::string token_;
  std::unique_ptr<core::HttpClient> http_;
};

/// One schedule as an agent's status reports it (GET /v1/status
/// apps.APP.functions.FUNCTION.schedule), in a few words for a terminal:
/// "next 2026-12-04T03:00:00+01:00", or "held: WHY" while its image is not
/// ready, then the runs it skipped, if any, and why the last was.
std::string ScheduleSummary(const nlohmann::json& schedule);

}  // namespace planner
