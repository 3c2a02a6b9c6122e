#include "agents/http_listener.h"

#include <netdb.h>
#include <openssl/err.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "agents/http_message.h"
#include "core/subprocess.h"

namespace agents {
namespace {

/// A held head and a body up to this size go in one TLS record.
constexpr size_t kJoinedTlsBytes = 16 << 10;

/// Seconds in a day: the longest a parked connection's watcher sleeps.
constexpr time_t kDay = 24 * 60 * 60;
/// The longest a connection ending before its request's body was read
/// waits for the client to stop sending (nginx's lingering_time is 30 s).
constexpr std::chrono::seconds kLingerTime{2};

struct TlsFree {
  void operator()(SSL* tls) const { SSL_free(tls); }
};

/// Drops what the client of `socket` has sent, without waiting or copying
/// it (MSG_TRUNC): false once it has closed its end (or the connection
/// failed), true while it may send more. A lingering close's read (see
/// End): closing with bytes unread would reset the connection, and the
/// client could lose its answer before it read it. At most 4 MiB a call, so
/// that a client sending without pause does not keep the watcher from the
/// others.
bool DropIncoming(int socket) {
  for (int reads = 0; reads < 4; ++reads) {
    ssize_t received = recv(socket, nullptr, 1 << 20, MSG_DONTWAIT | MSG_TRUNC);
    if (received > 0 || (received < 0 && errno == EINTR)) continue;
    return received < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
  return true;
}

/// Now plus `wait`, a wait past a century taken as a century: a function's
/// timeout may be as long as it likes, and steady_clock's nanoseconds end
/// at 292 years.
std::chrono::steady_clock::time_point DeadlineAfter(std::chrono::milliseconds wait) {
  constexpr std::chrono::milliseconds kCentury = std::chrono::hours(24 * 365 * 100);
  return std::chrono::steady_clock::now() +
         std::clamp(wait, std::chrono::milliseconds(0), kCentury);
}

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

  /// Whether bytes of a next request were read already (pipelined).
  bool Buffered() const {
    return begin_ < end_ || (tls_ && (SSL_pending(tls_) > 0 || SSL_has_pending(tls_) == 1));
  }

  /// The next request's head, whole, as far as the buffer holds it
  /// (reading more as needed): "" when it is longer, or the connection
  /// failed or ended first. Nothing is consumed.
  std::string_view PeekHead() {
    for (std::size_t searched = 0;;) {
      std::string_view buffered(buffer_.data() + begin_, end_ - begin_);
      if (std::size_t length = HeadLength(buffered, searched); length != std::string_view::npos)
        return buffered.substr(0, length);
      searched = buffered.size();
      if (buffered.size() == buffer_.size() || read_failed_) return {};
      if (begin_ > 0) {
        std::memmove(buffer_.data(), buffer_.data() + begin_, buffered.size());
        begin_ = 0;
        end_ = buffered.size();
      }
      ssize_t received = Receive(buffer_.data() + end_, buffer_.size() - end_);
      if (received <= 0) return {};
      end_ += static_cast<size_t>(received);
    }
  }
  /// Moves the read position by `count` bytes of the buffer: forward past
  /// a head PeekHead gave, or back to its start (negative).
  void Skip(std::ptrdiff_t count) {
    begin_ = static_cast<size_t>(static_cast<std::ptrdiff_t>(begin_) + count);
  }

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
  std::array<char, HttpListener::kMaxHeadBytes> buffer_;
  size_t begin_ = 0, end_ = 0;  // what is buffered and not read yet
  bool read_failed_ = false;
  bool write_failed_ = false;
  bool awaiting_head_ = false;
  std::string held_head_;  // a response's head waiting for its body
};

}  // namespace

struct HttpListener::Connection {
  Connection(int socket, std::unique_ptr<SSL, TlsFree> tls, timeval read_timeout,
             std::size_t requests)
      : socket(socket),
        tls(std::move(tls)),
        stream(socket, this->tls.get(), read_timeout),
        requests_left(requests) {}

