#include "agents/upstream_connect.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

namespace agents {

core::Status ConnectUpstream(int socket, const sockaddr_in& address,
                             std::chrono::milliseconds timeout, int client) {
  const std::string port = std::to_string(ntohs(address.sin_port));
  auto failed = [&port](int error) {
    return core::Error{
        core::ErrorCode::kIo, "cannot connect to port " + port + ": " + std::strerror(error), {}};
  };
  if (connect(socket, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) {
    return core::Ok{};
  }
  if (errno != EINPROGRESS) return failed(errno);
  std::array<pollfd, 2> ready{pollfd{socket, POLLOUT, 0}, pollfd{client, POLLRDHUP, 0}};
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    int count = poll(ready.data(), client >= 0 ? 2 : 1,
                     static_cast<int>(std::max<std::int64_t>(left.count(), 0)));
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) return failed(errno);
    if (ready[1].revents != 0) {
      return core::Error{core::ErrorCode::kUnavailable,
                         "the client went while port " + port + " was being connected to",
                         {}};
    }
    // Writable alone is connected; with an error or a hang-up, SO_ERROR says which.
    if (ready[0].revents == POLLOUT) return core::Ok{};
    if (ready[0].revents != 0) break;
    if (left.count() <= 0) {
      return core::Error{
          core::ErrorCode::kUnavailable,
          "port " + port + " took no connection within " + std::to_string(timeout.count()) + " ms",
          {}};
    }
  }
  int error = 0;
  socklen_t length = sizeof error;
  if (getsockopt(socket, SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
  if (error != 0) return failed(error);
  return core::Ok{};
}

}  // namespace agents
