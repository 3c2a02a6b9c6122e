#include "agents/router.h"

#include <httplib.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "agents/api_reply.h"
#include "agents/api_token.h"
#include "agents/upstream_response.h"

namespace agents {
namespace {

/// Headers httplib adds to a request itself: not the client's, not relayed.
bool IsServerHeader(const std::string& name) {
  return name == "REMOTE_ADDR" || name == "REMOTE_PORT" || name == "LOCAL_ADDR" ||
         name == "LOCAL_PORT";
}

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t sent = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(sent));
  }
  return true;
}

/// What a relay of one response body holds while httplib pulls it: the
/// container's input (released when the relay ends), the connection, and
/// bytes read past the head.
struct Relay {
  WebLease lease;
  core::UniqueFd connection;
  std::string pending;
  std::optional<ChunkedDecoder> chunked;
  bool ended = false;

  /// The next piece of the body (decoded when chunked), "" at its end;
  /// false when the container's connection failed.
  bool Next(std::string* piece) {
    piece->clear();
    while (piece->empty() && !ended) {
      std::string raw;
      if (!pending.empty()) {
        raw.swap(pending);
      } else {
        char buffer[64 << 10];
        ssize_t count = recv(connection.get(), buffer, sizeof buffer, 0);
        if (count < 0 && errno == EINTR) continue;
        if (count < 0) return false;
        if (count == 0) {
          ended = true;
          return !chunked || chunked->done();
        }
        raw.assign(buffer, static_cast<std::size_t>(count));
      }
      if (!chunked) {
        *piece = std::move(raw);
      } else {
        if (!chunked->Feed(raw, piece).ok()) return false;
        if (chunked->done()) ended = true;
      }
    }
    return true;
  }
};

}  // namespace

