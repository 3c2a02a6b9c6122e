#include "agents/http_listener.h"

#include <netdb.h>
#include <openssl/err.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>

namespace agents {
namespace {

/// A held head and a body up to this size go in one TLS record.
constexpr size_t kJoinedTlsBytes = 16 << 10;

struct TlsFree {
  void operator()(SSL* tls) const { SSL_free(tls); }
};

/// A socket timeout of httplib's setting. Zero is "do not wait" to httplib
/// but "wait for ever" to SO_RCVTIMEO: it becomes a microsecond.
timeval Timeval(time_t seconds, time_t microseconds) {
  if (seconds == 0 && microseconds == 0) microseconds = 1;
  return timeval{.tv_sec = seconds, .tv_usec = static_cast<suseconds_t>(microseconds)};
}

bool SameTimeval(const timeval& a, const timeval& b) {
  return a.tv_sec == b.tv_sec && a.tv_usec == b.tv_usec;
}

/// The numeric address and port of `socket`'s peer (`peer`) or its own end.
void SocketAddress(int socket, bool peer, std::string* ip, int* port) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  auto* raw = reinterpret_cast<sockaddr*>(&address);
  if ((peer ? getpeername(socket, raw, &length) : getsockname(socket, raw, &length)) != 0) return;
  std::array<char, NI_MAXHOST> host{};
  std::array<char, NI_MAXSERV> service{};
  if (getnameinfo(raw, length, host.data(), host.size(), service.data(), service.size(),
                  NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return;
  }
  *ip = host.data();
  *port = std::atoi(service.data());
}

/// OpenSSL writes with write(2): a client gone makes it raise SIGPIPE,
/// which would end the agent. Blocked in this thread, the write fails with
/// EPIPE instead (children start with no signal blocked: core::Subprocess).
void BlockPipeSignalInThisThread() {
  thread_local bool blocked = false;
  if (blocked) return;
  sigset_t pipe_signal;
  sigemptyset(&pipe_signal);
  sigaddset(&pipe_signal, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_signal, nullptr);
  blocked = true;
}

/// One accepted connection as httplib reads and writes it: buffered reads
/// (httplib reads a request's head a byte at a time) straight from the
/// socket or its TLS session, which wait as long as the socket's
/// SO_RCVTIMEO; writes that wait as long as its SO_SNDTIMEO. The peer's and
/// own addresses are looked up once, not for each request.
class ConnectionStream final : public httplib::Stream {
 public:
  ConnectionStream(int socket, SSL* tls, timeval read_timeout)
      : socket_(socket), tls_(tls), read_timeout_(read_timeout) {
    SocketAddress(socket, /*peer=*/true, &remote_ip_, &remote_port_);
    SocketAddress(socket, /*peer=*/false, &local_ip_, &local_port_);
  }

  /// Whether a read would find bytes now or within the read timeout.
  bool is_readable() const override {
    if (begin_ < end_ || (tls_ && SSL_pending(tls_) > 0)) return true;
    pollfd ready{socket_, POLLIN, 0};
    int timeout_ms = static_cast<int>(read_timeout_.tv_sec * 1000 + read_timeout_.tv_usec / 1000);
    return poll(&ready, 1, timeout_ms) > 0;
  }
  /// Whether no write has failed yet. httplib asks before each piece of a
  /// response; the write itself waits for room, and is what finds a client
  /// that went away (its first write to a closed peer draws a reset).
  bool is_writable() const override { return !write_failed_; }

  ssize_t read(char* into, size_t size) override {
    if (begin_ == end_) {
      // A large read goes straight to the caller's buffer.
      if (size >= buffer_.size()) return Receive(into, size);
      if (ssize_t received = Fill(); received <= 0) return received;
    }
    size_t count = std::min(size, end_ - begin_);
    std::memcpy(into, buffer_.data() + begin_, count);
    begin_ += count;
    return static_cast<ssize_t>(count);
  }

  ssize_t write(const char* data, size_t size) override {
    std::string_view bytes(data, size);
    if (awaiting_head_ && !IsInterimHead(bytes)) {
      awaiting_head_ = false;
      if (!IsChunkedHead(bytes)) {
        held_head_ = bytes;
        return static_cast<ssize_t>(size);
      }
    }
    bool sent = Send(held_head_, bytes);
    held_head_.clear();
    if (!sent) {
      write_failed_ = true;
      return -1;
    }
    return static_cast<ssize_t>(size);
  }

