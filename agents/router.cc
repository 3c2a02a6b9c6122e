#include "agents/router.h"

#include <httplib.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "agents/api_reply.h"
#include "agents/api_token.h"
#include "agents/http_message.h"

namespace agents {
namespace {

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
/// byte), recorded when it goes. One that got no answer (its client went
/// while its body was being read, while it was queued, or while its
/// container was being connected to) is not counted.
struct RequestOutcome {
  RequestOutcome(AgentMetrics& metrics, MetricLabels function)
      : metrics(metrics), function(std::move(function)) {}
  RequestOutcome(const RequestOutcome&) = delete;
  RequestOutcome& operator=(const RequestOutcome&) = delete;
  ~RequestOutcome() {
    if (status == 0) return;
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

/// A container's response body as the router relays it: bytes read past
/// the head first, then the connection's, decoded when chunked, never a
/// byte past a length.
struct UpstreamBody {
  enum class Read {
    kPiece,  // a piece of the body
    kEnd,    // the body's end
    kWait,   // nothing new on the connection yet
    kCut,    // the container's connection failed or ended the body early
  };

  int connection;
  std::string pending;
  std::optional<ChunkedDecoder> chunked;
  std::optional<std::uint64_t> remaining;  // of a body with a length
  bool ended = false;

  /// The next piece of the body, decoded when chunked, into `piece`; read
  /// without waiting.
  Read Next(std::string* piece) {
    piece->clear();
    if (remaining && *remaining == 0) ended = true;
    while (piece->empty() && !ended) {
      std::string raw;
      if (!pending.empty()) {
        raw.swap(pending);
      } else {
        char buffer[64 << 10];
        ssize_t count = recv(connection, buffer, sizeof buffer, MSG_DONTWAIT);
        if (count < 0 && errno == EINTR) continue;
        if (count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Read::kWait;
        if (count < 0) return Read::kCut;
        if (count == 0) {
          ended = true;
          bool whole = (!chunked || chunked->done()) && (!remaining || *remaining == 0);
          return whole ? Read::kEnd : Read::kCut;
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
        if (!chunked->Feed(raw, piece).ok()) return Read::kCut;
        if (chunked->done()) ended = true;
      }
    }
    return piece->empty() ? Read::kEnd : Read::kPiece;
  }
};

/// An app's or a function's name as the router's paths take it:
/// [a-z0-9][a-z0-9_-]*.
bool IsName(std::string_view name) {
  return !name.empty() && name.front() != '_' && name.front() != '-' &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
         });
}

/// The methods a web function is sent (CONNECT and TRACE are not).
bool IsForwardedMethod(std::string_view method) {
  for (std::string_view allowed : {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}) {
    if (method == allowed) return true;
  }
  return false;
}

}  // namespace

/// A response the router writes on a client's connection: HTTP/1.1, its
/// body delimited by a length, else chunked (HTTP/1.0: by closing), the
/// connection kept for the next request unless the client or the router
/// ends it.
class ClientReply {
 public:
  /// `head_request`: the request is a HEAD, whose responses have no body.
  ClientReply(httplib::Stream& stream, bool http10, bool keep_alive, bool head_request)
      : stream_(stream), http10_(http10), keep_alive_(keep_alive), head_request_(head_request) {}

  int status() const { return status_; }
  bool head_request() const { return head_request_; }
  /// How the connection goes on once this is done.
  HttpListener::Answered answered() const {
    if (failed_) return HttpListener::Answered::kAbort;
    if (body_unread_) return HttpListener::Answered::kCloseUnread;
    return keep_alive() ? HttpListener::Answered::kKeep : HttpListener::Answered::kClose;
  }
  /// The connection ends with this response.
  void Close() { keep_alive_ = false; }
  /// The response is cut short (its body, the client's request): the
  /// connection ends at once, without the body's end.
  void Abort() { failed_ = true; }
  /// Whether the request's body is (still) unread: an answer then ends the
  /// connection, as that body is no next request.
  void BodyUnread(bool unread) { body_unread_ = unread; }

