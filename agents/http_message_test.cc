#include "agents/http_message.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

namespace agents {
namespace {

TEST_CASE("a response head is read once its blank line has come", "[http_message]") {
  auto partial = ParseResponseHead("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n");
  REQUIRE(partial.ok());
  CHECK_FALSE(partial->has_value());

  std::string bytes =
      "HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\ncontent-length: 5\r\n"
      "X-Two:  a  \r\nX-Two: b\r\n\r\nhello";
  auto parsed = ParseResponseHead(bytes);
  REQUIRE(parsed.ok());
  REQUIRE(parsed->has_value());
  const UpstreamResponseHead& head = **parsed;
  CHECK(head.status == 201);
  CHECK(head.head_bytes == bytes.size() - 5);
  CHECK(head.Find("CONTENT-TYPE") == "text/plain");
  CHECK(head.content_length() == 5u);
  CHECK_FALSE(head.chunked());
  CHECK(head.headers.size() == 4);
  CHECK(head.Find("x-two") == "a");
  CHECK(head.reason == "Created");
}

TEST_CASE("what is not an HTTP/1.x response head is refused", "[http_message]") {
  for (const char* bad :
       {"SSH-2.0-OpenSSH\r\n\r\n", "HTTP/1.1 2x0 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "HTTP/2 200\r\n\r\n",
        // Fields the router would pass on to its client.
        "HTTP/1.1 200 OK\r\nX-A: a\rSet-Cookie: b\r\n\r\n", "HTTP/1.1 200 OK\r\nX(A): a\r\n\r\n"}) {
    INFO(bad);
    auto parsed = ParseResponseHead(bad);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().code == core::ErrorCode::kParse);
  }
  CHECK_FALSE(ParseResponseHead(std::string(70 << 10, 'x')).ok());
}

TEST_CASE("a head ends at its first empty line, however its lines end", "[http_message]") {
  constexpr auto npos = std::string_view::npos;
  CHECK(HeadLength("GET / HTTP/1.1\r\nHost: a\r\n") == npos);
  CHECK(HeadLength("GET / HTTP/1.1\r\nHost: a\r\n\r\nbody") == 27);
  CHECK(HeadLength("GET / HTTP/1.1\nHost: a\n\nbody") == 24);
  // An LF line then a CRLF one, and the reverse.
  CHECK(HeadLength("GET / HTTP/1.1\nHost: a\n\r\nbody") == 25);
  CHECK(HeadLength("GET / HTTP/1.1\r\nHost: a\r\n\nbody") == 26);
  // Read as it arrives: each call searches on from where the last stopped,
  // an end split over two reads found all the same.
  const std::string head = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  for (std::size_t split = 1; split < head.size(); ++split) {
    INFO(split);
    std::string_view first(head.data(), split);
    REQUIRE(HeadLength(first) == npos);
    CHECK(HeadLength(head, split) == head.size());
  }
}

TEST_CASE("a request head is read as a server must, in order, up to its empty line",
          "[http_message]") {
  auto partial = ParseRequestHead("GET / HTTP/1.1\r\nHost: a\r\n");
  REQUIRE_FALSE(partial.ok());
  CHECK(partial.error().message == "the request's head: no empty line ends it");

  std::string bytes =
      "POST /apps/demo/site/x?y=1 HTTP/1.1\r\nHost: a\r\nX-Two:  a  \r\nx-two: b\r\n"
      "Content-Length: 5\r\n\r\nhello";
  auto parsed = ParseRequestHead(bytes);
  REQUIRE(parsed.ok());
  const RequestHead& head = *parsed;
  CHECK(head.method == "POST");
  CHECK(head.target == "/apps/demo/site/x?y=1");
  CHECK(head.minor_version == 1);
  CHECK(head.head_bytes == bytes.size() - 5);
  REQUIRE(head.headers.size() == 4);
  CHECK(head.headers[1] == std::pair<std::string, std::string>{"X-Two", "a"});
  CHECK(head.headers[2] == std::pair<std::string, std::string>{"x-two", "b"});
  CHECK(head.Find("HOST") == "a");
  auto body = RequestBodyOf(head);
  REQUIRE(body.ok());
  CHECK_FALSE(body->chunked);
  CHECK(body->length == 5);

  // A bare LF ends lines and the head too, as nginx allows.
  auto bare = ParseRequestHead("GET / HTTP/1.0\nHost: b\n\n");
  REQUIRE(bare.ok());
  CHECK(bare->minor_version == 0);
  CHECK(bare->Find("host") == "b");

  // One empty line before the request line is skipped, and counted.
  auto after_body = ParseRequestHead("\r\nGET /x HTTP/1.1\r\n\r\n");
  REQUIRE(after_body.ok());
  CHECK(after_body->target == "/x");
  CHECK(after_body->head_bytes == 21);

  CHECK(ParseRequestHead("POST / HTTP/1.1\r\nExpect: 100-Continue\r\n\r\n")->expects_continue());
  CHECK_FALSE(
      ParseRequestHead("POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n")->expects_continue());
  CHECK_FALSE(ParseRequestHead("POST / HTTP/1.1\r\n\r\n")->expects_continue());
}

TEST_CASE("a request head a server must not take is refused with what is wrong", "[http_message]") {
  struct Bad {
    std::string head, message;
  };
  for (const Bad& bad : std::vector<Bad>{
           {"GET /\r\n\r\n", "a bad request line"},
           {"GET  HTTP/1.1\r\n\r\n", "a bad request line"},
           {"G(T / HTTP/1.1\r\n\r\n", "a bad request line"},
           {"GET /a b HTTP/1.1\r\n\r\n", "a bad request line"},
           {"PRI * HTTP/2.0\r\n\r\n", "not HTTP/1.0 or HTTP/1.1"},
           {"GET / HTTP/1.1\r\nHost : a\r\n\r\n", "a header with a bad name"},
           {"GET / HTTP/1.1\r\nX-A: 1\r\n 2\r\n\r\n", "a folded header line"},
           {"GET / HTTP/1.1\r\nX-A: a\x01z\r\n\r\n", "a control character in its value"},
           {"GET / HTTP/1.1\r\nno colon\r\n\r\n", "a header without a name"},
           {"GET / HTTP/1.1\r\n: a\r\n\r\n", "a header without a name"},
           {"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", "more than one Host"},
       }) {
    INFO(bad.head);
    auto parsed = ParseRequestHead(bad.head);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().code == core::ErrorCode::kParse);
    CHECK(parsed.error().message.find("the request's head: ") == 0);
    CHECK(parsed.error().message.find(bad.message) != std::string::npos);
  }
}

