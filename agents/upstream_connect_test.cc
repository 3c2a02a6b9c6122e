#include "agents/upstream_connect.h"

#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/unique_fd.h"

namespace agents {
namespace {

using namespace std::chrono_literals;

core::UniqueFd NonBlockingSocket() {
  return core::UniqueFd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
}

sockaddr_in Loopback(std::uint16_t port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

/// A server on 127.0.0.1 that listens with a backlog of `backlog` and never accepts.
struct Listener {
  explicit Listener(int backlog) : fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in address = Loopback(0);
    REQUIRE(bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(listen(fd.get(), backlog) == 0);
    socklen_t length = sizeof address;
    REQUIRE(getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length) == 0);
    port = ntohs(address.sin_port);
  }
  core::UniqueFd fd;
  std::uint16_t port = 0;
};

TEST_CASE("an upstream connect is made, refused with the reason, or given up on in time",
          "[upstream_connect]") {
  Listener server(8);
  core::UniqueFd made = NonBlockingSocket();
  CHECK(ConnectUpstream(made.get(), Loopback(server.port), 1s, -1).ok());
  CHECK(send(made.get(), "x", 1, MSG_NOSIGNAL) == 1);

  // A port nobody listens on: the listener's own, once closed.
  const std::uint16_t closed_port = server.port;
  server.fd.Reset();
  core::UniqueFd refused = NonBlockingSocket();
  auto refusal = ConnectUpstream(refused.get(), Loopback(closed_port), 1s, -1);
  REQUIRE_FALSE(refusal.ok());
  CHECK(refusal.error().code == core::ErrorCode::kIo);
  CHECK(refusal.error().message ==
        "cannot connect to port " + std::to_string(closed_port) + ": Connection refused");
}

TEST_CASE("a connect to a full accept queue waits, and ends when its client goes",
          "[upstream_connect]") {
  // Backlog 0: one connection waits to be accepted, the next one's SYN is dropped.
  Listener server(0);
  std::vector<core::UniqueFd> connected;
  std::optional<core::Error> waited;
  while (!waited && connected.size() < 8) {
    connected.push_back(NonBlockingSocket());
    auto attempt = ConnectUpstream(connected.back().get(), Loopback(server.port), 200ms, -1);
    if (!attempt) waited = attempt.error();
  }
  REQUIRE(waited);
  CHECK(waited->code == core::ErrorCode::kUnavailable);
  CHECK(waited->message ==
        "port " + std::to_string(server.port) + " took no connection within 200 ms");

  // The same wait for a client that has gone: given up on at once, not
  // after its timeout of an hour.
  int client[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, client) == 0);
  core::UniqueFd kept(client[0]);
  close(client[1]);
  core::UniqueFd abandoned = NonBlockingSocket();
  auto gone = ConnectUpstream(abandoned.get(), Loopback(server.port), 1h, kept.get());
  REQUIRE_FALSE(gone.ok());
  CHECK(gone.error().code == core::ErrorCode::kUnavailable);
  CHECK(gone.error().message ==
        "the client went while port " + std::to_string(server.port) + " was being connected to");
}

}  // namespace
}  // namespace agents
