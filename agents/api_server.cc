#include "agents/api_server.h"

#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <limits>
#include <regex>
#include <thread>
#include <tuple>

#include "agents/api_reply.h"
#include "agents/api_token.h"
#include "agents/dashboard.h"
#include "agents/metrics.h"
#include "core/random.h"
#include "core/wall_clock.h"

namespace agents {
namespace {

using nlohmann::json;

/// Calls with ?wait=true and followed logs hold a thread each for as long as
/// they last (a web request only while its container's bytes come; it is
/// parked between them): the pool is sized for many of them, not for the
/// CPUs. A connection kept alive waits for its next request in a thread
/// while fewer than half of them wait so, parked beyond (HttpListener): 256
/// connections wait the quickest way, and 256 threads are left for requests.
constexpr std::size_t kServerThreads = 512;
/// The dashboard's: a few browsers.
constexpr std::size_t kDashboardThreads = 64;

/// Requests one kept-alive connection may make before the server closes
/// it, as nginx's `keepalive_requests` (httplib's default is 5): a client's
/// new connection costs it a handshake and the server an accept and a
/// hand-over to another thread. Between requests a connection holds a
/// thread only while fewer than half of them wait so, and is parked
/// beyond (HttpListener), so a long-lived one starves no other.
constexpr std::size_t kKeepAliveRequests = 1000;

/// How long a streamed response (a followed log, a streamed call) may send
/// nothing before it sends a heartbeat line. `DataSink::is_writable` only
/// says whether a write has failed yet (HttpListener): a write is what
/// finds a closed client out (the first to a closed peer draws its reset,
/// the next fails), so a client that went away releases its thread within
/// about two intervals.
constexpr auto kHeartbeatInterval = std::chrono::seconds(2);

/// How long what the agent sent may stay unacknowledged before the kernel
/// drops the connection (TCP_USER_TIMEOUT): a client whose host vanished,
/// which sends neither a FIN nor a reset, fails a stream's heartbeats
/// after this rather than after the kernel's default of about 15 minutes.
constexpr unsigned kUnacknowledgedTimeoutMs = 60'000;

/// Writes `lines` to a streamed response, or, when there are none and
/// nothing was sent for kHeartbeatInterval, `heartbeat()`; `last_sent` is
/// when it last wrote. False when the client is gone (the write failed).
bool SendOrHeartbeat(httplib::DataSink& sink, std::string lines,
                     const std::function<std::string()>& heartbeat,
                     std::chrono::steady_clock::time_point* last_sent) {
  const auto now = std::chrono::steady_clock::now();
  if (lines.empty() && now - *last_sent >= kHeartbeatInterval) lines = heartbeat();
  if (lines.empty()) return true;
  *last_sent = now;
  return sink.write(lines.data(), lines.size());
}

/// A request body as JSON, or a 400 reply.
std::optional<json> ParseBody(const httplib::Request& request, httplib::Response& response) {
  json body = json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) {
    ReplyError(response, 400, "parse", "the request body is not valid JSON");
    return std::nullopt;
  }
  return body;
}

/// The body of PUT /v1/desired/apps/APP, {"generation", "app"}, read as
/// the one-app desired state it stands for, so that ParseDesiredState is
/// the one reader of both routes. Its errors name `app.…` rather than the
/// `apps.APP.…` of the wrapped document.
core::Result<DesiredState> ParseAppBody(const json& body, const std::string& app) {
  if (!body.is_object()) {
    return core::Error{core::ErrorCode::kInvalidArgument, "document: expected an object", {}};
  }
  std::string unknown;
  for (const auto& [key, value] : body.items()) {
    if (key != "generation" && key != "app") unknown += (unknown.empty() ? "" : ", ") + key;
  }
  if (!unknown.empty()) {
    return core::Error{core::ErrorCode::kInvalidArgument, unknown + ": unknown field", {}};
  }
  if (!body.contains("app")) {
    return core::Error{core::ErrorCode::kInvalidArgument, "app: missing", {}};
  }
  json wrapped = {{"apps", {{app, body["app"]}}}};
  if (body.contains("generation")) wrapped["generation"] = body["generation"];
  auto desired = ParseDesiredState(wrapped);
  if (!desired) {
    core::Error error = desired.error();
    const std::string wrapped_path = "apps." + app;
    if (error.message.starts_with(wrapped_path))
      error.message.replace(0, wrapped_path.size(), "app");
    return error;
  }
  return desired;
}

/// The answer of the routes that change the desired state: {"generation",
/// "changed"}, or the agent's refusal.
void ReplyApplied(httplib::Response& response, std::int64_t generation,
                  const core::Result<bool>& applied) {
  if (!applied) return ReplyError(response, applied.error());
  Reply(response, 200, {{"generation", generation}, {"changed", *applied}});
}

/// The ?generation=N of DELETE /v1/desired/apps/APP.
core::Result<std::int64_t> GenerationParam(const httplib::Request& request) {
  const std::string text = request.get_param_value("generation");
  std::int64_t generation = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), generation);
  if (text.empty() || error != std::errc() || end != text.data() + text.size() || generation < 1) {
    return core::Error{core::ErrorCode::kInvalidArgument,
                       "generation: ?generation=N, an integer >= 1, is required",
                       {}};
  }
  return generation;
}

