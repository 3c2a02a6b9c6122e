#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"

namespace agents {

/// HTTP/1.x messages as the router reads them: a client's request head,
/// a web container's response head, and chunked bodies either way.

/// Header fields in the order they came, names as sent.
using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

/// The first value of the header `name` (compared without case).
std::optional<std::string_view> FindHeader(const HttpHeaders& headers, std::string_view name);

/// The length of the head at the start of `bytes`, up to and including the
/// first empty line, which ends it (CRLF, or a bare LF as browsers and nginx
/// tolerate); npos while it has not come. `searched`: how many bytes at the
/// start an earlier call found no end in (a head read as it arrives is not
/// searched again from its start).
std::size_t HeadLength(std::string_view bytes, std::size_t searched = 0);

/// The request line and headers of a client's HTTP/1.x request.
struct RequestHead {
  std::string method;
  std::string target;     // as sent: "/apps/demo/site/x?y=1"
  int minor_version = 1;  // HTTP/1.0 or HTTP/1.1
  HttpHeaders headers;
  std::size_t head_bytes = 0;  // up to and including the blank line

  std::optional<std::string_view> Find(std::string_view name) const {
    return FindHeader(headers, name);
  }
  /// Whether the client's Connection header lists `token` (without case).
  bool ConnectionHas(std::string_view token) const;
  /// Whether the client keeps its connection for another request: HTTP/1.1
  /// unless it says `Connection: close`, HTTP/1.0 only with `keep-alive`.
  bool keep_alive() const;
  /// Whether the client waits for a 100 Continue before it sends the body
  /// (HTTP/1.1, `Expect: 100-continue`).
  bool expects_continue() const;
};

/// How a request's body is delimited (RFC 9112 6): chunked, or a length
/// (0 without either header).
struct RequestBody {
  bool chunked = false;
  std::uint64_t length = 0;
};

/// Reads the request head at the start of `bytes` as a server must (RFC
/// 9112 2-5; one empty line before it is skipped): kParse when it is no
/// whole HTTP/1.x request head: no empty line ends it, a bad request line,
/// a header name that is not a token, a space before a colon, a folded line,
/// a control character in a value, more than one Host. Its length is the
/// caller's to bound (the listener offers heads of up to 16 KiB).
core::Result<RequestHead> ParseRequestHead(std::string_view bytes);

/// The body's framing: kParse when a server must refuse it (RFC 9112 6.3):
/// both Transfer-Encoding and Content-Length, a transfer coding other than
/// chunked or in HTTP/1.0, an empty one, Content-Length values that differ,
/// are empty or are not a number.
core::Result<RequestBody> RequestBodyOf(const RequestHead& head);

/// The status line and headers of an HTTP/1.x response, as the router reads
/// them from a web container before relaying the body.
struct UpstreamResponseHead {
  int status = 0;
  std::string reason;  // "OK"; may be empty
  HttpHeaders headers;
  std::size_t head_bytes = 0;  // up to and including the blank line

  /// The first value of a header (names compared without case).
  std::optional<std::string> Find(std::string_view name) const;
  bool chunked() const;
  std::optional<std::uint64_t> content_length() const;
};

/// Reads a response head from the start of `bytes`: nullopt while the blank
/// line that ends it has not arrived, kParse when what came is not an
/// HTTP/1.x response head (or one the router must not pass on: a header name
/// that is not a token, a control character in a value, over 64 KiB).
core::Result<std::optional<UpstreamResponseHead>> ParseResponseHead(std::string_view bytes);

/// The reason phrase of the statuses the router answers itself ("Not
/// Found"); "" for others.
std::string_view ReasonPhrase(int status);

/// Whether two header names are the same (compared without case).
bool HeaderNameIs(std::string_view name, std::string_view wanted);

/// Whether a header is hop-by-hop (RFC 9110 7.6.1): it is about one
/// connection and is not relayed (Connection, Keep-Alive, Proxy-*, TE,
/// Trailer, Transfer-Encoding, Upgrade).
bool IsHopByHopHeader(std::string_view name);

/// Decodes a body in chunked transfer coding (RFC 9112 7.1) as it arrives, so
/// that the router relays a streaming response chunk by chunk. Trailers (up
/// to 16 KiB) are read and dropped.
class ChunkedDecoder {
 public:
  /// Appends the data `input` completes to *out. kParse on a malformed chunk.
  core::Status Feed(std::string_view input, std::string* out);
  /// Whether the last chunk and the trailers have been read.
  bool done() const { return state_ == State::kDone; }
  /// The most bytes Feed takes without going past the body's end (and
  /// into what follows it on the connection): what is left of a chunk's
  /// data, else 1 (a size or trailer line, a byte at a time); 0 once done.
  std::uint64_t wanted() const;

 private:
  enum class State { kSize, kData, kDataEnd, kTrailer, kDone };
  State state_ = State::kSize;
  std::string line_;  // a size or trailer line read so far
  std::uint64_t remaining_ = 0;
  std::size_t trailer_bytes_ = 0;
};

}  // namespace agents