void Router::Handle(const httplib::Request& request, httplib::Response& response,
                    const std::string& app, const std::string& function) const {
  auto target = agent_.FindWebFunction(app, function);
  if (!target) {
    return ReplyError(response, target.error());
  }
  const WebState& web = *target->function->function().function.web;
  const std::string authorization = request.get_header_value("Authorization");
  if ((web.auth == WebAuth::kToken && !AuthorizationMatches(authorization, token_)) ||
      (web.auth == WebAuth::kKey && !AuthorizationKeyMatches(authorization, target->key_sha256))) {
    response.set_header("WWW-Authenticate", "Bearer");
    return ReplyError(response, 401, "unauthorized",
                      std::string("this endpoint needs ") +
                          (web.auth == WebAuth::kToken ? "the agent's token" : "the app's key"));
  }

  // The target as the client sent it, less the prefix.
  const std::string prefix = "/apps/" + app + "/" + function;
  if (!request.target.starts_with(prefix) ||
      (request.target.size() > prefix.size() && request.target[prefix.size()] != '/' &&
       request.target[prefix.size()] != '?')) {
    return ReplyError(response, 400, "invalid-argument",
                      "the path must begin with " + prefix + " as written");
  }
  std::string forwarded = request.target.substr(prefix.size());
  if (forwarded.empty() || forwarded[0] == '?') forwarded = "/" + forwarded;

  auto lease = target->function->Acquire();
  if (!lease) {
    return ReplyError(response, lease.error());
  }
  auto connection = lease->container().Connect();
  if (!connection) {
    return ReplyError(response, 502, "bad-gateway", connection.error().message);
  }

  std::string head = request.method + " " + forwarded + " HTTP/1.0\r\n";
  std::string forwarded_for;
  for (const auto& [name, value] : request.headers) {
    if (IsServerHeader(name) || IsHopByHopHeader(name)) continue;
    if (HeaderNameIs(name, "Content-Length")) continue;
    if (web.auth != WebAuth::kPublic && HeaderNameIs(name, "Authorization"))
      continue;  // the agent's credentials stay with the agent
    if (HeaderNameIs(name, "X-Forwarded-For")) {
      forwarded_for = value + ", ";
      continue;
    }
    if (HeaderNameIs(name, "X-Forwarded-Proto") || HeaderNameIs(name, "X-Forwarded-Host") ||
        HeaderNameIs(name, "X-Forwarded-Prefix")) {
      continue;
    }
    head += name + ": " + value + "\r\n";
  }
  head += "X-Forwarded-For: " + forwarded_for + request.remote_addr + "\r\n";
  head += std::string("X-Forwarded-Proto: ") + (tls_ ? "https" : "http") + "\r\n";
  if (request.has_header("Host"))
    head += "X-Forwarded-Host: " + request.get_header_value("Host") + "\r\n";
  head += "X-Forwarded-Prefix: " + prefix + "\r\n";
  if (!request.body.empty() || request.method == "POST" || request.method == "PUT" ||
      request.method == "PATCH") {
    head += "Content-Length: " + std::to_string(request.body.size()) + "\r\n";
  }
  head += "Connection: close\r\n\r\n";

  int fd = connection->get();
  // A container that stops answering for its function's timeout is given up on.
  timeval timeout{};
  timeout.tv_sec = static_cast<time_t>(
      std::max<std::int64_t>(1, target->function->function().function.timeout.count() / 1000));
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  if (!SendAll(fd, head) || !SendAll(fd, request.body)) {
    return ReplyError(
        response, 502, "bad-gateway",
        std::string("cannot send the request to the container: ") + std::strerror(errno));
  }

  std::string received;
  std::optional<UpstreamResponseHead> upstream;
  while (!upstream) {
    char buffer[16 << 10];
    ssize_t count = recv(fd, buffer, sizeof buffer, 0);
    if (count < 0 && errno == EINTR) continue;
    if (count <= 0) {
      return ReplyError(
          response, 502, "bad-gateway",
          count == 0 ? "the container closed the connection without a response"
                     : std::string("no response from the container: ") + std::strerror(errno));
    }
    received.append(buffer, static_cast<std::size_t>(count));
    auto parsed = ParseResponseHead(received);
    if (!parsed) return ReplyError(response, 502, "bad-gateway", parsed.error().message);
    upstream = std::move(parsed).value();
  }

  response.status = upstream->status;
  std::string content_type = upstream->Find("Content-Type").value_or("");
  for (const auto& [name, value] : upstream->headers) {
    if (IsHopByHopHeader(name) || HeaderNameIs(name, "Content-Length") ||
        HeaderNameIs(name, "Content-Type")) {
      continue;
    }
    response.set_header(name, value);
  }
  bool no_body = request.method == "HEAD" || upstream->status / 100 == 1 ||
                 upstream->status == 204 || upstream->status == 304;
  if (no_body) {
    if (!content_type.empty()) response.set_header("Content-Type", content_type);
    return;
  }

  auto relay =
      std::make_shared<Relay>(Relay{std::move(lease).value(), std::move(connection).value(),
                                    received.substr(upstream->head_bytes), std::nullopt, false});
  if (upstream->chunked()) relay->chunked.emplace();
  auto length = upstream->content_length();
  if (length && !upstream->chunked()) {
    response.set_content_provider(
        static_cast<std::size_t>(*length), content_type,
        [relay](std::size_t, std::size_t, httplib::DataSink& sink) {
          std::string piece;
          if (!relay->Next(&piece) || piece.empty()) return false;  // cut short
          return sink.write(piece.data(), piece.size());
        },
        [relay](bool) { relay->connection.Reset(); });
    return;
  }
  response.set_chunked_content_provider(
      content_type,
      [relay](std::size_t, httplib::DataSink& sink) {
        std::string piece;
        if (!relay->Next(&piece)) return false;
        if (piece.empty()) {
          sink.done();
          return true;
        }
        return sink.write(piece.data(), piece.size());
      },
      [relay](bool) { relay->connection.Reset(); });
}

}  // namespace agents
