// The agent's dashboard (/ui) end to end: the real `gantry agent` with a
// fake H100 runs real runc containers (a GPU job and a web server), then a
// real headless browser (Debian's chromium, driven by tests/ui/dashboard.mjs)
// signs in and reads what the page shows; a screenshot of it is kept in the
// build tree (DASHBOARD_SCREENSHOT). The routes the page reads and the
// session cookie are checked over plain HTTP first.

#include <httplib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/agent_fixture.h"
#include "tests/agent_process.h"
#include "tests/busybox_image.h"
#include "tests/gantry_command.h"
#include "tests/temp_dir.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using tests::Body;

json Desired(const std::string& digest) {
  json image = {{"digest", digest}};
  return {{"generation", 3},
          {"apps",
           {{"shop",
             {{"functions",
               {{"report",
                 {{"image", image},
                  {"command", {"/bin/sh", "-c", "sleep 2; echo done"}},
                  {"gpu", {{"type", "H100"}, {"count", 1}}}}},
                {"site",
                 {{"image", image},
                  {"command",
                   {"/bin/sh", "-c", "echo hi > /tmp/index.html; exec httpd -f -p $PORT -h /tmp"}},
                  {"web", json::object()},
                  {"min_containers", 1}}}}},
              {"budget", {{"daily_usd", 50}, {"on_exceed", "alert"}}}}}}}};
}

/// The cookie of the dashboard at `address` (http://HOST:PORT): named after its port.
std::string CookieName(const std::string& address) {
  return "gantry_session_" + address.substr(address.rfind(':') + 1);
}

/// The NAME=VALUE of the session cookie a Set-Cookie header sets.
std::string SessionFrom(const std::string& set_cookie, const std::string& name) {
  std::string value = set_cookie.substr(0, set_cookie.find(';'));
  REQUIRE(value.starts_with(name + "="));
  return value;
}