  /// The head: `status` and `reason`, header lines `fields` (each ending in
  /// CRLF), and the body's `length` when known. Without `body` (HEAD, 204,
  /// 304) none follows: `length` is only said.
  bool Head(int status, std::string_view reason, std::string_view fields,
            std::optional<std::uint64_t> length, bool body) {
    status_ = status;
    std::string head = "HTTP/1.1 " + std::to_string(status) + " ";
    head.append(reason.empty() ? ReasonPhrase(status) : reason).append("\r\n").append(fields);
    if (length) {
      head += "Content-Length: " + std::to_string(*length) + "\r\n";
    } else if (body && http10_) {
      Close();  // its end is the connection's
    } else if (body) {
      chunked_ = true;
      head += "Transfer-Encoding: chunked\r\n";
    }
    if (!keep_alive()) {
      head += "Connection: close\r\n";
    } else if (http10_) {
      head += "Connection: keep-alive\r\n";
    }
    head += "\r\n";
    return Write(head);
  }
  /// A piece of the body, as a chunk when it is chunked.
  bool Body(std::string_view piece) {
    if (!chunked_) return Write(piece);
    char size[24];
    int length = std::snprintf(size, sizeof size, "%zx\r\n", piece.size());
    std::string chunk;
    chunk.reserve(static_cast<std::size_t>(length) + piece.size() + 2);
    chunk.append(size, static_cast<std::size_t>(length)).append(piece).append("\r\n");
    return Write(chunk);
  }
  /// The end of a chunked body.
  bool End() { return !chunked_ || Write("0\r\n\r\n"); }

  /// The API's JSON error, {"error": {"code", "message"}}.
  void Error(int status, const std::string& code, const std::string& message,
             std::string_view fields = "") {
    std::string body = ErrorText(code, message);
    std::string head_fields = "Content-Type: application/json\r\n";
    head_fields.append(fields);
    if (Head(status, ReasonPhrase(status), head_fields, body.size(), !head_request_) &&
        !head_request_) {
      Body(body);
    }
  }
  void Error(const core::Error& error) {
    Error(HttpStatusOf(error.code), core::ErrorCodeName(error.code), error.message);
  }

  /// An interim 100 Continue: the client may send the body it holds back.
  bool Continue() { return Write("HTTP/1.1 100 Continue\r\n\r\n"); }

 private:
  bool keep_alive() const { return keep_alive_ && !body_unread_ && !failed_; }

  bool Write(std::string_view bytes) {
    if (failed_) return false;
    if (stream_.write(bytes.data(), bytes.size()) < 0) failed_ = true;
    return !failed_;
  }

  httplib::Stream& stream_;
  const bool http10_;
  bool keep_alive_;
  const bool head_request_;
  bool body_unread_ = false;
  bool chunked_ = false;
  int status_ = 0;
  bool failed_ = false;
};

namespace {

/// An error that a request's container caused, or the lack of one, unless
/// the app's budget stopped its containers meanwhile (while the request
/// waited or was being forwarded): the budget's 402 then, not what the stop
/// did to the request. A 502 or 504, the container's failure, is logged, as
/// nginx logs an upstream's; a 503 (none ready in time, a full queue) is
/// load the agent sheds, seen in GET /metrics and the status, and not
/// written once per request when the agent is busiest.
void ContainerError(ClientReply& reply, const Agent& agent, const std::string& app, int status,
                    const std::string& code, const std::string& message) {
  if (auto refusal = agent.BudgetRefusal(app)) return reply.Error(*refusal);
  if (status == 502 || status == 504)
    spdlog::warn("agent: app {}: {} {}: {}", app, status, code, message);
  reply.Error(status, code, message);
}

/// A request forwarded to a container, and the container's response
/// relayed to the client as it comes, whenever HttpListener resumes it (the
/// container's connection has bytes): its head, then its body, a chunked or
/// close-delimited one piece by piece (so that streams and server-sent
/// events pass unbuffered), one with a length kept. It holds the
/// container's input until the body has been relayed, and counts the
/// request in GET /metrics when it goes.
class Relay final : public HttpListener::Unfinished {
 public:
  /// `reply`: the client's, nothing written yet.
  Relay(const Agent& agent, std::string app, ClientReply reply,
        std::unique_ptr<RequestOutcome> outcome, WebLease lease, core::UniqueFd connection)
      : agent_(agent),
        app_(std::move(app)),
        reply_(std::move(reply)),
        outcome_(std::move(outcome)),
        lease_(std::move(lease)),
        connection_(std::move(connection)) {}
  ~Relay() override {
    if (outcome_) outcome_->status = reply_.status();
  }

  int source() const override { return connection_.get(); }
  /// A container that sends nothing of its response for the function's
  /// timeout is given up on.
  std::chrono::milliseconds timeout() const override { return lease_.container().IoTimeout(); }