  const int socket;
  const std::unique_ptr<SSL, TlsFree> tls;  // null for plain HTTP
  ConnectionStream stream;
  std::unique_ptr<Unfinished> unfinished;  // a response waiting for its source
  std::size_t requests_left;
  bool served = true;          // whether its last request was answered whole
  bool linger = false;         // its client may still be sending a body
  bool timed_out = false;      // its unfinished response's source sent nothing in time
  bool in_epoll = false;       // its socket added to the parking's set once
  Clock::time_point deadline;  // while parked: its keep-alive timeout, linger time or source's
};

/// httplib's thread pool for the listener's connections; parking runs from
/// its start to its shutdown, so that a parked connection woken always
/// finds threads to take it.
class HttpListener::ConnectionPool final : public httplib::TaskQueue {
 public:
  ConnectionPool(HttpListener& listener, std::size_t threads)
      : listener_(listener), threads_(threads) {
    listener_.StartParking(&threads_);
  }
  void enqueue(std::function<void()> job) override { threads_.enqueue(std::move(job)); }
  /// Ends the parking first: what it handed over runs before the threads end.
  void shutdown() override {
    listener_.StopParking();
    threads_.shutdown();
  }

 private:
  HttpListener& listener_;
  httplib::ThreadPool threads_;
};

HttpListener::HttpListener(std::size_t threads)
    : threads_(threads),
      epoll_(epoll_create1(EPOLL_CLOEXEC)),
      wake_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      stopped_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  new_task_queue = [this] { return new ConnectionPool(*this, threads_); };
  epoll_event wake{.events = EPOLLIN, .data = {.fd = wake_.get()}};
  epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &wake);
}

HttpListener::HttpListener(std::size_t threads, const std::filesystem::path& cert,
                           const std::filesystem::path& key)
    : HttpListener(threads) {
  wants_tls_ = true;
  tls_context_.reset(SSL_CTX_new(TLS_server_method()));
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
  return epoll_.valid() && wake_.valid() && stopped_.valid() &&
         (!wants_tls_ || tls_context_ != nullptr);
}

void HttpListener::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    // A connection asleep in its read wakes with nothing to read; one
    // serving a request finds its next read ended. A parked one is ended
    // when the pool shuts down, or sooner by its wake.
    for (int socket : connections_) shutdown(socket, SHUT_RD);
  }
  uint64_t one = 1;
  (void)!write(stopped_.get(), &one, sizeof one);  // ends the waits for sources
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
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || !connections_.insert(socket).second) {
      close(socket);
      return false;
    }
  }
  timeval read_timeout = Timeval(read_timeout_sec_, read_timeout_usec_);
  timeval write_timeout = Timeval(write_timeout_sec_, write_timeout_usec_);
  setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &read_timeout, sizeof read_timeout);
  setsockopt(socket, SOL_SOCKET, SO_SNDTIMEO, &write_timeout, sizeof write_timeout);
  std::unique_ptr<SSL, TlsFree> tls;
  if (tls_context_) tls.reset(SSL_new(tls_context_.get()));
  auto connection =
      std::make_unique<Connection>(socket, std::move(tls), read_timeout, keep_alive_max_count_);
  if (tls_context_) {
    SSL* session = connection->tls.get();
    ERR_clear_error();
    if (!session || SSL_set_fd(session, socket) != 1 || SSL_accept(session) != 1) {
      connection->served = false;  // no close_notify on a failed handshake
      End(std::move(connection));
      return false;
    }
  }
  Serve(std::move(connection), /*woken=*/false);
  return true;
}

