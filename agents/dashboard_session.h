#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace agents {

/// How long a dashboard session lasts after sign-in.
inline constexpr std::int64_t kSessionSeconds = 12 * 60 * 60;

/// The dashboard's sessions (agents/README.md, "Dashboard"). A browser that
/// gave the token at /ui/login gets a session: "ID.EXPIRY.MAC", a random id,
/// when it ends (Unix seconds) and an HMAC-SHA256 of the two keyed with a
/// key drawn at random when the agent starts. So a session is never the
/// token nor derived from it alone, ends after kSessionSeconds, can be
/// revoked one by one (sign-out), and every one ends with the process.
/// The cookie is named after the dashboard's port (`gantry_session_PORT`):
/// browsers keep cookies by host, not port, and two agents' dashboards on
/// one host must not overwrite each other's. Thread-safe.
class DashboardSessions {
 public:
  /// `key`: the random HMAC key (core::RandomHex); `cookie`: the cookie's name.
  DashboardSessions(std::string key, std::string cookie);

  const std::string& cookie() const { return cookie_; }

  /// A new session's cookie value, valid until `now_seconds` + kSessionSeconds.
  core::Result<std::string> Issue(std::int64_t now_seconds) const;
  /// Whether a Cookie header value holds a session issued here that has not
  /// ended or been revoked at `now_seconds`; MACs compared in constant time.
  bool Valid(std::string_view cookie_header, std::int64_t now_seconds) const;
  /// Ends every session the Cookie header value holds.
  void Revoke(std::string_view cookie_header, std::int64_t now_seconds);
  /// The Set-Cookie value that gives a browser `session`: for /ui paths
  /// only (never sent to a web function's /apps/…), HttpOnly and
  /// SameSite=Strict (another site's page can neither read it nor make the
  /// browser send it), Max-Age of the session's life, Secure when the
  /// dashboard serves TLS. An empty `session` deletes the cookie (Max-Age=0).
  std::string SetCookie(std::string_view session, bool secure) const;

 private:
  struct Session {
    std::string id;
    std::int64_t expiry = 0;  // Unix seconds
  };

  std::string Mac(std::string_view id_and_expiry) const;
  /// The session `value` stands for when its MAC is right.
  std::optional<Session> Verified(std::string_view value) const;

  /// The values of the cookies of our name in a Cookie header value.
  std::vector<std::string_view> Values(std::string_view cookie_header) const;

  std::string key_;
  std::string cookie_;
  mutable std::mutex mutex_;
  std::map<std::string, std::int64_t> revoked_;  // session id -> its expiry
};

}  // namespace agents