  std::optional<HttpListener::Answered> Resume(bool timed_out) override {
    if (!body_) {
      if (timed_out) {
        ContainerError(
            reply_, agent_, app_, 504, "gateway-timeout",
            "the container sent no response within " + std::to_string(timeout().count()) + " ms");
        return reply_.answered();
      }
      std::optional<UpstreamResponseHead> upstream;
      while (!upstream) {
        char buffer[16 << 10];
        ssize_t count = recv(connection_.get(), buffer, sizeof buffer, MSG_DONTWAIT);
        if (count < 0 && errno == EINTR) continue;
        if (count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return std::nullopt;
        if (count <= 0) {
          ContainerError(
              reply_, agent_, app_, 502, "bad-gateway",
              count == 0 ? "the container closed the connection without a response"
                         : std::string("no response from the container: ") + std::strerror(errno));
          return reply_.answered();
        }
        received_.append(buffer, static_cast<std::size_t>(count));
        while (true) {
          auto parsed = ParseResponseHead(received_);
          if (!parsed) {
            ContainerError(reply_, agent_, app_, 502, "bad-gateway", parsed.error().message);
            return reply_.answered();
          }
          upstream = std::move(parsed).value();
          // An interim 1xx (100 Continue, 103 Early Hints) is not the answer.
          if (!upstream || upstream->status / 100 != 1 || upstream->status == 101) break;
          received_.erase(0, upstream->head_bytes);
          upstream.reset();
        }
      }
      if (!RelayHead(*upstream)) return reply_.answered();
    }
    // A body the container cut short, or stopped sending for its timeout,
    // is cut short for the client too: its connection ends without the
    // body's end.
    std::string piece;
    while (true) {
      switch (timed_out ? UpstreamBody::Read::kCut : body_->Next(&piece)) {
        case UpstreamBody::Read::kWait:
          return std::nullopt;
        case UpstreamBody::Read::kCut:
          reply_.Abort();
          return reply_.answered();
        case UpstreamBody::Read::kEnd:
          reply_.End();
          return reply_.answered();
        case UpstreamBody::Read::kPiece:
          if (!reply_.Body(piece)) return reply_.answered();
          break;
      }
    }
  }

 private:
  /// Writes the client's head from the container's `upstream`: whether a
  /// body follows (body_ set up to relay it).
  bool RelayHead(const UpstreamResponseHead& upstream) {
    std::string fields;
    for (const auto& [name, value] : upstream.headers) {
      if (IsHopByHopHeader(name) || HeaderNameIs(name, "Content-Length")) continue;
      fields.append(name).append(": ").append(value).append("\r\n");
    }
    const bool chunked = upstream.chunked();
    const std::optional<std::uint64_t> length = chunked ? std::nullopt : upstream.content_length();
    // No body: a HEAD's response says the length its GET's would have.
    if (reply_.head_request() || upstream.status / 100 == 1 || upstream.status == 204 ||
        upstream.status == 304) {
      reply_.Head(upstream.status, upstream.reason, fields,
                  upstream.status == 204 || upstream.status / 100 == 1 ? std::nullopt : length,
                  /*body=*/false);
      return false;
    }
    if (!reply_.Head(upstream.status, upstream.reason, fields, length, /*body=*/true)) return false;
    body_.emplace(
        UpstreamBody{connection_.get(), received_.substr(upstream.head_bytes), {}, length, false});
    if (chunked) body_->chunked.emplace();
    received_.clear();
    return true;
  }

  const Agent& agent_;
  const std::string app_;
  ClientReply reply_;
  std::unique_ptr<RequestOutcome> outcome_;
  WebLease lease_;
  core::UniqueFd connection_;
  std::string received_;              // of the head, not relayed yet
  std::optional<UpstreamBody> body_;  // once the head is relayed
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

bool Router::Takes(const httplib::Request& request) const {
  return request.target.starts_with("/apps/") ||
         !NameUnderDomain(request.get_header_value("Host"), web_domain_).empty();
}

std::optional<HttpListener::Interception> Router::Serve(std::string_view head,
                                                        httplib::Stream& stream, bool last) const {
  auto parsed = ParseRequestHead(head);
  if (!parsed) {
    ClientReply reply(stream, /*http10=*/false, /*keep_alive=*/false, /*head_request=*/false);
    reply.BodyUnread(true);  // what follows a head not understood is not known
    reply.Error(400, "invalid-argument", parsed.error().message);
    return reply.answered();
  }
  const RequestHead& request = *parsed;
  std::string app, function, prefix, not_found;
  const std::string host =
      NameUnderDomain(std::string(request.Find("Host").value_or("")), web_domain_);
  if (!host.empty()) {
    // FUNCTION.APP: two labels before the domain, no more.
    std::string_view names(host.data(), host.size() - web_domain_.size() - 1);
    std::size_t dot = names.find('.');
    if (dot == std::string_view::npos || dot == 0 || dot + 1 == names.size() ||
        names.find('.', dot + 1) != std::string_view::npos) {
      not_found =
          "no web function at " + host + ": web functions are at FUNCTION.APP." + web_domain_;
    } else {
      app = names.substr(dot + 1);
      function = names.substr(0, dot);
    }
  } else if (request.target.starts_with("/apps/")) {
    // /apps/APP/FUNCTION, then "/…", "?…" or nothing.
    std::string_view path(request.target);
    path = path.substr(0, path.find('?')).substr(6);
    std::size_t slash = path.find('/');
    std::string_view app_name = path.substr(0, slash);
    std::string_view rest = slash == std::string_view::npos ? "" : path.substr(slash + 1);
    std::string_view function_name = rest.substr(0, rest.find('/'));
    if (slash == std::string_view::npos || !IsName(app_name) || !IsName(function_name)) {
      not_found = "no such route";
    } else {
      app = app_name;
      function = function_name;
      prefix = "/apps/" + app + "/" + function;
    }
  } else {
    return std::nullopt;  // the API's
  }

  ClientReply reply(stream, request.minor_version == 0, !last && request.keep_alive(),
                    request.method == "HEAD");
  auto body = RequestBodyOf(request);
  if (!body) {
    reply.BodyUnread(true);  // where the next request would begin is not known
    reply.Error(400, "invalid-argument", body.error().message);
    return reply.answered();
  }
  reply.BodyUnread(body->chunked || body->length > 0);
  if (!not_found.empty()) {
    reply.Error(404, "not-found", not_found);
  } else if (!host.empty() && !request.target.starts_with('/')) {
    // By host name the path is forwarded whole: an absolute URI or `*` is none.
    reply.Error(400, "invalid-argument", "the request's target must be a path beginning with /");
  } else if (auto relay = Forward(request, *body, stream, reply, app, function, prefix)) {
    return relay;
  }
  return reply.answered();
}

std::unique_ptr<HttpListener::Unfinished> Router::Forward(
    const RequestHead& request, const RequestBody& body_framing, httplib::Stream& stream,
    ClientReply& reply, const std::string& app, const std::string& function,
    const std::string& prefix) const {
  const bool has_body = body_framing.chunked || body_framing.length > 0;

  auto target = agent_.FindWebFunction(app, function);
  // Counted once the response has ended: every request to a web function
  // of this host, refusals (a budget's 402, 401, 503) too. One to no such
  // function is not: its labels would be whatever a client sent.
  std::unique_ptr<RequestOutcome> outcome;
  if (target || target.error().code != core::ErrorCode::kNotFound) {
    outcome = std::make_unique<RequestOutcome>(agent_.metrics(),
                                               MetricLabels{{"app", app}, {"function", function}});
  }
  // An answer here is the reply's (no relay): its status is counted.
  auto answered = [&]() -> std::unique_ptr<HttpListener::Unfinished> {
    if (outcome) outcome->status = reply.status();
    return nullptr;
  };
  auto refuse = [&](auto&&... error) {
    reply.Error(std::forward<decltype(error)>(error)...);
    return answered();
  };
  auto fail = [&](int status, const std::string& code, const std::string& message) {
    ContainerError(reply, agent_, app, status, code, message);
    return answered();
  };
  if (!target) return refuse(target.error());
  const WebState& web = target->web;
  const std::string authorization(request.Find("Authorization").value_or(""));
  if ((web.auth == WebAuth::kToken && !AuthorizationMatches(authorization, token_)) ||
      (web.auth == WebAuth::kKey && !AuthorizationKeyMatches(authorization, target->key_sha256))) {
    return refuse(401, "unauthorized",
                  std::string("this endpoint needs ") +
                      (web.auth == WebAuth::kToken ? "the agent's token" : "the app's key"),
                  "WWW-Authenticate: Bearer\r\n");
  }
  // After the credentials: what an app spends is not for anyone who asks.
  if (auto refusal = agent_.BudgetRefusal(app)) return refuse(*refusal);
  if (!target->function) return refuse(503, "unavailable", target->unavailable);
  if (!IsForwardedMethod(request.method)) {
    return refuse(405, "invalid-argument",
                  "a web function takes GET, HEAD, POST, PUT, PATCH, DELETE and OPTIONS",
                  "Allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n");
  }
  if (body_framing.length > max_body_bytes_) {
    return refuse(413, "invalid-argument",
                  "the request body is larger than " + std::to_string(max_body_bytes_) + " bytes");
  }

  // The body, whole, before a container is sought: a cold start does not
  // wait for a slow client, nor a container's input.
  std::string body;
  if (has_body) {
    if (!body_framing.chunked) body.reserve(static_cast<std::size_t>(body_framing.length));
    if (request.expects_continue() && !reply.Continue()) return answered();
    std::optional<ChunkedDecoder> chunked;
    if (body_framing.chunked) chunked.emplace();
    char buffer[64 << 10];
    while (chunked ? !chunked->done() : body.size() < body_framing.length) {
      std::uint64_t wanted = chunked ? chunked->wanted() : body_framing.length - body.size();
      ssize_t count = stream.read(
          buffer, static_cast<std::size_t>(std::min<std::uint64_t>(wanted, sizeof buffer)));
      if (count <= 0) {
        reply.Abort();  // the client went, or sent nothing for the read timeout
        return answered();
      }
      std::string_view piece(buffer, static_cast<std::size_t>(count));
      if (!chunked) {
        body.append(piece);
      } else if (auto fed = chunked->Feed(piece, &body); !fed) {
        return refuse(400, "invalid-argument", fed.error().message);
      }
      if (body.size() > max_body_bytes_) {
        return refuse(
            413, "invalid-argument",
            "the request body is larger than " + std::to_string(max_body_bytes_) + " bytes");
      }
    }
    reply.BodyUnread(false);
  }

  // Waiting requests hold a listener thread each: past a bound, the API
  // and the other functions would starve.
  if (queued_.fetch_add(1) >= kMaxWaitingRequests) {
    --queued_;
    return refuse(503, "unavailable",
                  "the agent has " + std::to_string(kMaxWaitingRequests) +
                      " requests waiting for containers already");
  }
  // A client that goes meanwhile takes its request with it: out of the
  // queue, or off a connect to a container whose backlog is full. Nothing
  // answers it (nothing would read it), nor counts it.
  const int client = stream.socket();
  auto gone = [client] { return HttpListener::ClientGone(client); };
  auto lease = target->function->Acquire(gone);
  --queued_;
  if (!lease && gone()) {
    reply.Abort();
    return answered();
  }
  if (!lease) {
    const core::Error& error = lease.error();
    return fail(HttpStatusOf(error.code), core::ErrorCodeName(error.code), error.message);
  }
  auto connection = lease->container().Connect(client);
  if (!connection && gone()) {
    reply.Abort();
    return answered();
  }
  if (!connection) return fail(502, "bad-gateway", connection.error().message);

  // The target as the client sent it, less the prefix.
  std::string_view forwarded = std::string_view(request.target).substr(prefix.size());
  std::string upstream_head = request.method + " ";
  if (forwarded.empty() || forwarded[0] == '?') upstream_head += "/";
  upstream_head.append(forwarded).append(" HTTP/1.0\r\n");
  std::string forwarded_for;
  // Headers the client's Connection names are about its connection alone.
  const bool names_headers = request.Find("Connection").has_value();
  for (const auto& [name, value] : request.headers) {
    if (IsHopByHopHeader(name) || (names_headers && request.ConnectionHas(name))) continue;
    // The router answers 100-continue itself; the body is read whole.
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
    upstream_head.append(name).append(": ").append(value).append("\r\n");
  }
  std::string remote_ip;
  int remote_port = 0;
  stream.get_remote_ip_and_port(remote_ip, remote_port);
  upstream_head += "X-Forwarded-For: " + forwarded_for + remote_ip + "\r\n";
  upstream_head += std::string("X-Forwarded-Proto: ") + (tls_ ? "https" : "http") + "\r\n";
  if (auto client_host = request.Find("Host")) {
    upstream_head.append("X-Forwarded-Host: ").append(*client_host).append("\r\n");
  }
  if (!prefix.empty()) upstream_head += "X-Forwarded-Prefix: " + prefix + "\r\n";
  if (!body.empty() || request.method == "POST" || request.method == "PUT" ||
      request.method == "PATCH") {
    upstream_head += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  upstream_head += "Connection: close\r\n\r\n";

  // A container that takes no byte of the request for the function's
  // timeout is given up on; its response is the relay's.
  if (!SendRequest(connection->get(), upstream_head, body, lease->container().IoTimeout())) {
    return fail(502, "bad-gateway",
                std::string("cannot send the request to the container: ") + std::strerror(errno));
  }
  return std::make_unique<Relay>(agent_, app, std::move(reply), std::move(outcome),
                                 std::move(lease).value(), std::move(connection).value());
}

}  // namespace agents