void HttpListener::Serve(std::unique_ptr<Connection> connection, bool woken) {
  // OpenSSL writes with write(2): a client gone would raise SIGPIPE, which
  // ends the agent. Any pool thread may serve a TLS connection.
  core::BlockPipeSignalInThisThread();
  ConnectionStream& stream = connection->stream;
  const timeval keep_alive = Timeval(keep_alive_timeout_sec_, 0);
  while (true) {
    if (connection->unfinished) {
      std::optional<Answered> answered = Resume(connection, woken);
      if (!answered) return;  // parked
      if (!Answer(*connection, *answered)) break;
      woken = false;
    }
    if (connection->requests_left == 0 || svr_sock_ == INVALID_SOCKET) break;
    // In this thread while fewer than half of them wait so, or when the
    // request is here already; parked otherwise.
    bool in_thread = waiting_.fetch_add(1) < threads_ / 2 || woken || stream.Buffered();
    if (!in_thread) {
      --waiting_;
      // A keep-alive of "for ever" is a day at a time, which keeps the sum in range.
      connection =
          Park(std::move(connection), Clock::now() + std::chrono::seconds(std::clamp<time_t>(
                                                         keep_alive_timeout_sec_, 0, kDay)));
      if (!connection) return;
      ++waiting_;  // no parking: it waits here after all
    }
    woken = false;
    bool asked = stream.WaitForRequest(keep_alive);
    --waiting_;
    if (!asked) break;
    bool client_closes = false;
    stream.ExpectResponse();
    const bool last = connection->requests_left == 1;
    if (std::optional<Interception> intercepted = Intercept(*connection, last)) {
      if (auto* unfinished = std::get_if<std::unique_ptr<Unfinished>>(&*intercepted)) {
        connection->unfinished = std::move(*unfinished);
        continue;
      }
      if (Answer(*connection, std::get<Answered>(*intercepted))) continue;
      break;
    }
    // The last request the count allows is answered with Connection: close.
    // httplib does not check every write (a body's, say): a failed one
    // ends the connection here, not a request later.
    connection->served =
        process_request(stream, last, client_closes, nullptr) && stream.Flush() && !stream.failed();
    --connection->requests_left;
    if (!connection->served || client_closes) break;
  }
  End(std::move(connection));
}

bool HttpListener::ClientGone(int socket) {
  pollfd gone{socket, POLLRDHUP, 0};
  return poll(&gone, 1, 0) > 0;
}

std::optional<HttpListener::Interception> HttpListener::Intercept(Connection& connection,
                                                                  bool last) {
  if (!interceptor_) return std::nullopt;
  ConnectionStream& stream = connection.stream;
  std::string_view head = stream.PeekHead();
  if (head.empty()) return std::nullopt;
  const auto length = static_cast<std::ptrdiff_t>(head.size());
  stream.Skip(length);
  std::optional<Interception> intercepted = interceptor_(head, stream, last);
  if (!intercepted) stream.Skip(-length);  // httplib reads it again
  return intercepted;
}

std::optional<HttpListener::Answered> HttpListener::Resume(std::unique_ptr<Connection>& connection,
                                                           bool woken) {
  Unfinished& unfinished = *connection->unfinished;
  // Woken from the parking: by its source, its deadline or its client's end.
  SourceWait waited = SourceWait::kReady;
  if (std::exchange(connection->timed_out, false)) {
    waited = SourceWait::kTimedOut;
  } else if (woken && ClientGone(connection->socket)) {
    waited = SourceWait::kCut;
  }
  while (true) {
    if (waited == SourceWait::kCut) {
      connection->unfinished.reset();
      return Answered::kAbort;
    }
    if (std::optional<Answered> answered = unfinished.Resume(waited == SourceWait::kTimedOut)) {
      connection->unfinished.reset();
      return answered;
    }
    // In this thread while fewer than half of them wait so; parked otherwise.
    if (waiting_.fetch_add(1) >= threads_ / 2) {
      --waiting_;
      connection = Park(std::move(connection), DeadlineAfter(unfinished.timeout()));
      if (!connection) return std::nullopt;
      ++waiting_;  // no parking: it waits here after all
    }
    waited = AwaitSource(unfinished, connection->socket);
    --waiting_;
  }
}

