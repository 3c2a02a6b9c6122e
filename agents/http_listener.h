#pragma once

#include <httplib.h>
#include <openssl/ssl.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>

#include "core/unique_fd.h"

namespace agents {

/// The agent's HTTP or HTTPS listener: cpp-httplib's routing, parsing and
/// handlers, with each connection served our way. cpp-httplib 0.11 keeps a
/// connection it waits on in a loop of a 10 ms poll and a 1 ms sleep (about
/// 170 system calls a second for each idle kept-alive connection, whatever
/// `set_idle_interval` says) and polls before every read and write. Here a
/// connection's thread sleeps in one blocking read until the next request,
/// its timeout or Stop, and reads and writes without a poll before each:
/// an idle connection costs nothing, and a request a handful of calls.
///
/// A connection holds one of the listener's threads while a request is
/// served. Between requests it waits in its thread's read while fewer than
/// half the threads wait so (the fastest way back: no hand-over); beyond
/// that it is parked, its socket in an epoll set that one thread watches,
/// and a thread takes it up again when its next request comes. Open
/// connections are thus not bounded by the threads; requests served at once
/// are, those waiting for bytes from elsewhere (Unfinished) excepted: they
/// are parked too. A connection closed lingering
/// (Answered::kCloseUnread) waits for its client's end there as well, not in
/// a thread. It sets `new_task_queue` itself.
///
/// Timeouts are the server's own settings, applied to the socket once:
/// `set_read_timeout` bounds each read within a request, `set_write_timeout`
/// each write, `set_keep_alive_timeout` the wait for the next request.
class HttpListener final : public httplib::Server {
 public:
  /// Plain HTTP, serving up to `threads` requests at once.
  explicit HttpListener(std::size_t threads);
  /// HTTPS with this PEM certificate chain and key, TLS 1.2 at least;
  /// is_valid() is false when they cannot be loaded.
  HttpListener(std::size_t threads, const std::filesystem::path& cert,
               const std::filesystem::path& key);
  ~HttpListener() override;

  bool is_valid() const override;

  /// How a request an interceptor took leaves its connection.
  enum class Answered {
    kKeep,   // answered whole: the connection serves the next request
    kClose,  // answered whole, and the connection ends (TLS: close_notify)
    // Answered whole before its body was read: the connection ends with a
    // lingering close, so that the body the client still sends does not
    // reset the connection, and the answer with it, before it is read.
    kCloseUnread,
    kAbort,  // cut short (the client went, a response ended early): the
             // connection is closed at once (TLS: no close_notify)
  };
  /// A response an interceptor has begun, or is about to, that waits for
  /// bytes from elsewhere: a container's response, which the router relays.
  /// Between its source's bytes it waits as a connection waits for its next
  /// request: in its thread while fewer than half the threads wait so, and
  /// otherwise parked until its source has bytes or its timeout passes. Its
  /// client's closing cuts it short, as nginx's proxy does: nothing reads
  /// it any more, and its source (a container's input) is given back. So
  /// responses that wait (slow containers, streams between two events) hold
  /// no more than half the threads. It lives as long as the connection, and
  /// writes on it.
  class Unfinished {
   public:
    virtual ~Unfinished() = default;
    /// The descriptor whose bytes it waits for.
    virtual int source() const = 0;
    /// The longest it waits for them.
    virtual std::chrono::milliseconds timeout() const = 0;
    /// Goes on with the response, reading what its source has without
    /// waiting: nullopt when it waits for more, or how the connection goes
    /// on once it is done. `timed_out`: its source sent nothing for its
    /// timeout, and it ends now.
    virtual std::optional<Answered> Resume(bool timed_out) = 0;
  };
  /// What an interceptor did with a request: answered it (how the
  /// connection goes on), or began an answer that waits for its source.
  using Interception = std::variant<Answered, std::unique_ptr<Unfinished>>;
  /// Serves a request outside httplib (the router's way: httplib's parsing
  /// and writing cost more than the relay). It is given the request's head
  /// (its bytes up to and including the empty line, valid until its first
  /// read) and the connection, positioned at the body. It returns nullopt,
  /// having read and written nothing, when httplib is to serve the request.
  /// `last`: the keep-alive count allows no other request on the connection.
  using Interceptor = std::function<std::optional<Interception>(
      std::string_view head, httplib::Stream& stream, bool last)>;
  /// Offers every request whose head fits in kMaxHeadBytes to
  /// `interceptor` first. Set before listening.
  void SetInterceptor(Interceptor interceptor) { interceptor_ = std::move(interceptor); }
  /// The longest head an interceptor is offered: longer ones go to httplib.
  static constexpr std::size_t kMaxHeadBytes = 16 << 10;

