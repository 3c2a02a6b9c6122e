#pragma once

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "agents/agent.h"
#include "agents/dashboard_session.h"
#include "agents/http_listener.h"
#include "agents/router.h"
#include "core/result.h"

namespace httplib {
class Server;
struct Response;
}  // namespace httplib

namespace agents {

/// Where and how the API listens.
struct ApiOptions {
  std::string host = "127.0.0.1";
  int port = 7070;  // 0: any free port (see ApiServer::port)
  std::string token;
  std::optional<std::filesystem::path> tls_cert;  // both or neither
  std::optional<std::filesystem::path> tls_key;
  std::size_t max_body_bytes = 16 << 20;
  /// GET /metrics needs the token, as every route but /healthz does;
  /// false (`gantry agent --metrics-auth none`) opens it to any scraper.
  bool metrics_need_token = true;
  /// The dashboard's own port on `host` (0: any free port), its own origin,
  /// so that no web function's page shares an origin with it; none without.
  std::optional<int> dashboard_port;
  /// Web functions also at FUNCTION.APP.WEB_DOMAIN (router.h); "": not.
  std::string web_domain;
};

/// The agent's HTTP+JSON API (cpp-httplib), routes and documents as in
/// agents/README.md and schemas/agent_*.schema.json, and its router (web
/// functions at /apps/APP/FUNCTION/…, router.h). Every route but /healthz
/// and the router's needs `Authorization: Bearer TOKEN`; without it the
/// answer is 401 and nothing else happens (the router checks each
/// function's own `web.auth`). Errors are JSON: {"error": {"code",
/// "message"}}, 400 for bad bodies (malformed, unknown fields, too large),
/// 404 for unknown functions and calls, 409 for a stale generation.
///
/// With `dashboard_port`, a second listener serves the dashboard (/ui, its
/// sign-in and sign-out, and /ui/v1/… copies of the read routes, where a
/// session cookie stands for the token) and nothing else; the API's own
/// listener never serves it nor takes a cookie.
class ApiServer {
 public:
  ApiServer(Agent& agent, ApiOptions options);
  ~ApiServer();

  /// Binds the address (and the dashboard's); after it, port() is the one
  /// bound, and dashboard_port() the dashboard's (0 without one).
  core::Status Bind();
  int port() const { return port_; }
  int dashboard_port() const { return dashboard_port_; }
  /// Serves until Stop() (from another thread or a signal handler's thread).
  core::Status Serve();
  void Stop();

 private:
  void AddRoutes();
  void AddDashboardRoutes();
  /// Answers a call with `?wait=true` and `Accept: application/x-ndjson`:
  /// its events as they happen (agents/README.md, "Streamed calls").
  void StreamCall(const CallRecord& call, httplib::Response& response);
  /// Counts a streamed response of `route` (`calls`, `logs`) as open in
  /// the gauge gantry_api_streams until the returned releaser, which
  /// httplib runs when the response ends, however it ends.
  std::function<void(bool)> CountStream(const std::string& route);
  /// Adds `change` to the streamed responses of `route` open now, and
  /// publishes every route's count to the gauge.
  void ChangeStreams(const std::string& route, int change);

  Agent& agent_;
  ApiOptions options_;
  Router router_;
  std::unique_ptr<HttpListener> server_;
  std::unique_ptr<HttpListener> dashboard_;    // null without a dashboard port
  std::optional<DashboardSessions> sessions_;  // drawn at Bind
  int port_ = 0;
  int dashboard_port_ = 0;
  std::atomic<bool> stopping_ = false;  // ends followed log streams
  std::mutex streams_mutex_;
  std::map<std::string, int> open_streams_;  // route -> streamed responses open now
};

}  // namespace agents
