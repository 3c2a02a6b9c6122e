#include "agents/dashboard_session.h"

#include <catch2/catch.hpp>

namespace agents {
namespace {

constexpr std::int64_t kNow = 1'800'000'000;  // Unix seconds

constexpr char kCookie[] = "gantry_session_7071";

std::string Cookie(const std::string& session) {
  return std::string(kCookie) + "=" + session;
}

TEST_CASE("a dashboard session is valid where it was issued, until it ends") {
  DashboardSessions sessions("k3y-0f-this-process", kCookie);
  auto session = sessions.Issue(kNow);
  REQUIRE(session.ok());
  CHECK(session->find("." + std::to_string(kNow + kSessionSeconds) + ".") != std::string::npos);
  CHECK(sessions.Valid(Cookie(*session), kNow));
  CHECK(sessions.Valid("theme=dark; " + Cookie(*session) + "; lang=en", kNow + 60));
  CHECK(sessions.Valid(Cookie(*session), kNow + kSessionSeconds - 1));
  CHECK_FALSE(sessions.Valid(Cookie(*session), kNow + kSessionSeconds));  // it has ended
  // A cookie of that name set by another path's page does not hide it.
  CHECK(sessions.Valid(Cookie("planted") + "; " + Cookie(*session), kNow));
  CHECK_FALSE(sessions.Valid("other_session=" + *session, kNow));
  // Another agent's dashboard on this host (another port) has a cookie of its own name.
  CHECK_FALSE(sessions.Valid("gantry_session_7072=" + *session, kNow));
  CHECK_FALSE(sessions.Valid("", kNow));
  // Sessions differ, and one agent's (or an earlier process's) mean nothing to another.
  CHECK(*sessions.Issue(kNow) != *session);
  DashboardSessions restarted("another-random-key", kCookie);
  CHECK_FALSE(restarted.Valid(Cookie(*session), kNow));
}

TEST_CASE("a forged or altered dashboard session is refused") {
  DashboardSessions sessions("k3y-0f-this-process", kCookie);
  const std::string session = *sessions.Issue(kNow);
  const std::size_t last = session.rfind('.');
  const std::string id = session.substr(0, session.find('.'));
  // A later end with the old MAC: the MAC covers the expiry.
  CHECK_FALSE(sessions.Valid(
      Cookie(id + "." + std::to_string(kNow + 10 * kSessionSeconds) + session.substr(last)), kNow));
  CHECK_FALSE(sessions.Valid(Cookie(session.substr(0, session.size() - 1)), kNow));
  CHECK_FALSE(sessions.Valid(Cookie(session.substr(0, last)), kNow));
  CHECK_FALSE(sessions.Valid(Cookie(id), kNow));
  // Without a key, nothing is ever valid.
  DashboardSessions keyless("", kCookie);
  CHECK_FALSE(keyless.Valid(Cookie(session), kNow));
}

TEST_CASE("signing out ends that session and no other") {
  DashboardSessions sessions("k3y-0f-this-process", kCookie);
  const std::string mine = *sessions.Issue(kNow);
  const std::string other = *sessions.Issue(kNow);
  sessions.Revoke(Cookie(mine), kNow + 5);
  CHECK_FALSE(sessions.Valid(Cookie(mine), kNow + 6));
  CHECK(sessions.Valid(Cookie(other), kNow + 6));
  // Revoking a forged value revokes nothing.
  sessions.Revoke(Cookie(other.substr(0, other.size() - 1)), kNow + 7);
  CHECK(sessions.Valid(Cookie(other), kNow + 8));
}

TEST_CASE("the session cookie is for /ui only, HttpOnly, SameSite=Strict, and lasts the session") {
  DashboardSessions sessions("k3y", kCookie);
  CHECK(sessions.SetCookie("abc", false) ==
        "gantry_session_7071=abc; Path=/ui; Max-Age=43200; HttpOnly; SameSite=Strict");
  CHECK(sessions.SetCookie("abc", true).ends_with("; Secure"));
  CHECK(sessions.SetCookie("", false) ==
        "gantry_session_7071=; Path=/ui; Max-Age=0; HttpOnly; SameSite=Strict");
}

}  // namespace
}  // namespace agents
