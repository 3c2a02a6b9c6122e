#include "agents/upstream_response.h"

#include <catch2/catch.hpp>

namespace agents {
namespace {

TEST_CASE("a response head is read once its blank line has come", "[upstream_response]") {
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
}

TEST_CASE("what is not an HTTP/1.x response head is refused", "[upstream_response]") {
  for (const char* bad : {"SSH-2.0-OpenSSH\r\n\r\n", "HTTP/1.1 2x0 OK\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "HTTP/2 200\r\n\r\n"}) {
    INFO(bad);
    auto parsed = ParseResponseHead(bad);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().code == core::ErrorCode::kParse);
  }
  CHECK_FALSE(ParseResponseHead(std::string(70 << 10, 'x')).ok());
}

TEST_CASE("hop-by-hop headers are known without case", "[upstream_response]") {
  CHECK(IsHopByHopHeader("connection"));
  CHECK(IsHopByHopHeader("Transfer-Encoding"));
  CHECK_FALSE(IsHopByHopHeader("Content-Type"));
}

TEST_CASE("a chunked body is decoded however it is split", "[upstream_response]") {
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
}

}  // namespace
}  // namespace agents
