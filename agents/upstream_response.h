#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"

namespace agents {

/// The status line and headers of an HTTP/1.x response, as the router reads
/// them from a web container before relaying the body.
struct UpstreamResponseHead {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // in order, names as sent
  std::size_t head_bytes = 0;                                // up to and including the blank line

  /// The first value of a header (names compared without case).
  std::optional<std::string> Find(std::string_view name) const;
  bool chunked() const;
  std::optional<std::uint64_t> content_length() const;
};

/// Reads a response head from the start of `bytes`: nullopt while the blank
/// line that ends it has not arrived, kParse when what came is not an
/// HTTP/1.x response head.
core::Result<std::optional<UpstreamResponseHead>> ParseResponseHead(std::string_view bytes);

/// Whether two header names are the same (compared without case).
bool HeaderNameIs(std::string_view name, std::string_view wanted);

/// Whether a header is hop-by-hop (RFC 9110 7.6.1): it is about one
/// connection and is not relayed (Connection, Keep-Alive, Proxy-*, TE,
/// Trailer, Transfer-Encoding, Upgrade).
bool IsHopByHopHeader(std::string_view name);

/// Decodes a body in chunked transfer coding (RFC 9112 7.1) as it arrives, so
/// that the router relays a streaming response chunk by chunk. Trailers are
/// read and dropped.
class ChunkedDecoder {
 public:
  /// Appends the data `input` completes to *out. kParse on a malformed chunk.
  core::Status Feed(std::string_view input, std::string* out);
  /// Whether the last chunk and the trailers have been read.
  bool done() const { return state_ == State::kDone; }

 private:
  enum class State { kSize, kData, kDataEnd, kTrailer, kDone };
  State state_ = State::kSize;
  std::string line_;  // a size or trailer line read so far
  std::uint64_t remaining_ = 0;
};

}  // namespace agents