/// Whether `text` is an app or function name.
bool IsName(const std::string& text) {
  static const std::regex kName("[a-z0-9][a-z0-9_-]*");
  return std::regex_match(text, kName);
}

/// An integer query parameter in [minimum, maximum], `fallback` when
/// absent; `what` says what it must be.
core::Result<std::int64_t> IntegerParam(const httplib::Request& request, const std::string& name,
                                        std::int64_t fallback, std::int64_t minimum,
                                        std::int64_t maximum, const std::string& what) {
  if (!request.has_param(name)) return fallback;
  const std::string text = request.get_param_value(name);
  std::int64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size() || value < minimum ||
      value > maximum) {
    return core::Error{core::ErrorCode::kInvalidArgument, name + ": expected " + what, {}};
  }
  return value;
}

/// A time parameter of GET /v1/usage (`since`, `until`): Unix epoch
/// milliseconds, `fallback` when absent.
core::Result<std::int64_t> MillisParam(const httplib::Request& request, const std::string& name,
                                       std::int64_t fallback) {
  return IntegerParam(request, name, fallback, 0, std::numeric_limits<std::int64_t>::max(),
                      "Unix epoch milliseconds (an integer >= 0)");
}

json CallToJson(const CallRecord& call) {
  json value = {{"id", call.id},
                {"app", call.app},
                {"function", call.function},
                {"state", CallStateName(call.state)},
                {"attempts", call.attempts},
                {"created_ms", call.created_ms}};
  if (call.exit_code) value["exit_code"] = *call.exit_code;
  if (!call.error.empty()) value["error"] = call.error;
  if (call.started_ms) value["started_ms"] = call.started_ms;
  if (call.finished_ms) value["finished_ms"] = call.finished_ms;
  return value;
}

json CallWithOutput(const Agent& agent, const CallRecord& call) {
  json value = CallToJson(call);
  CallOutput output = agent.ReadCallOutput(call.id);
  value["stdout"] = std::move(output.stdout_text);
  value["stderr"] = std::move(output.stderr_text);
  return value;
}

// GET /v1/calls/ID?stdout_from=N&stderr_from=M: the call with its output
// from those byte offsets on, running or not, and where to ask from next
// (how `gantry run` follows a call). nullopt with a 400 sent when an offset
// is not a number.
std::optional<json> CallFollowed(const Agent& agent, const CallRecord& call,
                                 const httplib::Request& request, httplib::Response& response) {
  std::uint64_t from[2] = {0, 0};
  const char* names[2] = {"stdout_from", "stderr_from"};
  for (int i = 0; i < 2; ++i) {
    std::string text = request.get_param_value(names[i]);
    if (text.empty()) continue;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), from[i]);
    if (error != std::errc() || end != text.data() + text.size()) {
      ReplyError(response, 400, "invalid-argument",
                 std::string(names[i]) + " must be a byte offset, got " + text);
      return std::nullopt;
    }
  }
  json value = CallToJson(call);
  CallOutput output = agent.ReadCallOutput(call.id, from[0], from[1], !IsFinished(call.state));
  value["stdout"] = std::move(output.stdout_text);
  value["stderr"] = std::move(output.stderr_text);
  value["stdout_next"] = output.stdout_next;
  value["stderr_next"] = output.stderr_next;
  return value;
}

/// Where a streamed call (?wait=true with `Accept: application/x-ndjson`)
/// has got to: the attempt whose output is being sent, and the byte
/// offsets sent of it.
struct CallStream {
  CallRecord submitted;  // as it was queued: the stream's first event
  bool began = false;
  int attempt = 0;
  std::uint64_t stdout_next = 0;
  std::uint64_t stderr_next = 0;
  std::chrono::steady_clock::time_point last_sent = std::chrono::steady_clock::now();
};