TEST_CASE("a request's body framing and keep-alive follow RFC 9112", "[http_message]") {
  auto head = [](const std::string& text) {
    auto parsed = ParseRequestHead(text + "\r\n");
    REQUIRE(parsed.ok());
    return *parsed;
  };
  CHECK(RequestBodyOf(head("GET / HTTP/1.1\r\n"))->length == 0);
  CHECK(RequestBodyOf(head("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n"))->chunked);
  CHECK(RequestBodyOf(head("POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n"))->length == 3);
  for (const std::string bad : {
           "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n",
           "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n",
           "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n",
           "POST / HTTP/1.1\r\nContent-Length: -3\r\n",
           "POST / HTTP/1.1\r\nContent-Length: 3x\r\n",
           "POST / HTTP/1.1\r\nContent-Length: \r\n",
           "POST / HTTP/1.1\r\nTransfer-Encoding: \r\n",
           "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n",
       }) {
    INFO(bad);
    auto body = RequestBodyOf(head(bad));
    REQUIRE_FALSE(body.ok());
    CHECK(body.error().code == core::ErrorCode::kParse);
  }

  CHECK(head("GET / HTTP/1.1\r\n").keep_alive());
  CHECK_FALSE(head("GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\n").keep_alive());
  CHECK_FALSE(head("GET / HTTP/1.0\r\n").keep_alive());
  CHECK(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n").keep_alive());
  CHECK(head("GET / HTTP/1.1\r\nConnection: close\r\nConnection: x-mine\r\n")
            .ConnectionHas("X-Mine"));
}

TEST_CASE("hop-by-hop headers are known without case", "[http_message]") {
  CHECK(IsHopByHopHeader("connection"));
  CHECK(IsHopByHopHeader("Transfer-Encoding"));
  CHECK_FALSE(IsHopByHopHeader("Content-Type"));
}

TEST_CASE("a chunked body is decoded however it is split", "[http_message]") {
  const std::string body = "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: x\r\n\r\n";
  for (std::size_t step : {1, 2, 3, 7, 100}) {
    INFO(step);
    ChunkedDecoder decoder;
    std::string out;
    for (std::size_t at = 0; at < body.size(); at += step) {
      REQUIRE(decoder.Feed(std::string_view(body).substr(at, step), &out).ok());
    }
    CHECK(out == "hello, world");
    CHECK(decoder.done());
  }
  ChunkedDecoder bad;
  std::string out;
  CHECK_FALSE(bad.Feed("zz\r\n", &out).ok());
  ChunkedDecoder overlong;
  CHECK_FALSE(overlong.Feed("2\r\nabc\r\n", &out).ok());
  // Trailers without end: refused past 16 KiB, line by line under 4 KiB.
  ChunkedDecoder trailers;
  std::string trailer_lines = "0\r\n";
  for (int i = 0; i < 20; ++i) trailer_lines += "T: " + std::string(1000, 'x') + "\r\n";
  auto fed = trailers.Feed(trailer_lines, &out);
  REQUIRE_FALSE(fed.ok());
  CHECK(fed.error().message == "a chunked body: trailers past 16 KiB");
}

TEST_CASE("a chunked body fed as much as the decoder wants ends where the body does",
          "[http_message]") {
  // What follows the body on a kept-alive connection: the next request.
  const std::string bytes = "5\r\nhello\r\n3;x=1\r\n, w\r\n0\r\nT: x\r\n\r\nGET / HTTP/1.1\r\n";
  ChunkedDecoder decoder;
  std::string out;
  std::size_t at = 0;
  while (!decoder.done()) {
    std::uint64_t wanted = decoder.wanted();
    REQUIRE(wanted > 0);
    // A reader is given at most what is wanted, and often less.
    std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(wanted, 2));
    REQUIRE(at + take <= bytes.size());
    REQUIRE(decoder.Feed(std::string_view(bytes).substr(at, take), &out).ok());
    at += take;
  }
  CHECK(out == "hello, w");
  CHECK(decoder.wanted() == 0);
  CHECK(bytes.substr(at) == "GET / HTTP/1.1\r\n");
}

}  // namespace
}  // namespace agents
