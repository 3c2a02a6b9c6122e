#include "agents/http_listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <future>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/sha256.h"
#include "core/unique_fd.h"
#include "tests/raw_connection.h"
#include "tests/temp_dir.h"
#include "tests/tls_certificate.h"

namespace agents {
namespace {

/// A listener serving on a loopback port in its own thread; GET /echo/X
/// answers X, POST /digest the body's size and sha256, GET /peer the
/// client's address and port as the handler saw them, GET /empty 204, and
/// GET /stream a chunked "late" once release() was called.
class ServedListener {
 public:
  explicit ServedListener(std::unique_ptr<HttpListener> listener,
                          std::function<void(HttpListener&)> configure = {})
      : listener_(std::move(listener)) {
    if (configure) configure(*listener_);
    listener_->Get("/echo/(.*)", [](const httplib::Request& request, httplib::Response& response) {
      response.set_content(request.matches[1].str(), "text/plain");
    });
    listener_->Post("/digest", [](const httplib::Request& request, httplib::Response& response) {
      response.set_content(
          std::to_string(request.body.size()) + " " + core::Sha256Digest(request.body),
          "text/plain");
    });
    listener_->Get("/peer", [](const httplib::Request& request, httplib::Response& response) {
      response.set_content(request.remote_addr + ":" + std::to_string(request.remote_port),
                           "text/plain");
    });
    listener_->Get("/empty", [](const httplib::Request&, httplib::Response& response) {
      response.status = 204;
    });
    listener_->Get("/stream", [this](const httplib::Request&, httplib::Response& response) {
      response.set_chunked_content_provider("text/plain",
                                            [this](std::size_t, httplib::DataSink& sink) {
                                              released_.wait();
                                              sink.write("late", 4);
                                              sink.done();
                                              return true;
                                            });
    });
    port_ = listener_->bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { listener_->listen_after_bind(); });
    // Running before the test goes on: the tests of a running listener's
    // Stop see no Stop before it runs (its own test case).
    while (!listener_->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~ServedListener() {
    release();  // a test that failed early leaves no handler waiting
    Stop();
  }

  int port() const { return port_; }
  void release() {
    std::call_once(released_once_, [this] { release_.set_value(); });
  }
  void Stop() {
    if (!thread_.joinable()) return;
    listener_->Stop();
    thread_.join();
  }

 private:
  std::unique_ptr<HttpListener> listener_;
  std::promise<void> release_;
  std::shared_future<void> released_ = release_.get_future().share();
  std::once_flag released_once_;
  int port_ = 0;
  std::thread thread_;
};

/// A raw TCP connection to the port (tests::ConnectLoopback): what goes
/// over it is what the listener sent.
core::UniqueFd Connect(int port) {
  core::UniqueFd socket = tests::ConnectLoopback(port);
  REQUIRE(socket.valid());
  return socket;
}

void SendAll(int socket, const std::string& bytes) {
  REQUIRE(tests::SendAll(socket, bytes));
}

using tests::ReadAtEnd;
using tests::ReadUntil;

TEST_CASE("the listener answers pipelined requests on one connection in order", "[http_listener]") {
  // Many threads: a connection waits for its next request in its thread.
  // One: it is parked between requests, and taken up again.
  const std::size_t threads = GENERATE(std::size_t{64}, std::size_t{1});
  ServedListener served(std::make_unique<HttpListener>(threads));
  core::UniqueFd socket = Connect(served.port());
  SendAll(
      socket.get(),
      "GET /echo/first HTTP/1.1\r\nHost: x\r\n\r\nGET /echo/second HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string both = ReadUntil(socket.get(), "\r\n\r\nsecond", 1);
  // Their bodies, the last bytes of each response, in the order asked.
  auto first = both.find("\r\n\r\nfirst");
  auto second = both.find("\r\n\r\nsecond");
  CHECK(first != std::string::npos);
  CHECK(second != std::string::npos);
  CHECK(first < second);

  // A request that arrives in pieces is read whole.
  for (std::string piece : {"GET /echo/th", "ird HTTP/1.1\r\nHo", "st: x\r\n", "\r\n"}) {
    SendAll(socket.get(), piece);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::string third = ReadUntil(socket.get(), "third", 1);
  CHECK(third.starts_with("HTTP/1.1 200"));
  CHECK(third.ends_with("\r\n\r\nthird"));
}

TEST_CASE("a response head goes out with its body, at once for a stream, or at its end",
          "[http_listener]") {
  // Many threads: a connection waits for its next request in its thread.
  // One: it is parked between requests, and taken up again.
  const std::size_t threads = GENERATE(std::size_t{64}, std::size_t{1});
  ServedListener served(std::make_unique<HttpListener>(threads));
  core::UniqueFd socket = Connect(served.port());
  // Without a body, the head still goes out once the handler is done.
  SendAll(socket.get(), "HEAD /echo/abc HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string head = ReadUntil(socket.get(), "\r\n\r\n", 1);
  CHECK(head.starts_with("HTTP/1.1 200"));
  CHECK(head.find("Content-Length: 3") != std::string::npos);
  SendAll(socket.get(), "GET /empty HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(ReadUntil(socket.get(), "\r\n\r\n", 1).starts_with("HTTP/1.1 204"));

  // A chunked stream's head arrives while its handler still waits for
  // the first piece.
  SendAll(socket.get(), "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string stream_head = ReadUntil(socket.get(), "\r\n\r\n", 1);
  CHECK(stream_head.starts_with("HTTP/1.1 200"));
  CHECK(stream_head.find("Transfer-Encoding: chunked") != std::string::npos);
  served.release();
  std::string late = ReadUntil(socket.get(), "\r\n0\r\n\r\n", 1);
  CHECK(late.find("late") != std::string::npos);

  // 100 Continue goes out before the body it asks for is read.
  std::string body = "twelve bytes";
  SendAll(socket.get(),
          "POST /digest HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 12\r\n\r\n");
  CHECK(ReadUntil(socket.get(), "\r\n\r\n", 1).starts_with("HTTP/1.1 100 Continue"));
  SendAll(socket.get(), body);
  std::string digest = "12 " + core::Sha256Digest(body);
  CHECK(ReadUntil(socket.get(), digest, 1).ends_with("\r\n\r\n" + digest));
}

TEST_CASE("the listener reads a request body larger than its buffer whole", "[http_listener]") {
  // Many threads: a connection waits for its next request in its thread.
  // One: it is parked between requests, and taken up again.
  const std::size_t threads = GENERATE(std::size_t{64}, std::size_t{1});
  ServedListener served(std::make_unique<HttpListener>(threads));
  std::string body(3 << 20, '\0');
  for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>(i * 7 + i / 4096);
  httplib::Client client("127.0.0.1", served.port());
  auto answer = client.Post("/digest", body, "application/octet-stream");
  REQUIRE(answer);
  CHECK(answer->status == 200);
  CHECK(answer->body == std::to_string(body.size()) + " " + core::Sha256Digest(body));
}

TEST_CASE("the listener tells a handler the client's address and port", "[http_listener]") {
  // Many threads: a connection waits for its next request in its thread.
  // One: it is parked between requests, and taken up again.
  const std::size_t threads = GENERATE(std::size_t{64}, std::size_t{1});
  ServedListener served(std::make_unique<HttpListener>(threads));
  core::UniqueFd socket = Connect(served.port());
  sockaddr_in own{};
  socklen_t length = sizeof own;
  REQUIRE(getsockname(socket.get(), reinterpret_cast<sockaddr*>(&own), &length) == 0);
  // Asked twice on one connection: the address is looked up once and kept.
  SendAll(socket.get(),
          "GET /peer HTTP/1.1\r\nHost: x\r\n\r\nGET /peer HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string expected = "127.0.0.1:" + std::to_string(ntohs(own.sin_port));
  std::string answers = ReadUntil(socket.get(), expected, 2);
  auto first = answers.find(expected);
  REQUIRE(first != std::string::npos);
  CHECK(answers.find(expected, first + 1) != std::string::npos);
}

TEST_CASE("the listener closes a connection after its keep-alive count of requests",
          "[http_listener]") {
  // Many threads: a connection waits for its next request in its thread.
  // One: it is parked between requests, and taken up again.
  const std::size_t threads = GENERATE(std::size_t{64}, std::size_t{1});
  ServedListener served(std::make_unique<HttpListener>(threads),
                        [](HttpListener& listener) { listener.set_keep_alive_max_count(2); });
  core::UniqueFd socket = Connect(served.port());
  SendAll(socket.get(), "GET /echo/a HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string first = ReadUntil(socket.get(), "\r\n\r\na", 1);
  CHECK(first.find("Connection: close") == std::string::npos);
  SendAll(socket.get(), "GET /echo/b HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string second = ReadUntil(socket.get(), "\r\n\r\nb", 1);
  CHECK(second.find("Connection: close") != std::string::npos);
  CHECK(ReadAtEnd(socket.get()) == 0);
}

TEST_CASE("an interceptor serves the requests it takes on the connection, httplib the others",
          "[http_listener]") {
  // It takes /mine/…: its body (a Content-Length's worth) read from the
  // stream, answered with the head it was given; /mine/last says "last"
  // when the keep-alive count allows no other, and /mine/end ends the
  // connection.
  const std::size_t threads = GENERATE(std::size_t{64}, std::size_t{1});
  std::vector<std::string> heads;
  std::mutex mutex;
  auto intercept = [&](std::string_view head, httplib::Stream& stream,
                       bool last) -> std::optional<HttpListener::Answered> {
    if (!head.starts_with("GET /mine/") && !head.starts_with("POST /mine/")) return std::nullopt;
    {
      std::lock_guard lock(mutex);
      heads.emplace_back(head);
    }
    std::string body;
    if (std::size_t at = head.find("Content-Length: "); at != std::string_view::npos) {
      body.resize(std::stoul(std::string(head.substr(at + 16))));
      for (std::size_t read = 0; read < body.size();) {
        ssize_t count = stream.read(body.data() + read, body.size() - read);
        if (count <= 0) return HttpListener::Answered::kAbort;
        read += static_cast<std::size_t>(count);
      }
    }
    std::string answer = "mine:" + body + (last ? ":last" : "");
    std::string response =
        "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(answer.size()) + "\r\n\r\n" + answer;
    stream.write(response.data(), response.size());
    return head.starts_with("GET /mine/end") ? HttpListener::Answered::kClose
                                             : HttpListener::Answered::kKeep;
  };
  ServedListener served(std::make_unique<HttpListener>(threads), [&](HttpListener& listener) {
    listener.SetInterceptor(intercept);
    listener.set_keep_alive_max_count(4);
  });
  core::UniqueFd socket = Connect(served.port());
  // Pipelined, the interceptor's and httplib's in turn, each body read by
  // whoever serves it.
  SendAll(socket.get(),
          "POST /mine/a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
          "GET /echo/theirs HTTP/1.1\r\nHost: x\r\n\r\n"
          "POST /digest HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz"
          "GET /mine/last HTTP/1.1\r\n\r\n");
  std::string answers = ReadUntil(socket.get(), "mine::last");
  INFO(answers);
  std::size_t mine = answers.find("\r\n\r\nmine:abc");
  std::size_t theirs = answers.find("\r\n\r\ntheirs");
  std::size_t digest = answers.find("\r\n\r\n3 " + core::Sha256Digest("xyz"));
  std::size_t last = answers.find("\r\n\r\nmine::last");
  CHECK(mine != std::string::npos);
  CHECK(theirs > mine);
  CHECK(digest > theirs);
  CHECK(last > digest);
  CHECK(ReadAtEnd(socket.get()) == 0);  // the count of 4 is spent
  {
    std::lock_guard lock(mutex);
    REQUIRE(heads.size() == 2);
    CHECK(heads[0] == "POST /mine/a HTTP/1.1\r\nContent-Length: 3\r\n\r\n");
  }

  // Its kClose ends the connection.
  core::UniqueFd ended = Connect(served.port());
  SendAll(ended.get(), "GET /mine/end HTTP/1.1\r\n\r\n");
  CHECK(ReadUntil(ended.get(), "mine:").ends_with("\r\n\r\nmine:"));
  CHECK(ReadAtEnd(ended.get()) == 0);

  // A head longer than it is offered goes to httplib.
  core::UniqueFd long_head = Connect(served.port());
  const std::string filler(6 << 10, 'x');
  SendAll(long_head.get(), "GET /mine/long HTTP/1.1\r\nA: " + filler + "\r\nB: " + filler +
                               "\r\nC: " + filler + "\r\n\r\n");
  CHECK(ReadUntil(long_head.get(), "\r\n\r\n").starts_with("HTTP/1.1 404"));
  std::lock_guard lock(mutex);
  CHECK(heads.size() == 3);  // /mine/end's, and not the long one's
}

/// A connection whose sends fail after 10 s of waiting (EAGAIN), so that a
/// listener that stops reading without closing fails a test, not hangs it.
core::UniqueFd ConnectWithSendLimit(int port) {
  core::UniqueFd socket = Connect(port);
  const timeval limit{.tv_sec = 10, .tv_usec = 0};
  setsockopt(socket.get(), SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  return socket;
}

/// Sends `piece` on `socket` (ConnectWithSendLimit's) again and again
/// without pause until a send fails: its errno, or 0 after 60 s of sends
/// that all went.
int SendUntilFailed(int socket, const std::string& piece) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    if (send(socket, piece.data(), piece.size(), MSG_NOSIGNAL) < 0 && errno != EINTR) return errno;
  }
  return 0;
}

/// An interceptor's answer to POST /refuse: a 413 "refused" before the body
/// is read, and a lingering close (the body is the client's to stop
/// sending); nullopt for any other request.
std::optional<HttpListener::Interception> Refuse(std::string_view head, httplib::Stream& stream) {
  if (!head.starts_with("POST /refuse")) return std::nullopt;
  const std::string answer =
      "HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\nContent-Length: 7\r\n\r\n"
      "refused";
  stream.write(answer.data(), answer.size());
  return HttpListener::Answered::kCloseUnread;
}

void RefuseUploads(HttpListener& listener) {
  listener.SetInterceptor(
      [](std::string_view head, httplib::Stream& stream, bool) { return Refuse(head, stream); });
}

TEST_CASE("a connection answered before its body was read lingers without holding a thread",
          "[http_listener]") {
  // One thread: while the refused upload's connection lingers, the next
  // connection is served all the same.
  ServedListener served(std::make_unique<HttpListener>(1), RefuseUploads);
  core::UniqueFd upload = ConnectWithSendLimit(served.port());
  const std::string piece(64 << 10, 'x');
  SendAll(upload.get(), "POST /refuse HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n" + piece);
  CHECK(ReadUntil(upload.get(), "refused").ends_with("\r\n\r\nrefused"));

  core::UniqueFd next = Connect(served.port());
  SendAll(next.get(), "GET /echo/served HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(ReadUntil(next.get(), "served").starts_with("HTTP/1.1 200"));
  // The upload goes on, more than the sockets' buffers hold: the listener
  // still reads and drops it (a listener that had closed the connection
  // would reset it), so the lingering had not ended when the next
  // connection was served.
  CHECK(tests::SendAll(upload.get(), std::string(16 << 20, 'x')));
  // It ends by itself after the linger time, however much its client
  // sends: here without pause, and 15 more refused uploads with it.
  std::vector<core::UniqueFd> uploads;
  uploads.push_back(std::move(upload));
  for (int i = 0; i < 15; ++i) {
    uploads.push_back(ConnectWithSendLimit(served.port()));
    SendAll(uploads.back().get(), "POST /refuse HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n");
    CHECK(ReadUntil(uploads.back().get(), "refused").ends_with("\r\n\r\nrefused"));
  }
  std::vector<std::future<int>> ends;
  for (const core::UniqueFd& socket : uploads) {
    ends.push_back(std::async(std::launch::async, [socket = socket.get(), &piece] {
      return SendUntilFailed(socket, piece);
    }));
  }
  for (auto& end : ends) {
    const int error = end.get();
    INFO(std::strerror(error));
    CHECK((error == ECONNRESET || error == EPIPE));
  }
}

/// An unfinished chunked response whose source is one end of a socket
/// pair: each Resume writes what the other end sent as a chunk, and its end
/// when that end closes. `resumed` counts the Resume calls, `timed_out`
/// those told the source sent nothing in time, `gone` the responses
/// destroyed.
class PairedResponse final : public HttpListener::Unfinished {
 public:
  struct Counts {
    std::atomic<int> resumed = 0, timed_out = 0, gone = 0;
  };

  PairedResponse(httplib::Stream& stream, core::UniqueFd source, std::chrono::milliseconds timeout,
                 Counts& counts)
      : stream_(stream), source_(std::move(source)), timeout_(timeout), counts_(counts) {
    Write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
  }
  ~PairedResponse() override { ++counts_.gone; }

  int source() const override { return source_.get(); }
  std::chrono::milliseconds timeout() const override { return timeout_; }
  std::optional<HttpListener::Answered> Resume(bool timed_out) override {
    ++counts_.resumed;
    if (timed_out) {
      ++counts_.timed_out;
      return HttpListener::Answered::kAbort;
    }
    while (true) {
      char buffer[256];
      ssize_t count = recv(source_.get(), buffer, sizeof buffer, MSG_DONTWAIT);
      if (count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return std::nullopt;
      if (count <= 0) {
        Write("0\r\n\r\n");
        return HttpListener::Answered::kKeep;
      }
      std::ostringstream chunk;
      chunk << std::hex << count << "\r\n" << std::string_view(buffer, count) << "\r\n";
      Write(chunk.str());
    }
  }

 private:
  void Write(const std::string& bytes) { stream_.write(bytes.data(), bytes.size()); }

  httplib::Stream& stream_;
  core::UniqueFd source_;
  std::chrono::milliseconds timeout_;
  Counts& counts_;
};

TEST_CASE("a response waiting for its source is parked beyond half the threads",
          "[http_listener]") {
  PairedResponse::Counts counts;
  std::mutex mutex;
  std::vector<core::UniqueFd> producers;  // the other ends, one a GET /wait/MS
  auto intercept = [&](std::string_view head, httplib::Stream& stream,
                       bool) -> std::optional<HttpListener::Interception> {
    if (head.starts_with("GET /now ")) {
      const std::string answer = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nnow";
      stream.write(answer.data(), answer.size());
      return HttpListener::Answered::kKeep;
    }
    if (!head.starts_with("GET /wait/")) return std::nullopt;
    int pair[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
    std::lock_guard lock(mutex);
    producers.emplace_back(pair[1]);
    return std::make_unique<PairedResponse>(
        stream, core::UniqueFd(pair[0]),
        std::chrono::milliseconds(std::stoi(std::string(head.substr(10)))), counts);
  };
  // Many threads: a response waits for its source in its thread. One: it
  // is parked, and a response that held the thread while it waits would
  // keep the second connection from being served (until the 30 s read
  // limit fails the test).
  const std::size_t threads = GENERATE(std::size_t{64}, std::size_t{1});
  ServedListener served(std::make_unique<HttpListener>(threads),
                        [&](HttpListener& listener) { listener.SetInterceptor(intercept); });
  core::UniqueFd waiting = Connect(served.port());
  SendAll(waiting.get(), "GET /wait/60000 HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(ReadUntil(waiting.get(), "\r\n\r\n").starts_with("HTTP/1.1 200"));

  core::UniqueFd other = Connect(served.port());
  SendAll(other.get(), "GET /now HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(ReadUntil(other.get(), "\r\n\r\nnow").starts_with("HTTP/1.1 200"));

  // Its source's bytes go on with it, a piece at a time; its source's end
  // ends it, and its connection serves the next request.
  int producer = -1;
  {
    std::lock_guard lock(mutex);
    REQUIRE(producers.size() == 1);
    producer = producers[0].get();
  }
  const int resumed_before = counts.resumed;
  REQUIRE(tests::SendAll(producer, "hello"));
  CHECK(ReadUntil(waiting.get(), "5\r\nhello\r\n") == "5\r\nhello\r\n");
  CHECK(counts.resumed > resumed_before);
  REQUIRE(tests::SendAll(producer, "world"));
  CHECK(ReadUntil(waiting.get(), "5\r\nworld\r\n") == "5\r\nworld\r\n");
  {
    std::lock_guard lock(mutex);
    producers[0].Reset();
  }
  CHECK(ReadUntil(waiting.get(), "0\r\n\r\n") == "0\r\n\r\n");
  SendAll(waiting.get(), "GET /now HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(ReadUntil(waiting.get(), "\r\n\r\nnow").starts_with("HTTP/1.1 200"));
  CHECK(counts.gone == 1);  // before the next request was read
  CHECK(counts.timed_out == 0);

  // One whose source sends nothing for its timeout is resumed to end, and
  // cut short.
  core::UniqueFd silent = Connect(served.port());
  SendAll(silent.get(), "GET /wait/300 HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(ReadUntil(silent.get(), "\r\n\r\n").starts_with("HTTP/1.1 200"));
  CHECK(ReadAtEnd(silent.get()) == 0);
  CHECK(counts.timed_out == 1);
  CHECK(counts.gone == 2);

  // Its client's end cuts it short too, before its source sends a byte.
  core::UniqueFd hanging_up = Connect(served.port());
  SendAll(hanging_up.get(), "GET /wait/60000 HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(ReadUntil(hanging_up.get(), "\r\n\r\n").starts_with("HTTP/1.1 200"));
  hanging_up.Reset();
  const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (counts.gone < 3 && std::chrono::steady_clock::now() < limit) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CHECK(counts.gone == 3);
  CHECK(counts.timed_out == 1);

  // Stop cuts short one that still waits, in a thread or parked.
  core::UniqueFd stopped = Connect(served.port());
  SendAll(stopped.get(), "GET /wait/60000 HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(ReadUntil(stopped.get(), "\r\n\r\n").starts_with("HTTP/1.1 200"));
  served.Stop();
  CHECK(ReadAtEnd(stopped.get()) == 0);
  CHECK(counts.gone == 4);
  CHECK(counts.timed_out == 1);
}

TEST_CASE("the listener closes a connection idle for its keep-alive timeout", "[http_listener]") {
  // Many threads: a connection waits for its next request in its thread.
  // One: it is parked between requests, and taken up again.
  const std::size_t threads = GENERATE(std::size_t{64}, std::size_t{1});
  ServedListener served(std::make_unique<HttpListener>(threads),
                        [](HttpListener& listener) { listener.set_keep_alive_timeout(1); });
  core::UniqueFd idle = Connect(served.port());
  CHECK(ReadAtEnd(idle.get()) == 0);
  core::UniqueFd after_one = Connect(served.port());
  SendAll(after_one.get(), "GET /echo/a HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(ReadUntil(after_one.get(), "\r\n\r\na", 1).starts_with("HTTP/1.1 200"));
  CHECK(ReadAtEnd(after_one.get()) == 0);
}

TEST_CASE("Stop ends the connections that wait for their next request", "[http_listener]") {
  // Kept alive for an hour: only Stop can end them within the test.
  // Many threads: a connection waits for its next request in its thread.
  // One: it is parked between requests, and taken up again.
  const std::size_t threads = GENERATE(std::size_t{64}, std::size_t{1});
  ServedListener served(std::make_unique<HttpListener>(threads),
                        [](HttpListener& listener) { listener.set_keep_alive_timeout(3600); });
  core::UniqueFd never_asked = Connect(served.port());
  core::UniqueFd asked_once = Connect(served.port());
  SendAll(asked_once.get(), "GET /echo/a HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(ReadUntil(asked_once.get(), "\r\n\r\na", 1).starts_with("HTTP/1.1 200"));
  served.Stop();  // returns once the listener's loop and its connections are done
  CHECK(ReadAtEnd(never_asked.get()) == 0);
  CHECK(ReadAtEnd(asked_once.get()) == 0);
}

TEST_CASE("a listener keeps more connections open than it has threads", "[http_listener]") {
  // Two threads: one connection waits in a thread, the others are parked.
  // Kept alive for an hour: a connection that held its thread would keep
  // the rest from being served (until the 30 s read limit fails the test).
  ServedListener served(std::make_unique<HttpListener>(2),
                        [](HttpListener& listener) { listener.set_keep_alive_timeout(3600); });
  std::vector<core::UniqueFd> sockets;
  for (int i = 0; i < 8; ++i) sockets.push_back(Connect(served.port()));
  for (int round = 0; round < 2; ++round) {
    for (std::size_t i = 0; i < sockets.size(); ++i) {
      std::string word = "c" + std::to_string(i) + "r" + std::to_string(round);
      SendAll(sockets[i].get(), "GET /echo/" + word + " HTTP/1.1\r\nHost: x\r\n\r\n");
      std::string answer = ReadUntil(sockets[i].get(), "\r\n\r\n" + word, 1);
      INFO("connection " << i << ", round " << round);
      CHECK(answer.starts_with("HTTP/1.1 200"));
      CHECK(answer.ends_with("\r\n\r\n" + word));
    }
  }
  served.Stop();
  for (auto& socket : sockets) CHECK(ReadAtEnd(socket.get()) == 0);
}

TEST_CASE("a listener stopped before it runs returns from listen at once", "[http_listener]") {
  HttpListener listener(64);
  REQUIRE(listener.bind_to_any_port("127.0.0.1") > 0);
  listener.Stop();
  auto listened = std::async(std::launch::async, [&] { return listener.listen_after_bind(); });
  bool returned = listened.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
  CHECK(returned);
  if (!returned) {
    // httplib's own stop() ends a listener that runs.
    while (!listener.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    listener.stop();
  }
  listened.wait();
}

TEST_CASE("the listener serves HTTPS with its certificate and refuses one it cannot load",
          "[http_listener]") {
  tests::TempDir dir("gantry-http-listener-test");
  auto cert = dir.path() / "cert.pem";
  auto key = dir.path() / "key.pem";
  auto made = tests::MakeLoopbackCertificate(cert, key);
  INFO((made.ok() ? "" : made.error().message));
  REQUIRE(made.ok());

  CHECK_FALSE(HttpListener(1, dir.path() / "missing.pem", key).is_valid());
  CHECK_FALSE(HttpListener(1, key, key).is_valid());  // a key is no certificate
  const std::size_t threads = GENERATE(std::size_t{64}, std::size_t{1});
  auto listener = std::make_unique<HttpListener>(threads, cert, key);
  REQUIRE(listener->is_valid());
  // GET /later: a response that waits 100 ms for its source (parked with
  // one thread), resumed on the TLS session by whichever thread takes it.
  PairedResponse::Counts counts;
  std::vector<std::thread> sources;
  ServedListener served(std::move(listener), [&](HttpListener& listening) {
    listening.SetInterceptor([&](std::string_view head, httplib::Stream& stream,
                                 bool) -> std::optional<HttpListener::Interception> {
      if (!head.starts_with("GET /later ")) return Refuse(head, stream);
      int pair[2];
      REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
      sources.emplace_back([source = core::UniqueFd(pair[1])] {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        tests::SendAll(source.get(), "late");
      });
      return std::make_unique<PairedResponse>(stream, core::UniqueFd(pair[0]),
                                              std::chrono::seconds(10), counts);
    });
  });

  httplib::SSLClient client("127.0.0.1", served.port());
  client.set_ca_cert_path(cert.c_str());
  client.enable_server_certificate_verification(true);
  client.set_keep_alive(true);
  for (std::string word : {"one", "two"}) {
    auto answer = client.Get("/echo/" + word);
    REQUIRE(answer);
    CHECK(answer->status == 200);
    CHECK(answer->body == word);
  }
  std::string body(1 << 20, 'z');
  auto digest = client.Post("/digest", body, "application/octet-stream");
  REQUIRE(digest);
  CHECK(digest->body == std::to_string(body.size()) + " " + core::Sha256Digest(body));
  auto later = client.Get("/later");
  for (std::thread& source : sources) source.join();
  REQUIRE(later);
  CHECK(later->status == 200);
  CHECK(later->body == "late");
  CHECK(counts.resumed >= 2);  // once at first, once when "late" came
  // An upload answered before it was read: the client sends it whole, then
  // reads the answer, which the lingering close kept from a reset.
  auto refused = client.Post("/refuse", std::string(8 << 20, 'z'), "application/octet-stream");
  REQUIRE(refused);
  CHECK(refused->status == 413);
  CHECK(refused->body == "refused");

  // Cleartext on the TLS port gets no HTTP answer.
  core::UniqueFd plain = Connect(served.port());
  SendAll(plain.get(), "GET /echo/a HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(ReadUntil(plain.get(), "HTTP/1.1", 1).find("HTTP/1.1") == std::string::npos);
}

}  // namespace
}  // namespace agents