/// One line of a streamed call (schemas/call_event.schema.json).
std::string EventLine(const json& event) {
  return event.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

/// The next events of a streamed call, as NDJSON lines: a new attempt, the
/// output written since the last read (whole UTF-8 characters while the
/// call runs), and, once it has ended and all its output is sent, the
/// final call document. `ended` is set with the last.
std::string NextCallEvents(Agent& agent, CallStream* stream, bool* ended) {
  std::string lines;
  if (!stream->began) {
    stream->began = true;
    lines += EventLine({{"event", "call"}, {"call", CallToJson(stream->submitted)}});
  }
  auto record = agent.FindCall(stream->submitted.id);
  if (!record || !*record) {
    *ended = true;
    return lines +
           EventLine({{"event", "error"},
                      {"error",
                       {{"code", "not-found"},
                        {"message", record ? "the call's record is gone"
                                           : "cannot read the call: " + record.error().message}}}});
  }
  const CallRecord& call = **record;
  const bool finished = IsFinished(call.state);
  if (call.attempts != stream->attempt) {
    // A retry's output starts afresh (the files are emptied before the count goes up).
    stream->attempt = call.attempts;
    stream->stdout_next = stream->stderr_next = 0;
    lines += EventLine({{"event", "attempt"}, {"attempt", call.attempts}});
  }
  CallOutput output =
      agent.ReadCallOutput(call.id, stream->stdout_next, stream->stderr_next, !finished);
  if (!finished) {
    // A retry that began since the record was read has emptied the files:
    // what was read may be the new attempt's, sent with its own event next time.
    auto again = agent.FindCall(call.id);
    if (!again || !*again || (*again)->attempts != stream->attempt) return lines;
  }
  for (auto& [name, text, next] : {std::tuple{"stdout", &output.stdout_text, output.stdout_next},
                                   std::tuple{"stderr", &output.stderr_text, output.stderr_next}}) {
    if (text->empty()) continue;
    lines += EventLine({{"event", "output"}, {"stream", name}, {"text", *text}});
    (std::string(name) == "stdout" ? stream->stdout_next : stream->stderr_next) = next;
  }
  if (finished && output.stdout_text.empty() && output.stderr_text.empty()) {
    lines += EventLine({{"event", "end"}, {"call", CallToJson(call)}});
    *ended = true;
  }
  return lines;
}

/// An HTTP listener of `threads`, or an HTTPS one with the options'
/// certificate.
std::unique_ptr<HttpListener> MakeServer(const ApiOptions& options, std::size_t threads) {
  if (!options.tls_cert || !options.tls_key) return std::make_unique<HttpListener>(threads);
  return std::make_unique<HttpListener>(threads, *options.tls_cert, *options.tls_key);
}

/// Binds `server` to `host`:`port` (0: any free one); the port bound.
core::Result<int> BindServer(httplib::Server& server, const std::string& host, int port) {
  if (!server.is_valid()) {
    return core::Error{
        core::ErrorCode::kInvalidArgument, "cannot load the TLS certificate or key", {}};
  }
  if (port == 0) {
    int bound = server.bind_to_any_port(host);
    if (bound > 0) return bound;
  } else if (server.bind_to_port(host, port)) {
    return port;
  }
  return core::Error{
      core::ErrorCode::kIo,
      "cannot listen on " + host + ":" + std::to_string(port) + ": " + std::strerror(errno),
      {}};
}

/// What every listener of the agent shares: body limit, no Nagle,
/// JSON errors.
void ConfigureServer(httplib::Server& server, std::size_t max_body_bytes) {
  server.set_payload_max_length(max_body_bytes);
  server.set_keep_alive_max_count(kKeepAliveRequests);
  // Responses go out in pieces (head, then each piece of a relayed body):
  // with Nagle's algorithm a piece would wait for the client's delayed ACK.
  server.set_tcp_nodelay(true);
  // Set on the listening socket, inherited by every connection it accepts.
  server.set_socket_options([](socket_t socket) {
    httplib::default_socket_options(socket);
    setsockopt(socket, IPPROTO_TCP, TCP_USER_TIMEOUT, &kUnacknowledgedTimeoutMs,
               sizeof kUnacknowledgedTimeoutMs);
  });
  server.set_error_handler([max_body_bytes](const httplib::Request&, httplib::Response& response) {
    if (!response.body.empty()) return;  // a handler's own JSON error
    if (response.status == 413) {
      ReplyError(response, 400, "invalid-argument",
                 "the request body is larger than " + std::to_string(max_body_bytes) + " bytes");
    } else if (response.status == 404) {
      ReplyError(response, 404, "not-found", "no such route");
    } else {
      ReplyError(response, response.status, "http",
                 "HTTP error " + std::to_string(response.status));
    }
  });
  server.set_exception_handler(
      [](const httplib::Request&, httplib::Response& response, std::exception_ptr) {
        ReplyError(response, 500, "internal", "internal error");
      });
}

}  // namespace

