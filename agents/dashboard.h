#pragma once

#include <string>
#include <string_view>

namespace agents {

/// The agent's dashboard, served at /ui (agents/README.md, "Dashboard"):
/// one self-contained HTML page (agents/dashboard.html, compiled in) that
/// shows the apps, functions, containers, recent calls and usage over time,
/// read from the API with the browser's session cookie (api_token.h).
std::string_view DashboardPage();

/// The page /ui answers, with 401, to a browser without a session: a form
/// that posts the agent's token to /ui/login; `error` is shown above it when
/// not empty.
std::string DashboardSignInPage(std::string_view error);

/// The Content-Security-Policy of both pages: nothing is loaded from
/// anywhere, scripts and styles are the page's own, requests go to the agent.
inline constexpr char kDashboardPolicy[] =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src data:; form-action 'self'; frame-ancestors 'none'";

}  // namespace agents
