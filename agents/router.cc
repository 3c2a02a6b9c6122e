#include "agents/router.h"

#include <httplib.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "agents/api_reply.h"
#include "agents/api_token.h"
#include "agents/upstream_response.h"

namespace agents {
namespace {

/// A header name as RFC 9110 5.1 allows it (a token).
bool IsHeaderToken(const std::string& name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](unsigned char c) {
    return std::isalnum(c) ||
           std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
  });
}

/// Headers httplib adds to a request itself: not the client's, not relayed.
bool IsServerHeader(const std::string& name) {
  return name == "REMOTE_ADDR" || name == "REMOTE_PORT" || name == "LOCAL_ADDR" ||
         name == "LOCAL_PORT";
}

/// Sends `head` and then `body` on `fd`, in one call when the socket takes
/// them (a request of the usual size); false, with errno set, when the
/// peer goes, or takes no byte for `timeout`.
bool SendRequest(int fd, std::string_view head, std::string_view body,
                 std::chrono::milliseconds timeout) {
  iovec pieces[2] = {{const_cast<char*>(head.data()), head.size()},
                     {const_cast<char*>(body.data()), body.size()}};
  iovec* next = pieces;
  std::size_t left = body.empty() ? 1 : 2;
  while (left > 0) {
    msghdr message{};
    message.msg_iov = next;
    message.msg_iovlen = left;
    ssize_t sent = sendmsg(fd, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd writable{fd, POLLOUT, 0};
      int ready = poll(&writable, 1, static_cast<int>(timeout.count()));
      if (ready == 0) errno = ETIMEDOUT;
      if (ready <= 0 && errno != EINTR) return false;
      continue;
    }
    if (sent <= 0) return false;
    for (auto count = static_cast<std::size_t>(sent); count > 0;) {
      std::size_t taken = std::min(count, next->iov_len);
      next->iov_base = static_cast<char*>(next->iov_base) + taken;
      next->iov_len -= taken;
      count -= taken;
      if (next->iov_len == 0) {
        ++next;
        --left;
      }
    }
  }
  return true;
}

/// One web request as GET /metrics counts it: its status class, and its
/// time from arrival to the end of its response (a relayed body's last
/// byte), recorded when the last holder (the handler, or the relay of the
/// body) lets it go.
struct RequestOutcome {
  RequestOutcome(AgentMetrics& metrics, MetricLabels function)
      : metrics(metrics), function(std::move(function)) {}
  RequestOutcome(const RequestOutcome&) = delete;
  RequestOutcome& operator=(const RequestOutcome&) = delete;
  ~RequestOutcome() {
    metrics.request_seconds.Observe(
        function, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    MetricLabels labels = function;
    labels.emplace_back("status_class", std::to_string(status / 100) + "xx");
    metrics.requests.Add(labels);
  }

  AgentMetrics& metrics;
  MetricLabels function;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  int status = 0;
};

/// What a relay of one response body holds while httplib pulls it: the
/// container's input (released when the relay ends), the connection, and
/// bytes read past the head.
struct Relay {
  WebLease lease;
  core::UniqueFd connection;
  std::string pending;
  std::optional<ChunkedDecoder> chunked;
  std::optional<std::uint64_t> remaining;  // of a body with a length: no byte past it is relayed
  bool ended = false;
  std::shared_ptr<RequestOutcome> outcome;  // counted once the body has been relayed