ApiServer::ApiServer(Agent& agent, ApiOptions options)
    : agent_(agent),
      options_(std::move(options)),
      router_(agent, options_.token, options_.tls_cert && options_.tls_key, options_.web_domain,
              options_.max_body_bytes),
      server_(MakeServer(options_, kServerThreads)) {
  if (options_.dashboard_port) {
    dashboard_ = MakeServer(options_, kDashboardThreads);
    AddDashboardRoutes();
  }
  AddRoutes();
  // Both routes are on the gauge from the start, at 0.
  ChangeStreams("calls", 0);
  ChangeStreams("logs", 0);
}

ApiServer::~ApiServer() {
  Stop();
}

core::Status ApiServer::Bind() {
  auto bound = BindServer(*server_, options_.host, options_.port);
  if (!bound) return bound.error();
  port_ = *bound;
  if (!dashboard_) return core::Ok{};
  bound = BindServer(*dashboard_, options_.host, *options_.dashboard_port);
  if (!bound) return bound.error();
  dashboard_port_ = *bound;
  auto key = core::RandomHex(32);
  if (!key) return key.error();
  sessions_.emplace(std::move(*key), "gantry_session_" + std::to_string(dashboard_port_));
  return core::Ok{};
}

core::Status ApiServer::Serve() {
  std::thread dashboard;
  if (dashboard_) {
    dashboard = std::thread([this] {
      if (!dashboard_->listen_after_bind())
        spdlog::error("agent: the dashboard's listener stopped with an error");
    });
  }
  bool served = server_->listen_after_bind();
  if (dashboard.joinable()) {
    dashboard_->Stop();  // listening yet or not: HttpListener::Stop ends it either way
    dashboard.join();
  }
  if (!served) {
    return core::Error{core::ErrorCode::kIo, "the API server stopped with an error", {}};
  }
  return core::Ok{};
}

void ApiServer::Stop() {
  stopping_ = true;
  if (server_) server_->Stop();
  if (dashboard_) dashboard_->Stop();
}