HttpListener::SourceWait HttpListener::AwaitSource(const Unfinished& unfinished, int client) const {
  std::array<pollfd, 3> ready{pollfd{unfinished.source(), POLLIN, 0}, pollfd{client, POLLRDHUP, 0},
                              pollfd{stopped_.get(), POLLIN, 0}};
  const auto deadline = DeadlineAfter(unfinished.timeout());
  while (true) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    int count =
        poll(ready.data(), ready.size(), static_cast<int>(std::clamp<int64_t>(left, 0, INT32_MAX)));
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) return SourceWait::kTimedOut;  // a poll that fails ends the wait, not loops
    if (ready[1].revents != 0 || ready[2].revents != 0) return SourceWait::kCut;
    if (count == 0 && Clock::now() < deadline) continue;  // a wait longer than a poll takes
    if (count == 0) return SourceWait::kTimedOut;
    return SourceWait::kReady;  // bytes, its end, or an error for Resume to find
  }
}

bool HttpListener::Answer(Connection& connection, Answered answered) {
  // A held head (a response without a body) goes out, however it ends.
  bool flushed = connection.stream.Flush();
  connection.served = answered != Answered::kAbort && flushed && !connection.stream.failed();
  --connection.requests_left;
  connection.linger = connection.served && answered == Answered::kCloseUnread;
  return connection.served && answered == Answered::kKeep;
}

std::unique_ptr<HttpListener::Connection> HttpListener::Park(std::unique_ptr<Connection> connection,
                                                             Clock::time_point deadline) {
  std::lock_guard lock(mutex_);
  const int socket = connection->socket;
  // Its event names the connection's socket, whichever descriptor it
  // watches: an unfinished response's source is added for one wait.
  epoll_event event{.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT, .data = {.fd = socket}};
  if (!pool_) return connection;
  if (connection->unfinished) {
    // The client's end too (not its bytes: a pipelined request waits).
    epoll_event hangup{.events = EPOLLRDHUP | EPOLLONESHOT, .data = {.fd = socket}};
    if (epoll_ctl(epoll_.get(), connection->in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, socket,
                  &hangup) != 0) {
      return connection;
    }
    connection->in_epoll = true;  // End takes it out, whatever comes next
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, connection->unfinished->source(), &event) != 0) {
      return connection;
    }
  } else {
    if (epoll_ctl(epoll_.get(), connection->in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, socket,
                  &event) != 0) {
      return connection;
    }
    connection->in_epoll = true;
  }
  connection->deadline = deadline;
  auto [at, added] = deadlines_.emplace(connection->deadline, socket);
  parked_.emplace(socket, std::move(connection));
  // The watcher sleeps until the earliest deadline: one earlier wakes it.
  if (at == deadlines_.begin()) {
    uint64_t one = 1;
    (void)!write(wake_.get(), &one, sizeof one);
  }
  return nullptr;
}

std::unique_ptr<HttpListener::Connection> HttpListener::Unpark(int socket) {
  auto parked = parked_.find(socket);
  if (parked == parked_.end()) return nullptr;
  std::unique_ptr<Connection> connection = std::move(parked->second);
  parked_.erase(parked);
  deadlines_.erase({connection->deadline, socket});
  if (connection->unfinished) {
    epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, connection->unfinished->source(), nullptr);
    // The client's hang-up watch is disarmed too (an event it queued is
    // dropped): an event naming a connection that is not parked could name
    // the next one given its descriptor, once this one ends.
    epoll_event none{.events = EPOLLONESHOT, .data = {.fd = socket}};
    epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, socket, &none);
  }
  return connection;
}

void HttpListener::HandOver(std::unique_ptr<Connection> connection) {
  // std::function copies its callable: the job owns the connection by a
  // raw pointer, which the pool runs before it ends.
  Connection* next = connection.release();
  pool_->enqueue([this, next] { Serve(std::unique_ptr<Connection>(next), true); });
}