  /// Whether a read or a write failed (a timeout, a reset, a TLS error):
  /// the connection is not reused, and a TLS session gets no close_notify
  /// (OpenSSL forbids SSL_shutdown after such an error).
  bool failed() const { return read_failed_ || write_failed_; }

  /// The next write is a response's head: held until its body's first
  /// bytes (one send for both, as nginx's postpone_output does) unless it
  /// starts a chunked stream, whose client may act on the head alone.
  void ExpectResponse() { awaiting_head_ = true; }
  /// Sends a held head whose response ended without a body (HEAD, 204);
  /// false when that send failed. A response that failed before its first
  /// body bytes is not flushed: its client gets no head rather than a head
  /// whose body is cut short.
  bool Flush() {
    if (held_head_.empty()) return true;
    bool sent = Send(held_head_, {});
    held_head_.clear();
    if (!sent) write_failed_ = true;
    return sent;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = remote_ip_;
    port = remote_port_;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip = local_ip_;
    port = local_port_;
  }
  socket_t socket() const override { return socket_; }

  /// Waits up to `keep_alive` for the first bytes of the next request
  /// (none while a pipelined one is buffered already); false when the
  /// client closed, the wait ran out or Stop shut the reading end.
  bool WaitForRequest(timeval keep_alive) {
    if (begin_ < end_) return true;
    bool own_timeout = !SameTimeval(keep_alive, read_timeout_);
    if (own_timeout) setsockopt(socket_, SOL_SOCKET, SO_RCVTIMEO, &keep_alive, sizeof keep_alive);
    ssize_t received = Fill();
    if (own_timeout)
      setsockopt(socket_, SOL_SOCKET, SO_RCVTIMEO, &read_timeout_, sizeof read_timeout_);
    return received > 0;
  }

 private:
  /// Reads into the empty buffer: Receive's count.
  ssize_t Fill() {
    ssize_t received = Receive(buffer_.data(), buffer_.size());
    begin_ = 0;
    end_ = received > 0 ? static_cast<size_t>(received) : 0;
    return received;
  }

  /// One read from the socket or the TLS session: the count, 0 at the
  /// client's end, -1 on an error or the timeout.
  ssize_t Receive(char* into, size_t size) {
    if (!Flush()) return -1;
    if (tls_) {
      ERR_clear_error();
      int received = SSL_read(tls_, into, static_cast<int>(std::min<size_t>(size, 1 << 30)));
      if (received > 0) return received;
      if (SSL_get_error(tls_, received) == SSL_ERROR_ZERO_RETURN) return 0;
      read_failed_ = true;
      return -1;
    }
    ssize_t received;
    do {
      received = recv(socket_, into, size, 0);
    } while (received < 0 && errno == EINTR);
    if (received < 0) read_failed_ = true;
    return received;
  }

  static bool IsInterimHead(std::string_view bytes) {
    return bytes.starts_with("HTTP/1.1 1") || bytes.starts_with("HTTP/1.0 1");
  }
  static bool IsChunkedHead(std::string_view bytes) {
    return bytes.find("\r\nTransfer-Encoding: chunked\r\n") != std::string_view::npos;
  }

  /// Sends `first` then `second`, whole, as one write where it can; false
  /// on an error or the write timeout.
  bool Send(std::string_view first, std::string_view second) {
    if (tls_) {
      // One TLS record for both where the second is small; a large body
      // is not copied for it.
      std::string joined;
      if (!first.empty() && !second.empty() && second.size() <= kJoinedTlsBytes) {
        joined.reserve(first.size() + second.size());
        joined.append(first).append(second);
        first = joined;
        second = {};
      }
      for (std::string_view part : {first, second}) {
        while (!part.empty()) {
          int piece = static_cast<int>(std::min<size_t>(part.size(), 1 << 30));
          ERR_clear_error();
          if (SSL_write(tls_, part.data(), piece) <= 0) return false;
          part.remove_prefix(static_cast<size_t>(piece));
        }
      }
      return true;
    }
    while (!first.empty() || !second.empty()) {
      iovec parts[2] = {{const_cast<char*>(first.data()), first.size()},
                        {const_cast<char*>(second.data()), second.size()}};
      msghdr message{};
      message.msg_iov = first.empty() ? &parts[1] : parts;
      message.msg_iovlen = first.empty() ? 1 : 2;
      ssize_t sent = sendmsg(socket_, &message, MSG_NOSIGNAL);
      if (sent < 0 && errno == EINTR) continue;
      if (sent < 0) return false;
      size_t from_first = std::min(first.size(), static_cast<size_t>(sent));
      first.remove_prefix(from_first);
      second.remove_prefix(static_cast<size_t>(sent) - from_first);
    }
    return true;
  }