void ApiServer::AddRoutes() {
  httplib::Server& server = *server_;
  ConfigureServer(server, options_.max_body_bytes);

  // Web functions' requests are the router's, read and answered on the
  // connection: httplib never sees them.
  server_->SetInterceptor([this](std::string_view head, httplib::Stream& stream, bool last) {
    return router_.Serve(head, stream, last);
  });
  // Authentication comes before routing and before the body is read: a
  // request without the token learns nothing, not even which routes exist.
  server.set_pre_routing_handler(
      [this](const httplib::Request& request, httplib::Response& response) {
        // A request for web functions (by path, or a name under the web
        // domain, every path) whose head was too long for the router: it
        // never reaches the API's routes.
        if (router_.Takes(request)) {
          ReplyError(response, 431, "invalid-argument",
                     "the request's head is longer than " +
                         std::to_string(HttpListener::kMaxHeadBytes >> 10) + " KiB");
          return httplib::Server::HandlerResponse::Handled;
        }
        if (request.path == "/healthz") return httplib::Server::HandlerResponse::Unhandled;
        if (request.path == "/metrics" && !options_.metrics_need_token)
          return httplib::Server::HandlerResponse::Unhandled;
        if (AuthorizationMatches(request.get_header_value("Authorization"), options_.token)) {
          return httplib::Server::HandlerResponse::Unhandled;
        }
        response.set_header("WWW-Authenticate", "Bearer");
        ReplyError(response, 401, "unauthorized", "missing or wrong bearer token");
        return httplib::Server::HandlerResponse::Handled;
      });

  // The routes that only read, also on the dashboard's listener at
  // /ui/v1/…, where (and only where) its session cookie stands for the token.
  auto read = [this, &server](const std::string& path, httplib::Server::Handler handler) {
    if (dashboard_) dashboard_->Get("/ui" + path, handler);
    server.Get(path, std::move(handler));
  };
  server.Get("/healthz", [](const httplib::Request&, httplib::Response& response) {
    Reply(response, 200, {{"ok", true}});
  });
  server.Get("/metrics", [this](const httplib::Request&, httplib::Response& response) {
    response.set_content(agent_.Metrics(), kMetricsContentType);
  });
  read("/v1/node", [this](const httplib::Request&, httplib::Response& response) {
    Reply(response, 200, agent_.Node());
  });
  read("/v1/status", [this](const httplib::Request&, httplib::Response& response) {
    Reply(response, 200, agent_.Status());
  });
  read("/v1/desired", [this](const httplib::Request&, httplib::Response& response) {
    Reply(response, 200, agent_.Desired());
  });
  server.Put("/v1/desired", [this](const httplib::Request& request, httplib::Response& response) {
    auto body = ParseBody(request, response);
    if (!body) return;
    auto desired = ParseDesiredState(*body);
    if (!desired) return ReplyError(response, desired.error());
    ReplyApplied(response, desired->generation, agent_.Apply(*desired));
  });
  const std::string app_path = R"(/v1/desired/apps/([a-z0-9][a-z0-9_-]*))";
  server.Put(app_path, [this](const httplib::Request& request, httplib::Response& response) {
    auto body = ParseBody(request, response);
    if (!body) return;
    const std::string app = request.matches[1];
    auto desired = ParseAppBody(*body, app);
    if (!desired) return ReplyError(response, desired.error());
    ReplyApplied(response, desired->generation,
                 agent_.ApplyApp(desired->generation, desired->apps.at(app)));
  });
  server.Delete(app_path, [this](const httplib::Request& request, httplib::Response& response) {
    auto generation = GenerationParam(request);
    if (!generation) return ReplyError(response, generation.error());
    ReplyApplied(response, *generation, agent_.RemoveApp(*generation, request.matches[1]));
  });
  server.Post(R"(/v1/apps/([a-z0-9][a-z0-9_-]*)/functions/([a-z0-9][a-z0-9_-]*)/calls)",
              [this](const httplib::Request& request, httplib::Response& response) {
                auto body = ParseBody(request, response);
                if (!body) return;
                auto call_request = ParseCallRequest(*body);
                if (!call_request) return ReplyError(response, call_request.error());
                bool wait = request.get_param_value("wait") == "true" ||
                            request.get_param_value("wait") == "1";
                // A client that asks for NDJSON gets the call as it runs
                // (its output, attempts, then the call), from a call run in
                // the background: going away does not stop it.
                bool stream = wait && request.get_header_value("Accept").find(
                                          "application/x-ndjson") != std::string::npos;
                auto call = agent_.Call(request.matches[1], request.matches[2], *call_request,
                                        wait && !stream);
                if (!call) return ReplyError(response, call.error());
                if (stream) return StreamCall(*call, response);
                if (wait) return Reply(response, 200, CallWithOutput(agent_, *call));
                Reply(response, 202, CallToJson(*call));
              });
  server.Delete(R"(/v1/apps/([a-z0-9][a-z0-9_-]*)/volumes/([a-z0-9][a-z0-9_-]*))",
                [this](const httplib::Request& request, httplib::Response& response) {
                  auto deleted = agent_.DeleteVolume(request.matches[1], request.matches[2]);
                  if (!deleted.ok()) return ReplyError(response, deleted.error());
                  Reply(response, 200, {{"deleted", true}});
                });
  server.Get("/v1/logs", [this](const httplib::Request& request, httplib::Response& response) {
    std::string app = request.get_param_value("app");
    std::string function = request.get_param_value("function");
    if (!IsName(app) || (!function.empty() && !IsName(function))) {
      return ReplyError(response, 400, "invalid-argument",
                        "logs need ?app=NAME and optionally &function=NAME");
    }
    auto since = MillisParam(request, "since", 0);
    if (!since) return ReplyError(response, since.error());
    std::string follow = request.get_param_value("follow");
    if (follow != "1" && follow != "true") {
      // From where an earlier read ended (its Gantry-Log-Cursor), or the start.
      LogCursor cursor;
      if (request.has_param("cursor")) {
        auto decoded = LogCursor::Decode(request.get_param_value("cursor"));
        if (!decoded) {
          return ReplyError(response, 400, "invalid-argument",
                            "cursor: not one that GET /v1/logs gave");
        }
        cursor = std::move(*decoded);
      }
      response.set_content(agent_.logs().ReadNew(app, function, &cursor, *since),
                           "application/x-ndjson");
      response.set_header("Gantry-Log-Cursor", cursor.Encode());
      return;
    }
    // Followed logs stream until the client goes or the server stops.
    struct Followed {
      LogCursor cursor;
      std::chrono::steady_clock::time_point last_sent = std::chrono::steady_clock::now();
    };
    auto followed = std::make_shared<Followed>();
    response.set_chunked_content_provider(
        "application/x-ndjson",
        [this, app, function, followed, since = *since](std::size_t, httplib::DataSink& sink) {
          std::string fresh = agent_.logs().ReadNew(app, function, &followed->cursor, since);
          const bool idle = fresh.empty();
          auto heartbeat = [] {
            return EventLine({{"heartbeat", true}, {"time_ms", core::NowMs()}});
          };
          if (!SendOrHeartbeat(sink, std::move(fresh), heartbeat, &followed->last_sent))
            return false;
          if (idle) std::this_thread::sleep_for(std::chrono::milliseconds(200));
          return !stopping_ && sink.is_writable();
        },
        CountStream("logs"));
  });
  read("/v1/usage", [this](const httplib::Request& request, httplib::Response& response) {
    const std::int64_t now_ms = core::NowMs();
    auto since = MillisParam(request, "since", 0);
    if (!since) return ReplyError(response, since.error());
    auto until = MillisParam(request, "until", now_ms + 1);
    if (!until) return ReplyError(response, until.error());
    std::string app = request.get_param_value("app");
    if (!app.empty() && !IsName(app)) {
      return ReplyError(response, 400, "invalid-argument", "app: not an app name");
    }
    if (*until < *since) {
      return ReplyError(response, 400, "invalid-argument", "until: before since");
    }
    // A chart's steps: at most kMaxSteps of them.
    constexpr std::int64_t kMaxSteps = 10'000;
    auto step = IntegerParam(request, "step", 0, 1, std::numeric_limits<std::int64_t>::max(),
                             "a step in milliseconds (an integer >= 1)");
    if (!step) return ReplyError(response, step.error());
    if (*step > 0 && (*until - *since) / *step >= kMaxSteps) {
      return ReplyError(
          response, 400, "invalid-argument",
          "step: the window holds more than " + std::to_string(kMaxSteps) + " steps of it");
    }
    auto usage = agent_.Usage(*since, *until, app, *step);
    if (!usage) return ReplyError(response, usage.error());
    Reply(response, 200, *usage);
  });
  server.Get(R"(/v1/calls/(call-[0-9a-f]+))", [this](const httplib::Request& request,
                                                     httplib::Response& response) {
    auto call = agent_.FindCall(request.matches[1]);
    if (!call) return ReplyError(response, call.error());
    if (!*call)
      return ReplyError(response, 404, "not-found", "no call " + std::string(request.matches[1]));
    if (request.has_param("stdout_from") || request.has_param("stderr_from")) {
      if (auto followed = CallFollowed(agent_, **call, request, response))
        Reply(response, 200, *followed);
      return;
    }
    json value = IsFinished((*call)->state) ? CallWithOutput(agent_, **call) : CallToJson(**call);
    Reply(response, 200, value);
  });
  read("/v1/calls", [this](const httplib::Request& request, httplib::Response& response) {
    std::string app = request.get_param_value("app");
    if (!app.empty() && !IsName(app)) {
      return ReplyError(response, 400, "invalid-argument", "app: not an app name");
    }
    auto limit = IntegerParam(request, "limit", 50, 1, 500, "an integer from 1 to 500");
    if (!limit) return ReplyError(response, limit.error());
    auto calls = agent_.RecentCalls(app, static_cast<int>(*limit));
    if (!calls) return ReplyError(response, calls.error());
    json list = json::array();
    for (const CallRecord& call : *calls) list.push_back(CallToJson(call));
    Reply(response, 200, {{"calls", list}});
  });
}

