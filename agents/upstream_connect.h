#pragma once

#include <netinet/in.h>

#include <chrono>

#include "core/result.h"

namespace agents {

/// Connects the non-blocking TCP `socket` to `address` within `timeout`
/// (kUnavailable beyond it), giving up as soon as `client` (a socket, or -1
/// for none) closes its end (kUnavailable too): nginx's proxy gives up a
/// connect for a client that went as well. A connect waits when the
/// server's accept queue is full: its SYN is dropped, and sent again 1 s,
/// then 3 s later. A refusal or another failure is kIo, with the system's
/// reason.
core::Status ConnectUpstream(int socket, const sockaddr_in& address,
                             std::chrono::milliseconds timeout, int client);

}  // namespace agents
