#pragma once

// A plain TCP connection to a loopback port, for tests that must see what
// goes over one connection (pipelined requests, a kept-alive connection, its
// close), which an HTTP client would hide: httplib's reconnects silently.

#include <sys/types.h>

#include <chrono>
#include <string>
#include <string_view>

#include "core/unique_fd.h"

namespace tests {

/// A connection to 127.0.0.1:`port` whose reads give up after 30 s (a server
/// that never answers fails the test instead of hanging it); invalid when
/// the connect failed.
core::UniqueFd ConnectLoopback(int port);

/// Sends all of `bytes`; false when it could not.
bool SendAll(int socket, std::string_view bytes);

/// Reads until `text` has come `times` times or the connection ends (or the
/// 30 s limit); all that was read.
std::string ReadUntil(int socket, std::string_view text, int times = 1);

/// What a read on `socket` finds once the server is done with it, all that
/// came before skipped: 0 when the server closed it, -1 when `limit` (a
/// keep-alive timeout's wait, or less to see a connection ended at once)
/// ran out first.
ssize_t ReadAtEnd(int socket, std::chrono::milliseconds limit = std::chrono::seconds(30));

}  // namespace tests