void ApiServer::StreamCall(const CallRecord& call, httplib::Response& response) {
  auto stream = std::make_shared<CallStream>();
  stream->submitted = call;
  response.status = 200;
  response.set_chunked_content_provider(
      "application/x-ndjson",
      [this, stream](std::size_t, httplib::DataSink& sink) {
        bool ended = false;
        std::string lines = NextCallEvents(agent_, stream.get(), &ended);
        const bool idle = lines.empty();
        auto heartbeat = [] { return EventLine({{"event", "heartbeat"}}); };
        if (!SendOrHeartbeat(sink, std::move(lines), heartbeat, &stream->last_sent)) return false;
        if (ended) {
          sink.done();
          return true;
        }
        if (idle) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        return !stopping_ && sink.is_writable();
      },
      CountStream("calls"));
}

void ApiServer::ChangeStreams(const std::string& route, int change) {
  std::lock_guard lock(streams_mutex_);
  open_streams_[route] += change;
  std::map<MetricLabels, double> values;
  for (const auto& [name, open] : open_streams_) values[{{"route", name}}] = open;
  agent_.metrics().api_streams.Replace(std::move(values));
}

std::function<void(bool)> ApiServer::CountStream(const std::string& route) {
  ChangeStreams(route, +1);
  return [this, route](bool) { ChangeStreams(route, -1); };
}

