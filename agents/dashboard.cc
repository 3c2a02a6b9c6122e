#include "agents/dashboard.h"

#include "agents/dashboard_html.h"

namespace agents {
namespace {

/// `text` with the characters that mean something in HTML escaped.
std::string EscapeHtml(std::string_view text) {
  std::string escaped;
  for (char c : text) {
    switch (c) {
      case '&':
        escaped += "&amp;";
        break;
      case '<':
        escaped += "&lt;";
        break;
      case '>':
        escaped += "&gt;";
        break;
      case '"':
        escaped += "&quot;";
        break;
      case '\'':
        escaped += "&#39;";
        break;
      default:
        escaped += c;
    }
  }
  return escaped;
}

}  // namespace

std::string_view DashboardPage() {
  return kDashboardHtml;
}

std::string DashboardSignInPage(std::string_view error) {
  std::string page = R"(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>gantry agent: sign in</title>
<style>
  body { font: 14px/1.45 system-ui, sans-serif; color: #1d2330; background: #f6f7f9; }
  form { max-width: 26em; margin: 12vh auto; background: #fff; border: 1px solid #e3e6ec; border-radius: 6px; padding: 1.5em; }
  h1 { font-size: 1.1em; margin-top: 0; }
  input { width: 100%; font: inherit; padding: 0.4em; margin: 0.4em 0 1em; }
  button { font: inherit; padding: 0.35em 1.2em; }
  .error { color: #c0392b; }
  code { font-size: 0.92em; }
</style>
</head>
<body>
<form method="post" action="/ui/login">
<h1>gantry agent</h1>
)";
  if (!error.empty()) page += "<p class=\"error\" id=\"error\">" + EscapeHtml(error) + "</p>\n";
  page += R"(<label for="token">API token (the agent's <code>DATA_DIR/token</code>)</label>
<input id="token" name="token" type="password" autocomplete="current-password" autofocus required>
<button type="submit">Sign in</button>
</form>
</body>
</html>
)";
  return page;
}

}  // namespace agents