  /// Whether the client of `socket` has closed its end (or the connection
  /// failed): a response it waits for is no longer wanted.
  static bool ClientGone(int socket);

  /// Stops listening (before listen_after_bind() runs too: it then returns
  /// at once) and ends every connection's wait for its next request, parked
  /// or not. A request being served in a thread runs to its end (its reads
  /// end early, a write waits as long as the write timeout); one parked
  /// waiting for its source is cut short. listen_after_bind() returns when
  /// the last has.
  void Stop();

 private:
  struct TlsContextFree {
    void operator()(SSL_CTX* context) const { SSL_CTX_free(context); }
  };

  using Clock = std::chrono::steady_clock;
  struct Connection;     // an accepted socket, its TLS session and buffer
  class ConnectionPool;  // the threads, which start and stop the parking

  /// httplib's worker calls it with each accepted connection; it owns and
  /// closes `socket`.
  bool process_and_close_socket(socket_t socket) override;
  /// Serves requests on `connection` until the client is done, a timeout,
  /// the keep-alive count or Stop, then ends it, unless it parks it between
  /// two requests. `woken`: it comes from the parking with bytes to read.
  void Serve(std::unique_ptr<Connection> connection, bool woken);
  /// Offers the request `connection` has begun to the interceptor: what it
  /// returned, or nullopt without one or without a whole head.
  std::optional<Interception> Intercept(Connection& connection, bool last);
  /// Goes on with `connection`'s unfinished response until it is done: how
  /// it ended; or nullopt, `connection` null, when it waits in the parking.
  /// `woken`: it comes from the parking.
  std::optional<Answered> Resume(std::unique_ptr<Connection>& connection, bool woken);
  enum class SourceWait {
    kReady,     // the source has bytes (or ended)
    kTimedOut,  // it sent nothing for the response's timeout
    kCut,       // the client closed its end, or the listener stops: cut short
  };
  /// Waits in this thread for `unfinished`'s source to have bytes, at most
  /// its timeout, unless its `client` closes or Stop comes first.
  SourceWait AwaitSource(const Unfinished& unfinished, int client) const;
  /// Ends an interceptor's request that was `answered` so: whether the
  /// connection serves the next one.
  static bool Answer(Connection& connection, Answered answered);
  /// Hands `connection` to the parking until its next request (while it
  /// lingers, its client's end; with an unfinished response, its source's
  /// bytes) or `deadline`: null then; `connection` back when there is no
  /// parking (before or after the pool, or epoll refused it).
  std::unique_ptr<Connection> Park(std::unique_ptr<Connection> connection,
                                   Clock::time_point deadline);
  /// Takes `connection` out of the parking; the mutex held.
  std::unique_ptr<Connection> Unpark(int socket);
  /// Gives a connection out of the parking to a thread of the pool, which
  /// serves its next request or goes on with its response; the mutex held.
  void HandOver(std::unique_ptr<Connection> connection);
  /// Closes `connection`, with a TLS close_notify when it ended cleanly;
  /// when its client may still be sending, parks it to linger first.
  void End(std::unique_ptr<Connection> connection);
  /// While the listener runs with `pool`: parks connections and watches
  /// them in a thread of its own. It also raises the listening socket's
  /// backlog, httplib's being 5.
  void StartParking(httplib::TaskQueue* pool);
  /// Ends the parked connections and the watching; Park then gives back
  /// those it is given.
  void StopParking();
  /// The watching thread: a parked connection with bytes to read (or an
  /// unfinished response's source with bytes, or past its timeout) goes to
  /// the pool, a lingering one has them dropped, and one past its deadline
  /// (keep-alive timeout, or linger time) is ended.
  void WatchParked();

  const std::size_t threads_;
  Interceptor interceptor_;
  bool wants_tls_ = false;
  std::unique_ptr<SSL_CTX, TlsContextFree> tls_context_;
  std::atomic<std::size_t> waiting_ = 0;  // threads waiting for a next request or a source
  core::UniqueFd epoll_;                  // the parked connections, and wake_
  core::UniqueFd wake_;                   // an eventfd: the watcher looks again
  core::UniqueFd stopped_;                // an eventfd, readable once Stop was called
  std::thread watcher_;
  std::mutex mutex_;
  std::set<int> connections_;  // open ones, which Stop wakes
  bool stopping_ = false;
  httplib::TaskQueue* pool_ = nullptr;  // while parking
  std::map<int, std::unique_ptr<Connection>> parked_;
  std::set<std::pair<Clock::time_point, int>> deadlines_;  // of parked_
};

}  // namespace agents
