#pragma once

#include <httplib.h>
#include <openssl/ssl.h>

#include <filesystem>
#include <memory>
#include <mutex>
#include <set>

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
/// Timeouts are the server's own settings, applied to the socket once:
/// `set_read_timeout` bounds each read within a request, `set_write_timeout`
/// each write, `set_keep_alive_timeout` the wait for the next request.
class HttpListener final : public httplib::Server {
 public:
  /// Plain HTTP.
  HttpListener();
  /// HTTPS with this PEM certificate chain and key, TLS 1.2 at least;
  /// is_valid() is false when they cannot be loaded.
  HttpListener(const std::filesystem::path& cert, const std::filesystem::path& key);
  ~HttpListener() override;

  bool is_valid() const override;

  /// Stops listening (before listen_after_bind() runs too: it then returns
  /// at once) and ends every connection's wait for its next request. A
  /// request being served runs to its end (its reads end early, a write
  /// waits as long as the write timeout); listen_after_bind() returns when
  /// the last has.
  void Stop();

 private:
  struct TlsContextFree {
    void operator()(SSL_CTX* context) const { SSL_CTX_free(context); }
  };

  /// httplib's worker calls it with each accepted connection; it owns and
  /// closes `socket`.
  bool process_and_close_socket(socket_t socket) override;
  /// Serves requests on `socket` until the client is done, a timeout, the
  /// keep-alive count or Stop; `tls` null for plain HTTP.
  bool ServeConnection(int socket, SSL* tls);

  const bool wants_tls_;
  std::unique_ptr<SSL_CTX, TlsContextFree> tls_context_;
  std::mutex mutex_;
  std::set<int> connections_;  // open ones, which Stop wakes
  bool stopping_ = false;
};

}  // namespace agents