void ApiServer::AddDashboardRoutes() {
  httplib::Server& server = *dashboard_;
  ConfigureServer(server, options_.max_body_bytes);
  const bool tls = options_.tls_cert && options_.tls_key;
  auto signed_in = [this](const httplib::Request& request) {
    return AuthorizationMatches(request.get_header_value("Authorization"), options_.token) ||
           sessions_->Valid(request.get_header_value("Cookie"), core::NowMs() / 1000);
  };
  // The read routes need a session (or the token); the pages check it themselves.
  server.set_pre_routing_handler(
      [signed_in](const httplib::Request& request, httplib::Response& response) {
        if (!request.path.starts_with("/ui/v1/") || (request.method == "GET" && signed_in(request)))
          return httplib::Server::HandlerResponse::Unhandled;
        ReplyError(response, 401, "unauthorized", "sign in at /ui first");
        return httplib::Server::HandlerResponse::Handled;
      });
  auto page = [](httplib::Response& response, int status, const std::string& html) {
    response.status = status;
    response.set_header("Content-Security-Policy", kDashboardPolicy);
    response.set_header("Cache-Control", "no-store");
    response.set_content(html, "text/html; charset=utf-8");
  };
  server.Get("/ui",
             [signed_in, page](const httplib::Request& request, httplib::Response& response) {
               if (signed_in(request)) return page(response, 200, std::string(DashboardPage()));
               page(response, 401, DashboardSignInPage(""));
             });
  // A browser sends Origin with every POST. A web function's page is
  // another origin (the API's port) yet the same site, whose forms would
  // carry the cookie: only the dashboard's own page may sign in or out.
  auto foreign = [tls](const httplib::Request& request) {
    std::string origin = request.get_header_value("Origin");
    return !origin.empty() &&
           origin != std::string(tls ? "https://" : "http://") + request.get_header_value("Host");
  };
  server.Post("/ui/login", [this, tls, page, foreign](const httplib::Request& request,
                                                      httplib::Response& response) {
    if (foreign(request))
      return page(response, 403, DashboardSignInPage("Sign in from the dashboard's own page."));
    // The token comes in the form's body only: in a URL it would be kept
    // in histories and logs.
    if (request.target.find('?') != std::string::npos) {
      return page(response, 400,
                  DashboardSignInPage("Sign in with the form: the token never goes in a URL."));
    }
    if (!AuthorizationMatches("Bearer " + request.get_param_value("token"), options_.token)) {
      return page(response, 401, DashboardSignInPage("That is not this agent's token."));
    }
    auto session = sessions_->Issue(core::NowMs() / 1000);
    if (!session) return ReplyError(response, session.error());
    response.set_header("Set-Cookie", sessions_->SetCookie(*session, tls));
    response.set_redirect("/ui", 303);
  });
  server.Post("/ui/logout", [this, tls, foreign](const httplib::Request& request,
                                                 httplib::Response& response) {
    if (foreign(request))
      return ReplyError(response, 403, "forbidden", "sign out from the dashboard's own page");
    sessions_->Revoke(request.get_header_value("Cookie"), core::NowMs() / 1000);
    response.set_header("Set-Cookie", sessions_->SetCookie("", tls));
    response.set_redirect("/ui", 303);
  });
}

}  // namespace agents