  const int socket_;
  SSL* const tls_;
  const timeval read_timeout_;
  std::string remote_ip_, local_ip_;
  int remote_port_ = 0, local_port_ = 0;
  std::array<char, 16 << 10> buffer_;
  size_t begin_ = 0, end_ = 0;  // what is buffered and not read yet
  bool read_failed_ = false;
  bool write_failed_ = false;
  bool awaiting_head_ = false;
  std::string held_head_;  // a response's head waiting for its body
};

}  // namespace

HttpListener::HttpListener() : wants_tls_(false) {}

HttpListener::HttpListener(const std::filesystem::path& cert, const std::filesystem::path& key)
    : wants_tls_(true), tls_context_(SSL_CTX_new(TLS_server_method())) {
  SSL_CTX* context = tls_context_.get();
  if (!context) return;
  SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
  SSL_CTX_set_options(context, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_use_certificate_chain_file(context, cert.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(context, key.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(context) != 1) {
    tls_context_.reset();
  }
}

HttpListener::~HttpListener() = default;

bool HttpListener::is_valid() const {
  return !wants_tls_ || tls_context_ != nullptr;
}

void HttpListener::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    // A connection asleep in its read wakes with nothing to read; one
    // serving a request finds its next read ended.
    for (int socket : connections_) shutdown(socket, SHUT_RD);
  }
  stop();
  // httplib's stop() acts on a listener that runs; one stopped before it
  // runs has its socket closed here, and listen_after_bind() then returns
  // at once.
  if (socket_t listening = svr_sock_.exchange(INVALID_SOCKET); listening != INVALID_SOCKET) {
    shutdown(listening, SHUT_RDWR);
    close(listening);
  }
}

bool HttpListener::process_and_close_socket(socket_t socket) {
  bool served = false;
  bool registered = false;
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) registered = connections_.insert(socket).second;
  }
  if (registered) {
    timeval read_timeout = Timeval(read_timeout_sec_, read_timeout_usec_);
    timeval write_timeout = Timeval(write_timeout_sec_, write_timeout_usec_);
    setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &read_timeout, sizeof read_timeout);
    setsockopt(socket, SOL_SOCKET, SO_SNDTIMEO, &write_timeout, sizeof write_timeout);
    if (!tls_context_) {
      served = ServeConnection(socket, nullptr);
    } else {
      BlockPipeSignalInThisThread();
      std::unique_ptr<SSL, TlsFree> tls(SSL_new(tls_context_.get()));
      ERR_clear_error();
      if (tls && SSL_set_fd(tls.get(), socket) == 1 && SSL_accept(tls.get()) == 1) {
        served = ServeConnection(socket, tls.get());
        // close_notify for a client that finished cleanly; none on a
        // connection that failed.
        if (served) SSL_shutdown(tls.get());
      }
      ERR_clear_error();  // what failed here is not the next handler's error
    }
    std::lock_guard lock(mutex_);
    connections_.erase(socket);
  }
  shutdown(socket, SHUT_RDWR);
  close(socket);
  return served;
}

bool HttpListener::ServeConnection(int socket, SSL* tls) {
  ConnectionStream stream(socket, tls, Timeval(read_timeout_sec_, read_timeout_usec_));
  const timeval keep_alive = Timeval(keep_alive_timeout_sec_, 0);
  bool served = false;
  for (size_t left = keep_alive_max_count_; left > 0 && svr_sock_ != INVALID_SOCKET; --left) {
    if (!stream.WaitForRequest(keep_alive)) break;
    bool client_closes = false;
    stream.ExpectResponse();
    // The last request the count allows is answered with Connection: close.
    // httplib does not check every write (a body's, say): a failed one
    // ends the connection here, not a request later.
    served = process_request(stream, left == 1, client_closes, nullptr) && stream.Flush() &&
             !stream.failed();
    if (!served || client_closes) break;
  }
  return served && !stream.failed();
}

}  // namespace agents
