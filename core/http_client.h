#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"

namespace core {

/// HTTP header fields in the order they came, names compared without case
/// (RFC 9110 section 5.1).
struct HttpHeaders {
  std::vector<std::pair<std::string, std::string>> fields;

  void Add(std::string name, std::string value);
  /// The first field named `name`.
  std::optional<std::string> Get(std::string_view name) const;
  /// Removes every field named `name`.
  void Remove(std::string_view name);
};

/// One HTTP request. The body is `body`, or, when `body_reader` is set,
/// streamed from it (`body_size` bytes): a blob goes to a registry from its
/// file without being read into memory. The response body lands in
/// HttpResponse::body, or, for a 2xx answer when `body_sink` is set, is
/// handed to it piece by piece: a blob streams to disk while it is hashed.
struct HttpRequest {
  std::string method = "GET";
  std::string url;
  HttpHeaders headers;
  std::string body;
  /// Fills up to `size` bytes at `buffer`, returns how many (0: the end). An
  /// error aborts the request and is what Send returns.
  std::function<Result<std::size_t>(char* buffer, std::size_t size)> body_reader;
  std::uint64_t body_size = 0;
  /// Takes a 2xx answer's body; an error aborts the transfer and is what Send returns.
  std::function<Status(std::string_view piece)> body_sink;
  /// A body kept in memory longer than this is an error (a registry cannot
  /// make the client hold an unbounded answer).
  std::size_t max_body_bytes = std::size_t{64} << 20;
  /// Redirects followed by Send itself (never by libcurl): the Authorization
  /// header is dropped when the target's scheme, host or port differ.
  int max_redirects = 5;
  std::chrono::seconds connect_timeout{30};
  /// The transfer is abandoned when under 1 byte a second moves for this long.
  std::chrono::seconds stall_timeout{60};
  /// The whole exchange; 0 is no limit (a multi-GiB blob may take a while).
  std::chrono::seconds timeout{0};
  /// PEM file of the CAs a TLS peer is verified against (an agent's own
  /// self-signed certificate); empty: the system's CAs.
  std::string ca_file;
  /// PEM files of CAs trusted on top of the system's (a registry's
  /// certs.d folder), when `ca_file` is empty.
  std::vector<std::string> extra_ca_files;
};

/// Why the last Send of an HttpClient got no answer, for a caller that acts
/// on it: a registry client falls back to plain HTTP when a peer does not
/// speak TLS, and says where a CA goes when a certificate is not trusted.
enum class TransportFailure {
  kNone,          // it got an answer
  kNotTls,        // the TLS handshake failed: the peer speaks something else (plain HTTP)
  kUntrustedTls,  // the peer's certificate (or its name) did not verify
  kOther,         // no connection, a timeout, a cut transfer, ...
};

struct HttpResponse {
  long status = 0;
  HttpHeaders headers;  // of the final answer
  std::string body;     // empty when a body_sink took it
  std::string url;      // the URL that answered, after redirects
};

/// `text` percent-encoded for a URL's query (RFC 3986 unreserved characters kept).
std::string UrlEncode(std::string_view text);

/// A URL without its query and fragment: what errors and logs show, since a
/// query may carry a signature (pre-signed blob URLs) or upload state.
std::string RedactedUrl(std::string_view url);

/// A libcurl easy handle, owned: one connection cache reused by every
/// request sent through it (a registry push is hundreds of requests to one
/// host). TLS peers are verified against the system's CAs (or the request's
/// `ca_file`); only http and https are spoken. Not thread-safe: one
/// HttpClient per thread.
///
/// A transport failure (no connection, TLS, timeout) is an error (kIo);
/// any HTTP answer, 4xx and 5xx included, is a response.
class HttpClient {
 public:
  HttpClient();
  ~HttpClient();
  HttpClient(HttpClient&&) noexcept;
  HttpClient& operator=(HttpClient&&) noexcept;
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  Result<HttpResponse> Send(const HttpRequest& request);
  /// Why the last Send failed; kNone when it got an answer.
  TransportFailure last_failure() const;

 private:
  struct Handle;
  std::unique_ptr<Handle> handle_;
};

}  // namespace core
