#pragma once

#include <atomic>
#include <string>

#include "agents/agent.h"

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace agents {

/// The agent's router: serves every web function at
/// /apps/APP/FUNCTION/… on the agent's own address. For each request it
/// checks the function's `web.auth` (public, the agent token, or the app's
/// key), waits in the function's queue for a ready container with a free
/// input (a cold start when there is none; a 503 with a JSON error at the
/// queue's timeout or when it is full), and forwards the request to the
/// container with the prefix stripped: HTTP/1.0 with `Connection: close`
/// (as nginx's proxy does by default), hop-by-hop headers dropped, the
/// credentials dropped when the agent checked them, and `X-Forwarded-For`,
/// `-Proto`, `-Host` and `-Prefix` set. The response is relayed as it
/// arrives (a chunked or close-delimited body chunk by chunk, so streams
/// and server-sent events pass unbuffered; a body with a length keeps it).
/// The container's input is held until the whole body has been relayed.
class Router {
 public:
  /// Requests waiting for a container, over all functions, at most: each
  /// holds one of the API server's 256 threads while it waits.
  static constexpr int kMaxWaitingRequests = 128;

  Router(Agent& agent, std::string token, bool tls)
      : agent_(agent), token_(std::move(token)), tls_(tls) {}

  /// Handles one request whose path matched /apps/APP/FUNCTION[/…].
  void Handle(const httplib::Request& request, httplib::Response& response, const std::string& app,
              const std::string& function) const;

 private:
  Agent& agent_;
  std::string token_;
  bool tls_;
  mutable std::atomic<int> queued_ = 0;
};

}  // namespace agents
