#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agents/agent.h"
#include "agents/http_listener.h"
#include "agents/http_message.h"
#include "core/result.h"

namespace agents {

class ClientReply;  // router.cc: a response written on the client's connection

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
/// and server-sent events pass unbuffered; a body with a length keeps it),
/// by an HttpListener::Unfinished: while the container has sent nothing
/// new, the request is parked and holds no thread. One that sends nothing
/// for the function's timeout is given up on (a 504, or its body cut
/// short). The container's input is held until the whole body has been
/// relayed.
///
/// It reads its requests and writes its responses itself, on the API
/// listener's connections (HttpListener::Interceptor), HTTP/1.1 with
/// keep-alive: httplib serves the API's routes only.
///
/// With a web domain (`gantry agent --web-domain DOMAIN`) it also serves
/// each web function at http://FUNCTION.APP.DOMAIN/… (the Host header, any
/// case, with or without a port): the same checks, queue and relay, the
/// path forwarded whole. Every path of a name under the domain belongs to
/// web functions, none to the agent's API: FUNCTION.APP.DOMAIN/v1/… is the
/// function's (an OpenAI-style server serves /v1/chat/completions), and a
/// name under the domain that is not FUNCTION.APP of a web function here
/// gets a 404 JSON error. The domain itself and every other Host are the
/// agent's own address, where /v1/… and /healthz are the API's and no
/// function can take them.
class Router {
 public:
  /// Requests waiting for a container, over all functions, at most: each
  /// holds one of the API listener's threads while it waits.
  static constexpr int kMaxWaitingRequests = 128;

  /// `web_domain`: lower case, as CheckWebDomain accepts it; "" for none.
  /// `max_body_bytes`: the largest request body taken (a larger one: 413).
  Router(Agent& agent, std::string token, bool tls, std::string web_domain,
         std::size_t max_body_bytes)
      : agent_(agent),
        token_(std::move(token)),
        tls_(tls),
        web_domain_(std::move(web_domain)),
        max_body_bytes_(max_body_bytes) {}

  /// A web domain as --web-domain takes it: DNS labels of lower-case
  /// letters, digits and `-`, separated by dots (`fn.example.com`), that
  /// none of `own_names` (the agent's names: its --listen host, the host's
  /// name; any case) is under, as that name would reach functions, never
  /// the API.
  static core::Status CheckWebDomain(const std::string& domain,
                                     const std::vector<std::string>& own_names);

  /// The API listener's interceptor (HttpListener::Interceptor): reads and
  /// answers, on the client's connection, a request to
  /// /apps/APP/FUNCTION[/…] or one whose Host is under the web domain;
  /// nullopt for any other (the API's), having read and written nothing;
  /// the relay of the container's response for one forwarded.
  /// A head that is not HTTP/1.x gets a 400 here, whatever its target.
  std::optional<HttpListener::Interception> Serve(std::string_view head, httplib::Stream& stream,
                                                  bool last) const;

  /// Whether httplib was given a request that is the router's (its path
  /// under /apps/, or its Host under the web domain): one whose head was
  /// too long for the listener to offer it here.
  bool Takes(const httplib::Request& request) const;

 private:
  /// The request to `function` of `app`, its body framed as `body_framing` and
  /// not read yet, its target with `prefix` stripped ("" by host name),
  /// answered on `reply`'s connection: sent to a container, the relay of
  /// its response (`reply` then moved into it); null when `reply` answered
  /// it here.
  std::unique_ptr<HttpListener::Unfinished> Forward(const RequestHead& request,
                                                    const RequestBody& body_framing,
                                                    httplib::Stream& stream, ClientReply& reply,
                                                    const std::string& app,
                                                    const std::string& function,
                                                    const std::string& prefix) const;
  /// `host` (a Host header's value), lower case, without port or trailing
  /// dot, when it is a name under `domain`; "" otherwise.
  static std::string NameUnderDomain(std::string host, const std::string& domain);

  Agent& agent_;
  std::string token_;
  bool tls_;
  std::string web_domain_;
  std::size_t max_body_bytes_;
  mutable std::atomic<int> queued_ = 0;
};

}  // namespace agents
