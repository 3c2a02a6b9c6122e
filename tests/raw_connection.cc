#include "tests/raw_connection.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>

namespace tests {

core::UniqueFd ConnectLoopback(int port) {
  core::UniqueFd socket(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!socket.valid()) return socket;
  timeval limit{.tv_sec = 30, .tv_usec = 0};
  setsockopt(socket.get(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(socket.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    return core::UniqueFd();
  }
  return socket;
}

bool SendAll(int socket, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t sent = send(socket, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (sent <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(sent));
  }
  return true;
}

std::string ReadUntil(int socket, std::string_view text, int times) {
  std::string received;
  int found = 0;
  std::size_t searched = 0;  // where the next occurrence may start
  std::array<char, 4096> buffer;
  while (found < times) {
    ssize_t got = recv(socket, buffer.data(), buffer.size(), 0);
    if (got <= 0) break;
    received.append(buffer.data(), static_cast<std::size_t>(got));
    for (auto at = received.find(text, searched); at != std::string::npos && found < times;
         at = received.find(text, searched)) {
      ++found;
      searched = at + text.size();
    }
  }
  return received;
}

ssize_t ReadAtEnd(int socket, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  std::array<char, 4096> buffer;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd readable{socket, POLLIN, 0};
    if (left.count() <= 0 || poll(&readable, 1, static_cast<int>(left.count())) <= 0) return -1;
    ssize_t got = recv(socket, buffer.data(), buffer.size(), 0);
    if (got <= 0) return got;
  }
}

}  // namespace tests