  /// The next piece of the body (decoded when chunked), "" at its end;
  /// false when the container's connection failed.
  bool Next(std::string* piece) {
    piece->clear();
    if (remaining && *remaining == 0) ended = true;
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
          return (!chunked || chunked->done()) && (!remaining || *remaining == 0);
        }
        raw.assign(buffer, static_cast<std::size_t>(count));
      }
      if (remaining) {
        if (raw.size() >= *remaining) {
          raw.resize(static_cast<std::size_t>(*remaining));
          ended = true;
        }
        *remaining -= raw.size();
        *piece = std::move(raw);
      } else if (!chunked) {
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

core::Status Router::CheckWebDomain(const std::string& domain,
                                    const std::vector<std::string>& own_names) {
  bool valid = !domain.empty() && domain.size() <= 253;
  for (std::size_t begin = 0; valid && begin <= domain.size();) {
    std::size_t end = std::min(domain.find('.', begin), domain.size());
    std::string_view label(domain.data() + begin, end - begin);
    valid = !label.empty() && label.size() <= 63 && label.front() != '-' && label.back() != '-' &&
            std::all_of(label.begin(), label.end(), [](char c) {
              return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
            });
    begin = end + 1;
  }
  if (!valid) {
    return core::Error{
        core::ErrorCode::kInvalidArgument,
        "--web-domain: expected a DNS name in lower case (fn.example.com), got \"" + domain + "\"",
        {}};
  }
  for (const std::string& name : own_names) {
    if (NameUnderDomain(name, domain).empty()) continue;
    return core::Error{core::ErrorCode::kInvalidArgument,
                       "--web-domain: this agent's own name " + name + " is under " + domain +
                           ", so its API would be unreachable by that name; choose a domain "
                           "no name of this host is under (such as fn." +
                           NameUnderDomain(name, domain) + ")",
                       {}};
  }
  return core::Ok{};
}

std::string Router::NameUnderDomain(std::string host, const std::string& domain) {
  if (domain.empty()) return "";
  if (std::size_t colon = host.rfind(':');
      colon != std::string::npos &&
      host.find_first_not_of("0123456789", colon + 1) == std::string::npos) {
    host.resize(colon);
  }
  if (host.ends_with('.')) host.pop_back();
  for (char& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (host.size() <= domain.size() + 1 || !host.ends_with(domain) ||
      host[host.size() - domain.size() - 1] != '.') {
    return "";
  }
  return host;
}

std::string Router::HostUnderDomain(const httplib::Request& request) const {
  return NameUnderDomain(request.get_header_value("Host"), web_domain_);
}

bool Router::ServesHost(const httplib::Request& request) const {
  return !HostUnderDomain(request).empty();
}

void Router::HandleHost(const httplib::Request& request, httplib::Response& response) const {
  const std::string host = HostUnderDomain(request);
  if (host.empty()) return ReplyError(response, 404, "not-found", "no such route");
  // FUNCTION.APP: two labels before the domain, no more.
  std::string_view names(host.data(), host.size() - web_domain_.size() - 1);
  std::size_t dot = names.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 == names.size() ||
      names.find('.', dot + 1) != std::string_view::npos) {
    return ReplyError(
        response, 404, "not-found",
        "no web function at " + host + ": web functions are at FUNCTION.APP." + web_domain_);
  }
  Serve(request, response, std::string(names.substr(dot + 1)), std::string(names.substr(0, dot)),
        "");
}

void Router::Handle(const httplib::Request& request, httplib::Response& response,
                    const std::string& app, const std::string& function) const {
  Serve(request, response, app, function, "/apps/" + app + "/" + function);
}

void Router::Serve(const httplib::Request& request, httplib::Response& response,
                   const std::string& app, const std::string& function,
                   const std::string& prefix) const {
  auto target = agent_.FindWebFunction(app, function);
  // Counted once the handler returns with the response's status, or, when
  // a body is relayed, once the relay ends: every request to a web function
  // of this host, refusals (a budget's 402, 401, 503) too. One to no such
  // function is not: its labels would be whatever a client sent.
  std::shared_ptr<RequestOutcome> outcome;
  if (target || target.error().code != core::ErrorCode::kNotFound) {
    outcome = std::make_shared<RequestOutcome>(agent_.metrics(),
                                               MetricLabels{{"app", app}, {"function", function}});
  }
  struct StatusOnReturn {
    RequestOutcome* outcome;
    const httplib::Response& response;
    ~StatusOnReturn() {
      if (outcome) outcome->status = response.status;
    }
  } status_on_return{outcome.get(), response};
  if (!target) return ReplyError(response, target.error());
  // A request that its function cannot answer because the app's budget
  // stopped it meanwhile (its containers went while it waited or was being
  // forwarded) gets the budget's 402, not what the stop did to it.
  auto fail = [&](int status, const std::string& code, const std::string& message) {
    if (auto refusal = agent_.BudgetRefusal(app)) return ReplyError(response, *refusal);
    ReplyError(response, status, code, message);
  };
  const WebState& web = target->web;
  const std::string authorization = request.get_header_value("Authorization");
  if ((web.auth == WebAuth::kToken && !AuthorizationMatches(authorization, token_)) ||
      (web.auth == WebAuth::kKey && !AuthorizationKeyMatches(authorization, target->key_sha256))) {
    response.set_header("WWW-Authenticate", "Bearer");
    return ReplyError(response, 401, "unauthorized",
                      std::string("this endpoint needs ") +
                          (web.auth == WebAuth::kToken ? "the agent's token" : "the app's key"));
  }
  // After the credentials: what an app spends is not for anyone who asks.
  if (auto refusal = agent_.BudgetRefusal(app)) return ReplyError(response, *refusal);
  if (!target->function) return ReplyError(response, 503, "unavailable", target->unavailable);

  // The target as the client sent it, less the prefix.
  if (!request.target.starts_with(prefix) ||
      (request.target.size() > prefix.size() && request.target[prefix.size()] != '/' &&
       request.target[prefix.size()] != '?')) {
    return ReplyError(
        response, 400, "invalid-argument",
        "the path must begin with " + (prefix.empty() ? "/" : prefix) + " as written");
  }
  std::string forwarded = request.target.substr(prefix.size());
  if (forwarded.empty() || forwarded[0] == '?') forwarded = "/" + forwarded;

  // Waiting requests hold a server thread each: past a bound, the API and
  // the other functions would starve.
  if (queued_.fetch_add(1) >= kMaxWaitingRequests) {
    --queued_;
    return ReplyError(response, 503, "unavailable",
                      "the agent has " + std::to_string(kMaxWaitingRequests) +
                          " requests waiting for containers already");
  }
  auto lease = target->function->Acquire();
  --queued_;
  if (!lease) {
    if (auto refusal = agent_.BudgetRefusal(app)) return ReplyError(response, *refusal);
    return ReplyError(response, lease.error());
  }
  auto connection = lease->container().Connect();
  if (!connection) return fail(502, "bad-gateway", connection.error().message);

  std::string head = request.method + " " + forwarded + " HTTP/1.0\r\n";
  std::string forwarded_for;
  // Headers the client's Connection names are about its connection alone.
  std::string connection_tokens = "," + request.get_header_value("Connection") + ",";
  for (char& c : connection_tokens)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  connection_tokens.erase(std::remove(connection_tokens.begin(), connection_tokens.end(), ' '),
                          connection_tokens.end());
  for (const auto& [name, value] : request.headers) {
    if (IsServerHeader(name)) continue;
    if (!IsHeaderToken(name) ||
        value.find_first_of(std::string("\r\n\0", 3)) != std::string::npos) {
      return ReplyError(response, 400, "invalid-argument",
                        "a request header has a bad name or a line break in its value");
    }
    std::string lower = name;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (IsHopByHopHeader(name) || connection_tokens.find("," + lower + ",") != std::string::npos)
      continue;
    // The router answers 100-continue itself; the body is already read.
    if (HeaderNameIs(name, "Content-Length") || HeaderNameIs(name, "Expect")) continue;
    // The agent's credentials stay with the agent, whatever the function's auth.
    if (HeaderNameIs(name, "Authorization") &&
        (web.auth != WebAuth::kPublic || AuthorizationMatches(value, token_))) {
      continue;
    }
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
  if (!prefix.empty()) head += "X-Forwarded-Prefix: " + prefix + "\r\n";
  if (!request.body.empty() || request.method == "POST" || request.method == "PUT" ||
      request.method == "PATCH") {
    head += "Content-Length: " + std::to_string(request.body.size()) + "\r\n";
  }
  head += "Connection: close\r\n\r\n";

  int fd = connection->get();
  // A container that takes no byte of the request, or sends none of its
  // response, for the function's timeout is given up on (Connect's socket
  // bounds each read by it).
  if (!SendRequest(fd, head, request.body, lease->container().IoTimeout())) {
    return fail(502, "bad-gateway",
                std::string("cannot send the request to the container: ") + std::strerror(errno));
  }

  std::string received;
  std::optional<UpstreamResponseHead> upstream;
  while (!upstream) {
    char buffer[16 << 10];
    ssize_t count = recv(fd, buffer, sizeof buffer, 0);
    if (count < 0 && errno == EINTR) continue;
    if (count <= 0) {
      return fail(502, "bad-gateway",
                  count == 0
                      ? "the container closed the connection without a response"
                      : std::string("no response from the container: ") + std::strerror(errno));
    }
    received.append(buffer, static_cast<std::size_t>(count));
    while (true) {
      auto parsed = ParseResponseHead(received);
      if (!parsed) return ReplyError(response, 502, "bad-gateway", parsed.error().message);
      upstream = std::move(parsed).value();
      // An interim 1xx (100 Continue, 103 Early Hints) is not the answer.
      if (!upstream || upstream->status / 100 != 1 || upstream->status == 101) break;
      received.erase(0, upstream->head_bytes);
      upstream.reset();
    }
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

  auto relay = std::make_shared<Relay>(
      Relay{std::move(lease).value(), std::move(connection).value(),
            received.substr(upstream->head_bytes), std::nullopt, std::nullopt, false, outcome});
  if (upstream->chunked()) relay->chunked.emplace();
  auto length = upstream->content_length();
  if (length && !upstream->chunked()) relay->remaining = *length;
  // With a Range header the container has sliced the body already: httplib
  // must not slice it again, as it would a body it is given with a length.
  if (length && !upstream->chunked() && !request.has_header("Range")) {
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
