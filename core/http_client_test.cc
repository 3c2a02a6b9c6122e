#include "core/http_client.h"

#include <httplib.h>

#include <catch2/catch.hpp>
#include <thread>

#include "core/sha256.h"

namespace {

// A cpp-httplib server on 127.0.0.1 and a free port, running on its own
// thread while the object lives.
class TestServer {
 public:
  TestServer() {
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~TestServer() {
    server_.stop();
    thread_.join();
  }
  httplib::Server& server() { return server_; }
  int port() const { return port_; }
  std::string Url(const std::string& host, const std::string& path) const {
    return "http://" + host + ":" + std::to_string(port_) + path;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

}  // namespace

TEST_CASE("HttpClient sends a request and reads status, headers and body") {
  TestServer test;
  test.server().Get("/hello", [](const httplib::Request& request, httplib::Response& response) {
    response.set_header("X-Echo", request.get_header_value("X-Token"));
    response.set_content("hello", "text/plain");
  });
  test.server().Get("/missing", [](const httplib::Request&, httplib::Response& response) {
    response.status = 404;
    response.set_content(R"({"errors":[{"code":"NOT_FOUND"}]})", "application/json");
  });
  core::HttpClient client;
  core::HttpRequest request;
  request.url = test.Url("127.0.0.1", "/hello");
  request.headers.Add("X-Token", "abc");
  auto response = client.Send(request);
  REQUIRE(response.ok());
  CHECK(response->status == 200);
  CHECK(response->body == "hello");
  CHECK(response->headers.Get("x-echo") == "abc");  // names without case
  CHECK(response->headers.Get("Content-Type") == "text/plain");

  request.url = test.Url("127.0.0.1", "/missing");
  auto missing = client.Send(request);  // the same handle, reused
  REQUIRE(missing.ok());
  CHECK(missing->status == 404);
  CHECK(missing->body.find("NOT_FOUND") != std::string::npos);

  request.method = "HEAD";
  request.url = test.Url("127.0.0.1", "/hello");
  auto head = client.Send(request);
  REQUIRE(head.ok());
  CHECK(head->status == 200);
  CHECK(head->body.empty());
}

TEST_CASE("HttpClient uploads from memory and from a reader, and streams answers to a sink") {
  TestServer test;
  auto echo_digest = [](const httplib::Request& request, httplib::Response& response) {
    response.status = 201;
    response.set_header("X-Method", request.method);
    response.set_header("X-Length", request.get_header_value("Content-Length"));
    response.set_content(core::Sha256Digest(request.body), "text/plain");
  };
  test.server().Post("/upload", echo_digest);
  test.server().Put("/upload", echo_digest);
  test.server().Patch("/upload", echo_digest);
  std::string big(3 * 1024 * 1024 + 17, 'x');
  for (std::size_t i = 0; i < big.size(); i += 4099) big[i] = static_cast<char>('a' + i % 26);
  test.server().Get("/big", [&](const httplib::Request&, httplib::Response& response) {
    response.set_content(big, "application/octet-stream");
  });

  core::HttpClient client;
  core::HttpRequest post;
  post.method = "POST";
  post.url = test.Url("127.0.0.1", "/upload");
  auto empty = client.Send(post);
  REQUIRE(empty.ok());
  CHECK(empty->status == 201);
  CHECK(empty->headers.Get("X-Length") == "0");
  CHECK(empty->body == core::Sha256Digest(""));

  core::HttpRequest put;
  put.method = "PUT";
  put.url = post.url;
  put.body = "small body";
  auto put_response = client.Send(put);
  REQUIRE(put_response.ok());
  CHECK(put_response->headers.Get("X-Method") == "PUT");
  CHECK(put_response->body == core::Sha256Digest("small body"));

  core::HttpRequest patch;
  patch.method = "PATCH";
  patch.url = post.url;
  std::size_t offset = 0;
  patch.body_size = big.size();
  patch.body_reader = [&](char* buffer, std::size_t size) -> core::Result<std::size_t> {
    std::size_t length = std::min(size, big.size() - offset);
    std::memcpy(buffer, big.data() + offset, length);
    offset += length;
    return length;
  };
  auto patched = client.Send(patch);
  REQUIRE(patched.ok());
  CHECK(patched->headers.Get("X-Method") == "PATCH");
  CHECK(patched->headers.Get("X-Length") == std::to_string(big.size()));
  CHECK(patched->body == core::Sha256Digest(big));

  core::HttpRequest get;
  get.url = test.Url("127.0.0.1", "/big");
  core::Sha256 hasher;
  std::size_t pieces = 0, received = 0;
  get.body_sink = [&](std::string_view piece) -> core::Status {
    hasher.Update(piece);
    received += piece.size();
    ++pieces;
    return core::Ok{};
  };
  auto streamed = client.Send(get);
  REQUIRE(streamed.ok());
  CHECK(streamed->body.empty());
  CHECK(received == big.size());
  CHECK(pieces > 1);
  CHECK(hasher.Finish() == core::Sha256Digest(big));

  // A sink's error stops the transfer and is what Send returns.
  get.body_sink = [](std::string_view) -> core::Status {
    return core::Error{core::ErrorCode::kIo, "disk full", {}};
  };
  auto refused = client.Send(get);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().message == "disk full");

  // Kept in memory, an answer is bounded.
  get.body_sink = nullptr;
  get.max_body_bytes = 1024;
  auto bounded = client.Send(get);
  REQUIRE_FALSE(bounded.ok());
  CHECK(bounded.error().code == core::ErrorCode::kLimit);
}

TEST_CASE("HttpClient follows redirects itself, dropping Authorization on another host") {
  TestServer first, second;
  std::string seen_authorization = "(not called)";
  second.server().Get("/blob", [&](const httplib::Request& request, httplib::Response& response) {
    seen_authorization = request.get_header_value("Authorization");
    response.set_content("blob", "application/octet-stream");
  });
  first.server().Get("/blob", [&](const httplib::Request& request, httplib::Response& response) {
    seen_authorization = request.get_header_value("Authorization");
    response.set_content("blob", "application/octet-stream");
  });
  // "localhost" and "127.0.0.1" are different hosts to the client, even on one port.
  first.server().Get("/elsewhere", [&](const httplib::Request&, httplib::Response& response) {
    response.set_redirect(second.Url("localhost", "/blob?X-Signature=secret"), 307);
  });
  first.server().Get("/here", [&](const httplib::Request&, httplib::Response& response) {
    response.set_redirect("/blob", 302);
  });
  first.server().Get("/loop", [&](const httplib::Request&, httplib::Response& response) {
    response.set_redirect("/loop", 302);
  });

  core::HttpClient client;
  core::HttpRequest request;
  request.headers.Add("Authorization", "Bearer secret-token");
  request.url = first.Url("127.0.0.1", "/elsewhere");
  auto moved = client.Send(request);
  REQUIRE(moved.ok());
  CHECK(moved->status == 200);
  CHECK(moved->body == "blob");
  CHECK(seen_authorization.empty());
  CHECK(moved->url.find("localhost") != std::string::npos);

  request.url = first.Url("127.0.0.1", "/here");
  auto same = client.Send(request);
  REQUIRE(same.ok());
  CHECK(same->body == "blob");
  CHECK(seen_authorization == "Bearer secret-token");

  request.url = first.Url("127.0.0.1", "/loop");
  auto looped = client.Send(request);
  REQUIRE_FALSE(looped.ok());
  CHECK(looped.error().message.find("redirects") != std::string::npos);
}

TEST_CASE("HttpClient reports a refused connection as an I/O error without the query") {
  int port = 0;
  {
    TestServer closed;  // a port that was free a moment ago, and is closed again
    port = closed.port();
  }
  core::HttpClient client;
  core::HttpRequest request;
  request.url = "http://127.0.0.1:" + std::to_string(port) + "/v2/?token=secret";
  auto response = client.Send(request);
  REQUIRE_FALSE(response.ok());
  CHECK(response.error().code == core::ErrorCode::kIo);
  CHECK(response.error().message.find("GET http://127.0.0.1:") == 0);
  CHECK(response.error().message.find("secret") == std::string::npos);
}

TEST_CASE("HttpClient says why a request got no answer: a peer that speaks no TLS, or no peer") {
  TestServer test;
  test.server().Get("/v2/", [](const httplib::Request&, httplib::Response& response) {
    response.set_content("{}", "application/json");
  });
  core::HttpClient client;
  core::HttpRequest request;
  request.url = "https://127.0.0.1:" + std::to_string(test.port()) + "/v2/";
  request.connect_timeout = std::chrono::seconds(5);
  auto over_tls = client.Send(request);
  REQUIRE_FALSE(over_tls.ok());
  CHECK(client.last_failure() == core::TransportFailure::kNotTls);

  request.url = test.Url("127.0.0.1", "/v2/");
  auto plain = client.Send(request);
  REQUIRE(plain.ok());
  CHECK(client.last_failure() == core::TransportFailure::kNone);

  request.url = "http://127.0.0.1:1/v2/";  // nothing listens on port 1
  CHECK_FALSE(client.Send(request).ok());
  CHECK(client.last_failure() == core::TransportFailure::kOther);
}
