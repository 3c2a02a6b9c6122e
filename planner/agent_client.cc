#include "planner/agent_client.h"

#include <algorithm>
#include <chrono>
#include <utility>

namespace planner {
namespace {

using nlohmann::json;

constexpr std::chrono::seconds kConnectTimeout{5};

/// The core code of an agent's HTTP error status (agents/api_reply.h maps
/// the other way).
core::ErrorCode CodeOfStatus(long status) {
  switch (status) {
    case 400:
    case 401:
      return core::ErrorCode::kInvalidArgument;
    case 402:
      return core::ErrorCode::kBudgetExceeded;
    case 404:
      return core::ErrorCode::kNotFound;
    case 409:
      return core::ErrorCode::kConflict;
    case 503:
      return core::ErrorCode::kUnavailable;
    default:
      return core::ErrorCode::kIo;
  }
}

}  // namespace

core::Result<AgentClient> AgentClient::Open(const AgentEntry& agent) {
  auto token = ReadToken(agent);
  if (!token) return token.error();
  return AgentClient(agent, std::move(token).value());
}

AgentClient::AgentClient(AgentEntry agent, std::string token)
    : agent_(std::move(agent)),
      token_(std::move(token)),
      http_(std::make_unique<core::HttpClient>()) {}

core::Result<nlohmann::json> AgentClient::Node() {
  return Request("GET", "/v1/node", nullptr);
}

core::Result<nlohmann::json> AgentClient::Desired() {
  return Request("GET", "/v1/desired", nullptr);
}

core::Result<nlohmann::json> AgentClient::Status() {
  return Request("GET", "/v1/status", nullptr);
}

core::Result<nlohmann::json> AgentClient::Usage(std::int64_t since_ms, std::int64_t until_ms,
                                                std::string_view app) {
  std::string path =
      "/v1/usage?since=" + std::to_string(since_ms) + "&until=" + std::to_string(until_ms);
  if (!app.empty()) path += "&app=" + core::UrlEncode(app);
  return Request("GET", path, nullptr);
}

core::Result<nlohmann::json> AgentClient::PutApp(std::string_view app, std::int64_t generation,
                                                 const nlohmann::json& app_document) {
  const json body = {{"generation", generation}, {"app", app_document}};
  return Request("PUT", "/v1/desired/apps/" + core::UrlEncode(app), &body);
}

core::Result<nlohmann::json> AgentClient::DeleteApp(std::string_view app, std::int64_t generation) {
  return Request(
      "DELETE",
      "/v1/desired/apps/" + core::UrlEncode(app) + "?generation=" + std::to_string(generation),
      nullptr);
}

core::Result<nlohmann::json> AgentClient::DeleteVolume(std::string_view app,
                                                       std::string_view volume) {
  return Request("DELETE",
                 "/v1/apps/" + core::UrlEncode(app) + "/volumes/" + core::UrlEncode(volume),
                 nullptr);
}

core::Result<nlohmann::json> AgentClient::Call(std::string_view app, std::string_view function,
                                               const nlohmann::json& request, bool wait) {
  return Request("POST",
                 "/v1/apps/" + core::UrlEncode(app) + "/functions/" + core::UrlEncode(function) +
                     "/calls" + (wait ? "?wait=true" : ""),
                 &request, wait ? std::chrono::seconds(0) : kRequestTimeout);
}

core::Result<nlohmann::json> AgentClient::FindCall(std::string_view id) {
  return Request("GET", "/v1/calls/" + core::UrlEncode(id), nullptr);
}

core::Result<nlohmann::json> AgentClient::FollowCall(std::string_view id, std::uint64_t stdout_from,
                                                     std::uint64_t stderr_from) {
  return Request("GET",
                 "/v1/calls/" + core::UrlEncode(id) + "?stdout_from=" +
                     std::to_string(stdout_from) + "&stderr_from=" + std::to_string(stderr_from),
                 nullptr);
}

core::Result<std::vector<nlohmann::json>> AgentClient::Logs(std::string_view app,
                                                            std::string_view function,
                                                            std::int64_t since_ms,
                                                            std::string* cursor) {
  std::string path = "/v1/logs?app=" + core::UrlEncode(app) + "&since=" + std::to_string(since_ms);
  if (!function.empty()) path += "&function=" + core::UrlEncode(function);
  if (cursor && !cursor->empty()) path += "&cursor=" + core::UrlEncode(*cursor);
  auto response = Exchange("GET", path, nullptr, kRequestTimeout);
  if (!response) return response.error();
  if (cursor) {
    auto next = response->headers.Get("Gantry-Log-Cursor");
    if (!next) {
      return core::Error{core::ErrorCode::kIo,
                         "agent " + agent_.name + ": GET /v1/logs gave no Gantry-Log-Cursor",
                         {}};
    }
    *cursor = *next;
  }
  const std::string* text = &response->body;
  std::vector<json> lines;
  for (std::size_t start = 0, end; start < text->size(); start = end + 1) {
    end = std::min(text->find('\n', start), text->size());
    if (end == start) continue;
    json line = json::parse(std::string_view(*text).substr(start, end - start), nullptr, false);
    if (!line.is_object()) {
      return core::Error{core::ErrorCode::kIo,
                         "agent " + agent_.name + ": a line of GET " + path + " is not JSON",
                         {}};
    }
    lines.push_back(std::move(line));
  }
  return lines;
}

core::Result<nlohmann::json> AgentClient::Request(const std::string& method,
                                                  const std::string& path, const json* body,
                                                  std::chrono::seconds timeout) {
  auto response = Exchange(method, path, body, timeout);
  if (!response) return response.error();
  json answer = json::parse(response->body, nullptr, /*allow_exceptions=*/false);
  if (answer.is_discarded()) {
    return core::Error{
        core::ErrorCode::kIo,
        "agent " + agent_.name + ": the answer to " + method + " " + path + " is not JSON",
        {}};
  }
  return answer;
}

core::Result<core::HttpResponse> AgentClient::Exchange(const std::string& method,
                                                       const std::string& path, const json* body,
                                                       std::chrono::seconds timeout) {
  core::HttpRequest request;
  request.method = method;
  request.url = agent_.url + path;
  request.headers.Add("Authorization", "Bearer " + token_);
  request.headers.Add("Accept", "application/json");
  if (body) {
    request.body = body->dump();
    request.headers.Add("Content-Type", "application/json");
  }
  // An agent never redirects; one that did would get the token elsewhere.
  request.max_redirects = 0;
  request.connect_timeout = kConnectTimeout;
  request.timeout = timeout;
  if (timeout.count() == 0) request.stall_timeout = timeout;
  request.ca_file = agent_.ca_file.string();
  auto response = http_->Send(request);
  if (!response) {
    return core::Error{
        core::ErrorCode::kIo,
        "agent " + agent_.name + " (" + agent_.url + "): " + response.error().message,
        {}};
  }
  if (response->status == 401) {
    return core::Error{
        core::ErrorCode::kInvalidArgument,
        "agent " + agent_.name + " refused the token (from " + agent_.token_file.string() + ")",
        {}};
  }
  if (response->status >= 200 && response->status < 300) return std::move(*response);
  const json answer = json::parse(response->body, nullptr, /*allow_exceptions=*/false);
  std::string message = "HTTP " + std::to_string(response->status) + " to " + method + " " + path;
  if (answer.is_object() && answer.contains("error") && answer["error"].is_object() &&
      answer["error"].value("message", json()).is_string()) {
    message = answer["error"]["message"].get<std::string>();
  }
  return core::Error{CodeOfStatus(response->status), "agent " + agent_.name + ": " + message, {}};
}

std::string ScheduleSummary(const nlohmann::json& schedule) {
  std::string summary = schedule.contains("held") ? "held: " + schedule.value("held", "")
                                                  : "next " + schedule.value("next_fire", "never");
  if (auto skipped = schedule.value("skipped_runs", std::int64_t{0}); skipped > 0) {
    summary += "; " + std::to_string(skipped) + (skipped == 1 ? " run" : " runs") + " skipped";
    if (schedule.contains("last_skip_reason")) {
      summary += " (the last: " + schedule.value("last_skip_reason", "") + ")";
    }
  }
  return summary;
}

}  // namespace planner