TEST_CASE("the dashboard shows the agent's functions, calls and usage in a real browser",
          "[dashboard][runc]") {
  if (!tests::ContainersOrSkip()) return;
  tests::TempDir dir("gantry-dashboard-test");
  fs::path store = dir.path() / "store";
  const std::string digest = tests::RequireBusyboxImage(dir.path(), store);
  auto started = tests::RequireAgent(dir.path() / "agent", store, dir.path() / "agent.log",
                                     {"--dashboard-port", "0"});
  tests::AgentProcess& agent = *started;
  REQUIRE(agent.dashboard_address().starts_with("http://127.0.0.1:"));
  REQUIRE(agent.dashboard_address() != agent.address());
  auto client = agent.Client();
  REQUIRE(Body(client.Put("/v1/desired", Desired(digest).dump(), "application/json"))["changed"] ==
          true);
  json first =
      Body(client.Post("/v1/apps/shop/functions/report/calls?wait=true", "{}", "application/json"));
  REQUIRE(first["state"] == "succeeded");
  json second =
      Body(client.Post("/v1/apps/shop/functions/report/calls?wait=true", "{}", "application/json"));

  // --- over HTTP: the routes the page reads, and what a session may do ---
  json recent = Body(client.Get("/v1/calls?app=shop&limit=5"));
  REQUIRE(recent["calls"].size() == 2);
  CHECK(recent["calls"][0]["id"] == second["id"]);  // newest first
  CHECK(recent["calls"][1]["id"] == first["id"]);
  CHECK_FALSE(recent["calls"][0].contains("stdout"));
  CHECK(Body(client.Get("/v1/calls?app=other"))["calls"].empty());
  std::ofstream(dir.path() / "calls.json") << recent.dump();
  auto checked = tests::CheckJsonSchema("call.schema.json", dir.path() / "calls.json", "list");
  INFO(checked.err);
  CHECK(checked.exit_code == 0);
  for (const char* bad : {"/v1/calls?limit=0", "/v1/calls?limit=501", "/v1/calls?app=Not_A_Name",
                          "/v1/usage?since=0&until=100000000&step=1", "/v1/usage?step=soon"}) {
    INFO(bad);
    auto refused = client.Get(bad);
    REQUIRE(refused);
    CHECK(refused->status == 400);
    CHECK(json::parse(refused->body)["error"]["code"] == "invalid-argument");
  }
  const std::int64_t until = Body(client.Get("/v1/usage"))["now_ms"].get<std::int64_t>() + 1;
  json usage = Body(client.Get("/v1/usage?app=shop&since=" + std::to_string(until - 600'000) +
                               "&until=" + std::to_string(until) + "&step=60000"));
  REQUIRE(usage["series"].size() == 10);
  double charted = 0;
  const json series = usage["series"];
  for (const json& step : series) charted += step["cost_usd"].get<double>();
  CHECK(charted == Approx(usage["totals"]["cost_usd"].get<double>()));
  CHECK(charted > 0);
  std::ofstream(dir.path() / "usage.json") << usage.dump();
  checked = tests::CheckJsonSchema("usage.schema.json", dir.path() / "usage.json");
  INFO(checked.err);
  CHECK(checked.exit_code == 0);

  // The dashboard has a listener, and so an origin, of its own: the API's
  // (where web functions are served) has no /ui and takes no cookie.
  auto api_ui = agent.Client(/*with_token=*/false).Get("/ui");
  REQUIRE(api_ui);
  CHECK(api_ui->status == 401);
  CHECK(client.Get("/ui")->status == 404);
  httplib::Client anonymous(agent.dashboard_address());
  const std::string cookie = CookieName(agent.dashboard_address());
  const auto form = "application/x-www-form-urlencoded";
  auto page = anonymous.Get("/ui");
  REQUIRE(page);
  CHECK(page->status == 401);
  CHECK(page->body.find("action=\"/ui/login\"") != std::string::npos);
  CHECK(page->body.find("usage-chart") == std::string::npos);
  CHECK(page->get_header_value("Content-Security-Policy").find("default-src 'none'") == 0);
  auto wrong = anonymous.Post("/ui/login", "token=guess", form);
  REQUIRE(wrong);
  CHECK(wrong->status == 401);
  CHECK_FALSE(wrong->has_header("Set-Cookie"));
  // The token in a URL, where histories and logs keep it, is refused.
  auto in_url = anonymous.Post("/ui/login?token=" + agent.token(), "", form);
  REQUIRE(in_url);
  CHECK(in_url->status == 400);
  CHECK_FALSE(in_url->has_header("Set-Cookie"));
  auto login = anonymous.Post("/ui/login", "token=" + agent.token(), form);
  REQUIRE(login);
  CHECK(login->status == 303);
  CHECK(login->get_header_value("Location") == "/ui");
  const std::string set_cookie = login->get_header_value("Set-Cookie");
  CHECK(set_cookie.find("Path=/ui;") != std::string::npos);       // never sent to /apps/…
  CHECK(set_cookie.find("Max-Age=43200;") != std::string::npos);  // 12 hours
  CHECK(set_cookie.find("HttpOnly") != std::string::npos);
  CHECK(set_cookie.find("SameSite=Strict") != std::string::npos);
  CHECK(set_cookie.find(agent.token()) == std::string::npos);  // the cookie is not the token
  const httplib::Headers session = {{"Cookie", SessionFrom(set_cookie, cookie)}};
  auto dashboard = anonymous.Get("/ui", session);
  REQUIRE(dashboard);
  CHECK(dashboard->status == 200);
  CHECK(dashboard->body.find("usage-chart") != std::string::npos);
  auto read = anonymous.Get("/ui/v1/status", session);
  REQUIRE(read);
  CHECK(read->status == 200);
  CHECK(json::parse(read->body)["generation"] == 3);
  // The API's own routes never take the cookie, on either listener.
  auto elsewhere = agent.Client(/*with_token=*/false).Get("/v1/status", session);
  REQUIRE(elsewhere);
  CHECK(elsewhere->status == 401);
  CHECK(anonymous.Get("/v1/status", session)->status == 404);
  // A session reads; it never writes: the desired state is what it was.
  auto write =
      agent.Client(/*with_token=*/false)
          .Put("/v1/desired", session, "{\"generation\": 9, \"apps\": {}}", "application/json");
  REQUIRE(write);
  CHECK(write->status == 401);
  auto write_here =
      httplib::Client(agent.dashboard_address())
          .Put("/ui/v1/desired", session, "{\"generation\": 9, \"apps\": {}}", "application/json");
  REQUIRE(write_here);
  CHECK(write_here->status == 401);
  CHECK(Body(client.Get("/v1/status"))["generation"] == 3);
  auto forged = httplib::Client(agent.dashboard_address())
                    .Get("/ui/v1/status", {{"Cookie", cookie + "=" + agent.token()}});
  REQUIRE(forged);
  CHECK(forged->status == 401);
  // A page of another origin of this host (a web function's, on the API's
  // port: the same site) can neither sign a browser in nor out.
  const httplib::Headers from_web_function = {{"Cookie", SessionFrom(set_cookie, cookie)},
                                              {"Origin", agent.address()}};
  auto foreign_logout = anonymous.Post("/ui/logout", from_web_function, "", form);
  REQUIRE(foreign_logout);
  CHECK(foreign_logout->status == 403);
  CHECK(anonymous.Get("/ui/v1/status", session)->status == 200);
  auto foreign_login =
      anonymous.Post("/ui/login", {{"Origin", agent.address()}}, "token=" + agent.token(), form);
  REQUIRE(foreign_login);
  CHECK(foreign_login->status == 403);
  CHECK_FALSE(foreign_login->has_header("Set-Cookie"));
  // Signing out ends this session, and only it.
  auto other_login = anonymous.Post("/ui/login", "token=" + agent.token(), form);
  REQUIRE(other_login);
  const httplib::Headers other = {
      {"Cookie", SessionFrom(other_login->get_header_value("Set-Cookie"), cookie)}};
  httplib::Headers own_page = session;
  own_page.emplace("Origin", agent.dashboard_address());
  auto logout = anonymous.Post("/ui/logout", own_page, "", form);
  REQUIRE(logout);
  CHECK(logout->status == 303);
  CHECK(logout->get_header_value("Set-Cookie").find(cookie + "=; Path=/ui; Max-Age=0;") == 0);
  CHECK(anonymous.Get("/ui/v1/status", session)->status == 401);
  CHECK(anonymous.Get("/ui", session)->status == 401);
  CHECK(anonymous.Get("/ui/v1/status", other)->status == 200);

  // --- in a real browser ---
  fs::path token_file = agent.data_dir() / "token";
  auto browsed = tests::RunProcess(
      {"node", (fs::path(DASHBOARD_BROWSER_DIR) / "dashboard.mjs").string(), CHROMIUM_BINARY,
       agent.dashboard_address(), token_file.string(), DASHBOARD_SCREENSHOT},
      DASHBOARD_BROWSER_DIR);
  INFO(browsed.err);
  INFO(browsed.out);
  REQUIRE(browsed.exit_code == 0);
  json seen = json::parse(browsed.out);
  CHECK(seen["page_errors"].empty());

  CHECK(seen["anonymous"]["status"] == 401);
  CHECK(seen["anonymous"]["form"] == true);
  CHECK(seen["anonymous"]["dashboard"] == false);
  CHECK(seen["wrong_token"]["status"] == 401);
  CHECK(seen["wrong_token"]["error"] == "That is not this agent's token.");
  CHECK(seen["wrong_token"]["dashboard"] == false);
  CHECK(seen["signed_in"]["status"] == 200);
  CHECK(seen["signed_in"]["url"] == agent.dashboard_address() + "/ui");

  const json shown = seen["dashboard"];
  CHECK(shown["banner"] == "");
  CHECK(shown["generation"] == "3");
  CHECK(shown["script_cookies"] == "");
  std::map<std::string, json> functions;
  for (const json& row : shown["functions"].get<std::vector<json>>())
    functions[row["function"]] = row["cells"];
  REQUIRE(functions.size() == 2);
  REQUIRE(functions.count("shop/report") == 1);
  REQUIRE(functions.count("shop/site") == 1);
  CHECK(functions["shop/report"][2] == "job");
  CHECK(functions["shop/site"][2] == "web");
  CHECK(functions["shop/site"][3] == "1");  // its warm container, running
  // The web function's warm container, as GET /v1/status lists it.
  const json listed =
      Body(client.Get("/v1/status"))["apps"]["shop"]["functions"]["site"]["container_list"];
  REQUIRE(listed.size() == 1);
  REQUIRE(shown["containers"].size() == 1);
  CHECK(shown["containers"][0]["id"] == listed[0]["id"]);
  CHECK(shown["containers"][0]["cells"][1] == "shop/site");
  CHECK(shown["containers"][0]["cells"][2] == "ready");
  // The app's budget, with what it spent today as GET /v1/status says.
  const json budget = Body(client.Get("/v1/status"))["apps"]["shop"]["budget"];
  REQUIRE(shown["budgets"].size() == 1);
  CHECK(shown["budgets"][0]["app"] == "shop");
  const json budget_cells = shown["budgets"][0]["cells"];
  CHECK(budget_cells[1].get<std::string>().starts_with("$0.0"));
  CHECK(budget_cells[2] == "$50.0000");
  CHECK(budget_cells[4] == "–");  // no monthly cap
  CHECK(budget_cells[5] == "alert");
  CHECK(budget_cells[6] == budget["state"]);
  const json calls = shown["calls"];
  REQUIRE(calls.size() == 2);
  CHECK(calls[0]["id"] == second["id"]);
  CHECK(calls[0]["cells"][2] == "succeeded");
  CHECK(calls[0]["cells"][3] == "0");
  CHECK(shown["bars"] == 60);  // the last hour, by the minute
  CHECK(shown["bars_with_cost"].get<int>() >= 1);
  CHECK(shown["cost"].get<std::string>().starts_with("$0."));
  CHECK(seen["write_with_session"] == 401);
  CHECK(seen["day_bars"] == 24);
  CHECK(seen["signed_out"]["status"] == 401);
  CHECK(seen["signed_out"]["form"] == true);
  CHECK(seen["signed_out"]["read"] == 401);

  std::ifstream png(DASHBOARD_SCREENSHOT, std::ios::binary);
  std::string signature(8, '\0');
  png.read(signature.data(), 8);
  CHECK(signature == "\x89PNG\r\n\x1a\n");
  CHECK(fs::file_size(DASHBOARD_SCREENSHOT) > 20'000);
}

}  // namespace