void HttpListener::End(std::unique_ptr<Connection> connection) {
  // close_notify for a client that finished cleanly; none on a connection
  // that failed (OpenSSL forbids SSL_shutdown after such an error).
  if (connection->tls && connection->served && !connection->stream.failed()) {
    core::BlockPipeSignalInThisThread();
    SSL_shutdown(connection->tls.get());
  }
  ERR_clear_error();  // what failed here is not the next handler's error
  const int socket = connection->socket;
  if (connection->linger) {
    // A lingering close, as nginx's: the answer is out, and the body the
    // client may still be sending is read and dropped from the parking,
    // until the client closes or kLingerTime passes. No thread waits.
    connection->served = false;  // its close_notify, if any, has gone
    shutdown(socket, SHUT_WR);
    connection = Park(std::move(connection), Clock::now() + kLingerTime);
    if (!connection) return;
    // No parking (the listener stops, or epoll refused it): closed at once.
  }
  // A child started meanwhile may hold the socket open past close(): its
  // epoll entry goes now, so that no stale event names a reused number.
  if (connection->in_epoll) epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, socket, nullptr);
  connection.reset();
  {
    std::lock_guard lock(mutex_);
    connections_.erase(socket);
  }
  shutdown(socket, SHUT_RDWR);
  close(socket);
}

void HttpListener::StartParking(httplib::TaskQueue* pool) {
  // httplib listens with a backlog of 5: a burst of new connections that
  // the accepting thread is a few behind would have its SYNs dropped, each
  // retried a second later. The kernel's limit instead (nginx: 511).
  if (socket_t listening = svr_sock_; listening != INVALID_SOCKET) {
    ::listen(listening, SOMAXCONN);
  }
  std::lock_guard lock(mutex_);
  pool_ = pool;
  watcher_ = std::thread([this] { WatchParked(); });
}

void HttpListener::StopParking() {
  std::vector<std::unique_ptr<Connection>> parked;
  {
    std::lock_guard lock(mutex_);
    pool_ = nullptr;
    while (!parked_.empty()) parked.push_back(Unpark(parked_.begin()->first));
  }
  // Ended idle, as a wait in a thread would end: no close_notify, whose
  // write could wait on a client that reads nothing; and no more lingering.
  for (auto& connection : parked) {
    connection->served = false;
    connection->linger = false;
  }
  uint64_t one = 1;
  (void)!write(wake_.get(), &one, sizeof one);
  if (watcher_.joinable()) watcher_.join();
  for (auto& connection : parked) End(std::move(connection));
}

void HttpListener::WatchParked() {
  std::array<epoll_event, 64> events;
  std::unique_lock lock(mutex_);
  while (pool_) {
    int timeout_ms = -1;
    if (!deadlines_.empty()) {
      auto left = deadlines_.begin()->first - Clock::now();
      timeout_ms = static_cast<int>(std::clamp<int64_t>(
          std::chrono::ceil<std::chrono::milliseconds>(left).count(), 0, kDay * 1000));
    }
    lock.unlock();
    int ready =
        epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), timeout_ms);
    lock.lock();
    if (!pool_) break;
    std::vector<std::unique_ptr<Connection>> lingering, ended;
    for (int i = 0; i < ready; ++i) {
      int socket = events[static_cast<size_t>(i)].data.fd;
      if (socket == wake_.get()) {
        uint64_t count;
        (void)!read(wake_.get(), &count, sizeof count);
        continue;
      }
      std::unique_ptr<Connection> woken = Unpark(socket);
      if (!woken) continue;
      if (woken->linger) {
        lingering.push_back(std::move(woken));
        continue;
      }
      HandOver(std::move(woken));
    }
    const auto now = Clock::now();
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
      std::unique_ptr<Connection> due = Unpark(deadlines_.begin()->second);
      if (due->unfinished) {
        // Its response ends in a thread, which may still write an error.
        due->timed_out = true;
        HandOver(std::move(due));
        continue;
      }
      due->served = false;  // ended idle: no close_notify, as in StopParking
      due->linger = false;  // or done lingering
      ended.push_back(std::move(due));
    }
    if (lingering.empty() && ended.empty()) continue;
    lock.unlock();
    for (auto& connection : lingering) {
      // Its deadline holds however much it sends: one past it is not
      // parked again (its deadline would never be looked at).
      if (DropIncoming(connection->socket) && Clock::now() < connection->deadline) {
        const Clock::time_point deadline = connection->deadline;
        connection = Park(std::move(connection), deadline);
        if (!connection) continue;
      }
      connection->linger = false;
      ended.push_back(std::move(connection));
    }
    for (auto& connection : ended) End(std::move(connection));
    lock.lock();
  }
}

}  // namespace agents
