// End-to-end tests of serving: web functions behind the agent's router, in
// real runc containers running busybox httpd, started on demand, scaled up
// under load and back to zero when idle.

#include <httplib.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/sha256.h"
#include "core/wall_clock.h"
#include "tests/agent_fixture.h"
#include "tests/agent_process.h"
#include "tests/busybox_image.h"
#include "tests/gantry_command.h"
#include "tests/raw_connection.h"
#include "tests/temp_dir.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

/// A busybox httpd serving /www on $PORT, with CGI scripts: env (what the
/// request looked like inside), sum (the body's size and sha256), stream
/// (three lines, ?SECONDS apart, 1 by default), slow (?SECONDS long, 1 by
/// default; says how many
/// requests its container was serving), count (how many times it ran in
/// its container), framed (?LENGTH-BODY: a
/// Content-Length that the body may overrun or fall short of), nothing (a
/// 204), unchanged (a 304) and garbled (a status line that is not HTTP's).
const char* const kWebServer = R"SH(
mkdir -p /www/cgi-bin
echo hello > /www/index.html
cat > /www/cgi-bin/env <<'END'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
echo "uri=$REQUEST_URI"
echo "method=$REQUEST_METHOD"
echo "prefix=$HTTP_X_FORWARDED_PREFIX"
echo "host=$HTTP_X_FORWARDED_HOST"
echo "proto=$HTTP_X_FORWARDED_PROTO"
echo "for=$HTTP_X_FORWARDED_FOR"
echo "auth=$HTTP_AUTHORIZATION"
echo "body=$(cat)"
END
cat > /www/cgi-bin/sum <<'END'
#!/bin/sh
cat > /tmp/body.$$
printf 'Content-Type: text/plain\r\n\r\n'
echo "$(wc -c < /tmp/body.$$) sha256:$(sha256sum < /tmp/body.$$ | cut -d' ' -f1)"
rm /tmp/body.$$
END
cat > /www/cgi-bin/stream <<'END'
#!/bin/sh
printf 'Content-Type: text/event-stream\r\n\r\n'
for i in 1 2 3; do echo "data: tick $i"; echo; sleep "${QUERY_STRING:-1}"; done
END
cat > /www/cgi-bin/slow <<'END'
#!/bin/sh
mkdir -p /tmp/active
touch /tmp/active/$$
n=$(ls /tmp/active | wc -l)
sleep "${QUERY_STRING:-1}"
rm /tmp/active/$$
printf 'Content-Type: text/plain\r\n\r\n'
echo "concurrent=$n host=$(cat /tmp/id)"
END
cat > /www/cgi-bin/count <<'END'
#!/bin/sh
echo call >> /tmp/calls
printf 'Content-Type: text/plain\r\n\r\n'
echo "calls=$(grep -c call /tmp/calls)"
END
cat > /www/cgi-bin/framed <<'END'
#!/bin/sh
printf 'Content-Type: text/plain\r\nContent-Length: %s\r\n\r\n%s' "${QUERY_STRING%%-*}" "${QUERY_STRING#*-}"
END
cat > /www/cgi-bin/nothing <<'END'
#!/bin/sh
printf 'Status: 204 No Content\r\n\r\n'
END
cat > /www/cgi-bin/unchanged <<'END'
#!/bin/sh
printf 'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\n\r\n'
END
cat > /www/cgi-bin/garbled <<'END'
#!/bin/sh
printf 'HTTP/1.1 2OO OK\r\n\r\n'
END
chmod +x /www/cgi-bin/*
head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n' > /tmp/id
exec httpd -f -p "$PORT" -h /www
)SH";

/// A busybox httpd on the port named by $HTTP_PORT (web.port_env) that
/// listens at once and has its page, and its health path /ready, only 2 s
/// later: a request forwarded when it merely listens gets a 404.
const char* const kLateServer = R"SH(
mkdir -p /www
(sleep 2; echo ready > /www/index.html; echo ok > /www/ready) &
exec httpd -f -p "$HTTP_PORT" -h /www
)SH";

json WebFunction(const std::string& digest, json settings) {
  json function = {{"image", {{"digest", digest}}},
                   {"command", {"/bin/sh", "-c", kWebServer}},
                   {"web", json::object()},
                   {"scaledown_window_ms", 1500}};
  function.update(settings);
  return function;
}

json Body(const httplib::Result& result) {
  return tests::Body(result, std::nullopt);  // any status: the test checks it
}

/// "STATUS BODY" of an answer, else "no answer" (no REQUIRE: the tests'
/// callers run in threads).
std::string Summary(const httplib::Result& answer) {
  return answer ? std::to_string(answer->status) + " " + answer->body : "no answer";
}

json FunctionStatus(httplib::Client& client, const std::string& function) {
  return Body(client.Get("/v1/status"))["apps"]["demo"]["functions"][function];
}

/// Polls the status until `done` holds for the function (at most `limit`).
bool WaitForStatus(httplib::Client& client, const std::string& function,
                   const std::function<bool(const json&)>& done, std::chrono::seconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done(FunctionStatus(client, function))) return true;
    std::this_thread::sleep_for(100ms);
  }
  return false;
}

/// Polls the status until the function has `count` requests in flight (10 s at most).
bool WaitForInFlight(httplib::Client& client, const std::string& function, int count) {
  return WaitForStatus(
      client, function,
      [count](const json& status) { return status["in_flight_requests"] == count; }, 10s);
}

int Containers(const json& status) {
  return status["containers"]["ready"].get<int>() + status["containers"]["starting"].get<int>() +
         status["containers"]["draining"].get<int>();
}

}  // namespace

TEST_CASE("web functions are served through the router in real runc containers",
          "[serving][runc]") {
  if (!tests::ContainersOrSkip()) return;
  tests::TempDir dir("gantry-serving-test");
  fs::path store = dir.path() / "store";
  const std::string digest = tests::RequireBusyboxImage(dir.path(), store);
  auto started_agent = tests::RequireAgent(dir.path() / "agent", store, dir.path() / "agent.log",
                                           {"--gpus", "fake:H100x1", "--web-domain", "fn.test"});
  tests::AgentProcess& agent = *started_agent;
  auto client = agent.Client();
  auto anonymous = agent.Client(/*with_token=*/false);
  const std::string key = "the-app-key-0042";

  json desired = {
      {"generation", 1},
      {"apps",
       {{"demo",
         {{"web_key_sha256", core::Sha256Digest(key).substr(7)},
          {"functions",
           {{"site", WebFunction(digest, {{"scaledown_window_ms", 3000}})},
            {"private", WebFunction(digest, {{"web", {{"auth", "token"}}}})},
            {"keyed", WebFunction(digest, {{"web", {{"auth", "key"}}}})},
            {"busy", WebFunction(digest, {{"max_containers", 2}, {"max_inputs", 1}})},
            {"pair",
             WebFunction(digest,
                         {{"min_containers", 2}, {"max_containers", 2}, {"max_inputs", 2}})},
            {"surge", WebFunction(digest, {{"max_containers", 2}, {"max_inputs", 2}})},
            {"queued",
             WebFunction(digest, {{"max_containers", 1},
                                  {"max_inputs", 1},
                                  {"web", {{"max_queued", 1}, {"queue_timeout_ms", 10000}}}})},
            {"unqueued", WebFunction(digest, {{"max_containers", 1},
                                              {"scaledown_window_ms", 10000},
                                              {"web", {{"max_queued", 0}}}})},
            {"late",
             WebFunction(digest,
                         {{"command", {"/bin/sh", "-c", kLateServer}},
                          {"web", {{"port_env", "HTTP_PORT"}, {"health_path", "/ready"}}}})},
            {"hasty", WebFunction(digest, {{"timeout_ms", 1000}})},
            {"single", WebFunction(digest, {{"max_containers", 1},
                                            {"max_inputs", 1},
                                            {"web", {{"queue_timeout_ms", 10000}}}})},
            {"warm", WebFunction(digest, {{"min_containers", 1}, {"scaledown_window_ms", 500}})},
            {"broken", WebFunction(digest, {{"command", {"/bin/sh", "-c", "echo dying; exit 7"}},
                                            {"web", {{"queue_timeout_ms", 1500}}}})},
            {"silent", WebFunction(digest, {{"command", {"/bin/sleep", "60"}},
                                            {"web", {{"queue_timeout_ms", 500}}}})},
            {"job", {{"image", {{"digest", digest}}}, {"command", {"/bin/true"}}}}}}}}}}};
  auto applied = client.Put("/v1/desired", desired.dump(), "application/json");
  REQUIRE(applied);
  INFO(applied->body);
  REQUIRE(applied->status == 200);
  INFO(agent.Log());

  SECTION("a cold start serves the first request, then the function scales back to zero") {
    json before = FunctionStatus(client, "site");
    CHECK(Containers(before) == 0);
    CHECK(before["desired_containers"] == 0);
    auto first = anonymous.Get("/apps/demo/site/index.html");
    REQUIRE(first);
    CHECK(first->status == 200);
    CHECK(first->body == "hello\n");
    json serving = FunctionStatus(client, "site");
    CHECK(serving["containers"]["ready"] == 1);
    // Idle past the scaledown window (3 s): back to zero.
    CHECK(WaitForStatus(
        client, "site", [](const json& status) { return Containers(status) == 0; }, 20s));
    json idle = FunctionStatus(client, "site");
    CHECK(idle["scaling_reason"].get<std::string>().find("idle") != std::string::npos);
    // And a second cold start works as the first did.
    auto again = anonymous.Get("/apps/demo/site/");
    REQUIRE(again);
    CHECK(again->status == 200);
    CHECK(again->body == "hello\n");
  }

  SECTION("the prefix is stripped, X-Forwarded headers are set, bodies pass both ways") {
    auto echoed = anonymous.Post("/apps/demo/site/cgi-bin/env?x=1", "ping", "text/plain");
    REQUIRE(echoed);
    INFO(echoed->body);
    CHECK(echoed->status == 200);
    CHECK(echoed->body.find("uri=/cgi-bin/env?x=1\n") != std::string::npos);
    CHECK(echoed->body.find("method=POST\n") != std::string::npos);
    CHECK(echoed->body.find("prefix=/apps/demo/site\n") != std::string::npos);
    CHECK(echoed->body.find("for=127.0.0.1\n") != std::string::npos);
    CHECK(echoed->body.find("proto=http\n") != std::string::npos);
    CHECK(echoed->body.find("body=ping\n") != std::string::npos);
    // A body larger than the sockets' buffers goes in pieces, as the
    // container reads it.
    std::string large(12 << 20, '\0');
    for (std::size_t i = 0; i < large.size(); ++i) large[i] = static_cast<char>(i * 7919 % 251);
    auto summed = anonymous.Post("/apps/demo/site/cgi-bin/sum", large, "application/octet-stream");
    REQUIRE(summed);
    CHECK(summed->status == 200);
    CHECK(summed->body == std::to_string(large.size()) + " " + core::Sha256Digest(large) + "\n");
    // No byte past the container's Content-Length reaches the client's connection.
    auto overlong = anonymous.Get("/apps/demo/site/cgi-bin/framed?3-hello.and.a.second.response");
    REQUIRE(overlong);
    CHECK(overlong->body == "hel");
    auto missing = anonymous.Get("/apps/demo/site/no-such-file");
    REQUIRE(missing);
    CHECK(missing->status == 404);  // the container's own answer, relayed
  }

  SECTION("web functions are served by host name under --web-domain, and only functions") {
    // The first request to FUNCTION.APP.DOMAIN is a cold start, as on the path.
    CHECK(Containers(FunctionStatus(client, "site")) == 0);
    auto first = anonymous.Get("/index.html", {{"Host", "site.demo.fn.test"}});
    REQUIRE(first);
    CHECK(first->status == 200);
    CHECK(first->body == "hello\n");
    CHECK(FunctionStatus(client, "site")["containers"]["ready"] == 1);
    // Any case, with a port: the whole path goes, no prefix, X-Forwarded-Host set.
    auto echoed = anonymous.Post("/cgi-bin/env?x=1", {{"Host", "Site.DEMO.fn.test:8080"}}, "ping",
                                 "text/plain");
    REQUIRE(echoed);
    INFO(echoed->body);
    CHECK(echoed->status == 200);
    CHECK(echoed->body.find("uri=/cgi-bin/env?x=1\n") != std::string::npos);
    CHECK(echoed->body.find("prefix=\n") != std::string::npos);
    CHECK(echoed->body.find("host=Site.DEMO.fn.test:8080\n") != std::string::npos);
    CHECK(echoed->body.find("body=ping\n") != std::string::npos);
    // The function's auth, as on the path; the agent's token stays with the agent.
    auto refused = anonymous.Get("/", {{"Host", "private.demo.fn.test"}});
    REQUIRE(refused);
    CHECK(refused->status == 401);
    auto allowed = client.Get("/cgi-bin/env", {{"Host", "private.demo.fn.test"}});
    REQUIRE(allowed);
    CHECK(allowed->status == 200);
    CHECK(allowed->body.find(agent.token()) == std::string::npos);
    // Names under the domain that are no web function here: 404 JSON, even
    // with the token and at an API route.
    for (const std::string host : {"nope.demo.fn.test", "job.demo.fn.test", "demo.fn.test",
                                   "x.site.demo.fn.test", ".demo.fn.test"}) {
      INFO(host);
      auto missing = client.Get("/v1/status", {{"Host", host}});
      REQUIRE(missing);
      CHECK(missing->status == 404);
      CHECK(Body(missing)["error"]["code"] == "not-found");
    }
    // Every path of a function's name is the function's, the API's too: the
    // container answers, not the agent.
    for (const std::string path : {"/v1/status", "/healthz", "/metrics"}) {
      INFO(path);
      auto shadowed = client.Get(path, {{"Host", "site.demo.fn.test"}});
      REQUIRE(shadowed);
      CHECK(shadowed->status == 404);  // busybox httpd's own answer
      CHECK(shadowed->body.find("\"apps\"") == std::string::npos);
      CHECK(shadowed->body.find("\"ok\"") == std::string::npos);
    }
    // The agent's own address, and the domain itself, are the API's: its
    // routes need the token there, and no function takes /v1 or /healthz.
    for (const std::string host : {"", "fn.test", "FN.test:1"}) {
      INFO(host);
      httplib::Headers headers;
      if (!host.empty()) headers.emplace("Host", host);
      CHECK(anonymous.Get("/v1/status", headers)->status == 401);
      CHECK(Body(client.Get("/v1/status", headers))["apps"].contains("demo"));
      CHECK(Body(anonymous.Get("/healthz", headers))["ok"] == true);
      CHECK(anonymous.Get("/apps/-host", headers)->status == 404);
      CHECK(anonymous.Get("/apps/demo/site/", headers)->body == "hello\n");
    }
  }

  SECTION("endpoints with auth refuse callers without the token or key") {
    auto refused = anonymous.Get("/apps/demo/private/");
    REQUIRE(refused);
    CHECK(refused->status == 401);
    CHECK(refused->body.find("unauthorized") != std::string::npos);
    auto allowed = client.Get("/apps/demo/private/cgi-bin/env");
    REQUIRE(allowed);
    CHECK(allowed->status == 200);
    // The agent's token stays with the agent.
    CHECK(allowed->body.find("auth=\n") != std::string::npos);
    CHECK(allowed->body.find(agent.token()) == std::string::npos);

    CHECK(client.Get("/apps/demo/keyed/")->status == 401);  // the token is not the key
    httplib::Client keyed = agent.Client(false);
    keyed.set_bearer_token_auth(key.c_str());
    auto with_key = keyed.Get("/apps/demo/keyed/");
    REQUIRE(with_key);
    CHECK(with_key->status == 200);
    httplib::Client wrong = agent.Client(false);
    wrong.set_bearer_token_auth("the-app-key-0043");
    CHECK(wrong.Get("/apps/demo/keyed/")->status == 401);

    // Refused before its body is read, a large upload still gets its 401:
    // the router takes and drops the body before the connection ends,
    // rather than reset it, and the answer with it, under the client.
    const int port = agent.port();
    auto upload = tests::ConnectLoopback(port);
    REQUIRE(upload.valid());
    const std::string body(8 << 20, 'u');
    CHECK(tests::SendAll(upload.get(),
                         "POST /apps/demo/private/cgi-bin/sum HTTP/1.1\r\n"
                         "Content-Length: " +
                             std::to_string(body.size()) + "\r\n\r\n" + body));
    std::string answer = tests::ReadUntil(upload.get(), "\"}}\n");
    INFO(answer);
    CHECK(answer.starts_with("HTTP/1.1 401 Unauthorized\r\n"));
    CHECK(answer.find("Connection: close\r\n") != std::string::npos);
    CHECK(answer.find("this endpoint needs the agent's token") != std::string::npos);
    CHECK(tests::ReadAtEnd(upload.get(), 2s) == 0);
  }

  SECTION("a streamed response arrives piece by piece") {
    std::vector<std::string> pieces;
    auto streamed =
        anonymous.Get("/apps/demo/site/cgi-bin/stream", [&](const char* data, std::size_t length) {
          pieces.emplace_back(data, length);
          return true;
        });
    REQUIRE(streamed);
    CHECK(streamed->status == 200);
    CHECK(streamed->get_header_value("Content-Type") == "text/event-stream");
    std::string all;
    for (const std::string& piece : pieces) all += piece;
    CHECK(all == "data: tick 1\n\ndata: tick 2\n\ndata: tick 3\n\n");
    // The first piece came before the script wrote the second tick.
    REQUIRE(pieces.size() >= 2);
    CHECK(pieces.front().find("tick 2") == std::string::npos);
  }

  SECTION("the router speaks HTTP/1.1 itself: keep-alive, HEAD, chunked and 100-continue bodies") {
    const int port = agent.port();
    // Two requests to a function and one to the API, pipelined on one
    // connection, answered in order; the connection stays open.
    auto kept = tests::ConnectLoopback(port);
    REQUIRE(kept.valid());
    // `requests`, then GET /healthz, pipelined: all that came up to its answer.
    auto pipelined = [&](const std::string& requests) {
      REQUIRE(tests::SendAll(kept.get(), requests + "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"));
      return tests::ReadUntil(kept.get(), "\"ok\"");
    };
    std::string answers = pipelined(
        "GET /apps/demo/site/index.html HTTP/1.1\r\nHost: a\r\n\r\n"
        "HEAD /apps/demo/site/index.html HTTP/1.1\r\nHost: a\r\n\r\n");
    INFO(answers);
    std::size_t head = answers.find("HTTP/1.1 200 OK\r\n");
    std::size_t hello = answers.find("\r\n\r\nhello\n");
    std::size_t head_of_head = answers.find("HTTP/1.1 200 OK\r\n", hello);
    std::size_t health = answers.find("HTTP/1.1 200 OK\r\n", head_of_head + 1);
    CHECK(head == 0);
    CHECK(hello != std::string::npos);
    REQUIRE(head_of_head != std::string::npos);
    REQUIRE(health != std::string::npos);
    // HEAD: the length its GET would have, and no body.
    std::string_view head_answer(answers.data() + head_of_head, health - head_of_head);
    CHECK(head_answer.find("Content-Length: 6\r\n") != std::string_view::npos);
    CHECK(head_answer.ends_with("\r\n\r\n"));
    CHECK(answers.find("Connection: close") == std::string::npos);
    // A HEAD's error has no body either: the next answer follows its head.
    std::string refused = pipelined("HEAD /apps/demo/nope/ HTTP/1.1\r\nHost: a\r\n\r\n");
    INFO(refused);
    CHECK(refused.starts_with("HTTP/1.1 404 "));
    CHECK(refused.find("Content-Type: application/json\r\n") != std::string::npos);
    CHECK(refused.find("\r\n\r\nHTTP/1.1 200 OK\r\n") != std::string::npos);
    CHECK(refused.find("{\"error\"") == std::string::npos);
    REQUIRE(tests::SendAll(kept.get(), "GET /apps/demo/site/ HTTP/1.1\r\nHost: a\r\n\r\n"));
    CHECK(tests::ReadUntil(kept.get(), "hello\n").ends_with("\r\n\r\nhello\n"));

    // A chunked body is decoded and sent with its length; a response of no
    // length (busybox's CGI) comes back chunked.
    REQUIRE(
        tests::SendAll(kept.get(),
                       "POST /apps/demo/site/cgi-bin/env HTTP/1.1\r\nHost: a\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n2\r\npi\r\n2;x=y\r\nng\r\n0\r\n\r\n"));
    std::string chunked = tests::ReadUntil(kept.get(), "\r\n0\r\n\r\n");
    INFO(chunked);
    CHECK(chunked.starts_with("HTTP/1.1 200 OK\r\n"));
    CHECK(chunked.find("Transfer-Encoding: chunked\r\n") != std::string::npos);
    CHECK(chunked.find("body=ping\n") != std::string::npos);

    // Requests pipelined behind bodies the router reads itself (of a length,
    // chunked) are read from where each body ends.
    std::string sums = pipelined(
        "POST /apps/demo/site/cgi-bin/sum HTTP/1.1\r\nHost: a\r\n"
        "Content-Length: 4\r\n\r\nping"
        "POST /apps/demo/site/cgi-bin/sum HTTP/1.1\r\nHost: a\r\n"
        "Transfer-Encoding: chunked\r\n\r\n3\r\npon\r\n1\r\ng\r\n0\r\n\r\n");
    INFO(sums);
    std::size_t ping = sums.find("4 " + core::Sha256Digest("ping") + "\n");
    std::size_t pong = sums.find("4 " + core::Sha256Digest("pong") + "\n");
    CHECK(ping != std::string::npos);
    CHECK(pong != std::string::npos);
    CHECK(pong > ping);

    // A 204 and a 304 have no body: the connection goes on after their heads.
    std::string empty = pipelined(
        "GET /apps/demo/site/cgi-bin/nothing HTTP/1.1\r\nHost: a\r\n\r\n"
        "GET /apps/demo/site/cgi-bin/unchanged HTTP/1.1\r\nHost: a\r\n\r\n");
    INFO(empty);
    std::size_t no_content = empty.find("HTTP/1.1 204 No Content\r\n");
    std::size_t not_modified = empty.find("HTTP/1.1 304 Not Modified\r\n");
    REQUIRE(no_content == 0);
    REQUIRE(not_modified != std::string::npos);
    std::string_view first(empty.data(), not_modified);
    CHECK(first.ends_with("\r\n\r\n"));
    CHECK(first.find("Content-Length") == std::string_view::npos);
    CHECK(first.find("Transfer-Encoding") == std::string_view::npos);
    CHECK(empty.find("ETag: \"v1\"\r\n", not_modified) != std::string::npos);
    CHECK(empty.find("HTTP/1.1 200 OK\r\n", not_modified) != std::string::npos);

    // Expect: 100-continue: the body is sent once the router says so.
    REQUIRE(tests::SendAll(kept.get(),
                           "POST /apps/demo/site/cgi-bin/env HTTP/1.1\r\nHost: a\r\n"
                           "Content-Length: 4\r\nExpect: 100-continue\r\n\r\n"));
    CHECK(tests::ReadUntil(kept.get(), "\r\n\r\n") == "HTTP/1.1 100 Continue\r\n\r\n");
    REQUIRE(tests::SendAll(kept.get(), "pong"));
    std::string continued = tests::ReadUntil(kept.get(), "\r\n0\r\n\r\n");
    INFO(continued);
    CHECK(continued.find("body=pong\n") != std::string::npos);

    // HTTP/1.0 without keep-alive: a body of no length ends with the connection.
    auto old = tests::ConnectLoopback(port);
    REQUIRE(old.valid());
    REQUIRE(tests::SendAll(old.get(), "GET /apps/demo/site/cgi-bin/env HTTP/1.0\r\n\r\n"));
    std::string closed = tests::ReadUntil(old.get(), "body=\n");
    INFO(closed);
    CHECK(closed.starts_with("HTTP/1.1 200 OK\r\n"));
    CHECK(closed.find("Connection: close\r\n") != std::string::npos);
    CHECK(closed.find("Transfer-Encoding") == std::string::npos);
    CHECK(tests::ReadAtEnd(old.get(), 2s) == 0);

    // HTTP/1.0 with keep-alive: a body of a length, and the connection kept.
    auto old_kept = tests::ConnectLoopback(port);
    REQUIRE(old_kept.valid());
    const std::string again =
        "GET /apps/demo/site/index.html HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    REQUIRE(tests::SendAll(old_kept.get(), again));
    std::string first_answer = tests::ReadUntil(old_kept.get(), "hello\n");
    INFO(first_answer);
    CHECK(first_answer.find("Connection: keep-alive\r\n") != std::string::npos);
    CHECK(first_answer.find("Content-Length: 6\r\n") != std::string::npos);
    REQUIRE(tests::SendAll(old_kept.get(), again));
    CHECK(tests::ReadUntil(old_kept.get(), "hello\n").ends_with("\r\n\r\nhello\n"));

    // A body the container cuts short is cut short for the client: its
    // connection ends before the length it was told.
    auto cut = tests::ConnectLoopback(port);
    REQUIRE(cut.valid());
    REQUIRE(
        tests::SendAll(cut.get(), "GET /apps/demo/site/cgi-bin/framed?100-cut HTTP/1.1\r\n\r\n"));
    std::string short_answer = tests::ReadUntil(cut.get(), "\r\n\r\ncut");
    INFO(short_answer);
    CHECK(short_answer.find("Content-Length: 100\r\n") != std::string::npos);
    CHECK(tests::ReadAtEnd(cut.get(), 2s) == 0);
  }

  SECTION("a request head or body the router must not take gets a clear error, and no container") {
    const int port = agent.port();
    const std::string big(6 << 10, 'x');
    struct Refusal {
      std::string request, status, message;
      bool ends = true;  // the connection: what follows the head is no next request
    };
    for (const Refusal& bad : std::vector<Refusal>{
             {"POST /apps/demo/site/ HTTP/1.1\r\nContent-Length: 4\r\n"
              "Transfer-Encoding: chunked\r\n\r\n",
              "400", "both Transfer-Encoding and Content-Length"},
             {"POST /apps/demo/site/ HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", "400",
              "a transfer coding other than chunked"},
             {"POST /apps/demo/site/ HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n",
              "400", "a bad Content-Length"},
             {"GET /apps/demo/site/ HTTP/1.1\r\nHost : a\r\n\r\n", "400",
              "a header with a bad name"},
             {"GET /apps/demo/site/ HTTP/1.1\r\nX-A: 1\r\n 2\r\n\r\n", "400",
              "a folded header line"},
             {"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "400", "not HTTP/1.0 or HTTP/1.1"},
             {"GET /v1/status HTTP/1.1\r\nBad Name: x\r\n\r\n", "400", "a header with a bad name"},
             {"TRACE /apps/demo/site/ HTTP/1.1\r\n\r\n", "405", "a web function takes GET", false},
             {"POST /apps/demo/site/cgi-bin/sum HTTP/1.1\r\nContent-Length: 16777217\r\n\r\n",
              "413", "the request body is larger than 16777216 bytes"},
             {"POST /apps/demo/site/cgi-bin/sum HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
              "zz\r\n",
              "400", "a chunked body: a bad chunk size"},
             {"GET /apps/demo/site/ HTTP/1.1\r\nA: " + big + "\r\nB: " + big + "\r\nC: " + big +
                  "\r\n\r\n",
              "431", "the request's head is longer than 16 KiB", false},
             {"GET /v1/status HTTP/1.1\r\nHost: site.demo.fn.test\r\nA: " + big + "\r\nB: " + big +
                  "\r\nC: " + big + "\r\n\r\n",
              "431", "the request's head is longer than 16 KiB", false},
             {"POST /apps/demo/site/ HTTP/1.1\r\nContent-Length: \r\n\r\n", "400",
              "a bad Content-Length"},
             {"POST /apps/demo/site/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
              "400", "Transfer-Encoding in HTTP/1.0"},
             {"GET http://site.demo.fn.test/ HTTP/1.1\r\nHost: site.demo.fn.test\r\n\r\n", "400",
              "the request's target must be a path beginning with /", false},
             {"GET /apps/Demo/site/ HTTP/1.1\r\n\r\n", "404", "no such route", false},
             // Its head ends at its first empty line, however the lines end.
             {"GET /apps/demo/nope/ HTTP/1.1\nHost: a\n\r\n", "404",
              "no web function demo/nope on this host", false},
         }) {
      INFO(bad.request.substr(0, 120));
      auto connection = tests::ConnectLoopback(port);
      REQUIRE(connection.valid());
      REQUIRE(tests::SendAll(connection.get(), bad.request));
      std::string answer = tests::ReadUntil(connection.get(), "\"}}\n");
      INFO(answer);
      CHECK(answer.starts_with("HTTP/1.1 " + bad.status + " "));
      CHECK(answer.find("application/json") != std::string::npos);
      CHECK(answer.find(bad.message) != std::string::npos);
      if (bad.ends) {  // at once, not at the keep-alive timeout
        CHECK(tests::ReadAtEnd(connection.get(), 2s) == 0);
      } else {  // a head read whole, and no body: the connection serves on
        REQUIRE(tests::SendAll(connection.get(), "GET /healthz HTTP/1.1\r\n\r\n"));
        CHECK(tests::ReadUntil(connection.get(), "\"ok\"").find("200 OK") != std::string::npos);
      }
    }
    // None of them reached a container, nor started one.
    json site = FunctionStatus(client, "site");
    CHECK(Containers(site) == 0);
    CHECK(site["desired_containers"] == 0);
  }

  SECTION("a burst scales up to max_containers and no further, one input each") {
    std::atomic<int> most_containers = 0;
    std::atomic<bool> bursting = true;
    std::thread watcher([&] {
      auto watch = agent.Client();
      while (bursting) {
        int now = Containers(FunctionStatus(watch, "busy"));
        most_containers = std::max(most_containers.load(), now);
        std::this_thread::sleep_for(50ms);
      }
    });
    constexpr int kRequests = 6;
    std::vector<std::string> answers(kRequests);
    std::vector<std::thread> callers;
    for (int i = 0; i < kRequests; ++i) {
      callers.emplace_back([&, i] {
        answers[i] = Summary(agent.Client(false).Get("/apps/demo/busy/cgi-bin/slow"));
      });
    }
    for (std::thread& caller : callers) caller.join();
    bursting = false;
    watcher.join();
    std::set<std::string> hosts;
    for (const std::string& answer : answers) {
      INFO(answer);
      CHECK(answer.starts_with("200 concurrent=1 "));
      hosts.insert(answer.substr(answer.find("host=")));
    }
    CHECK(hosts.size() == 2);  // both containers served
    CHECK(most_containers.load() == 2);
  }

  SECTION("requests go to the ready container with the fewest in flight, up to max_inputs") {
    REQUIRE(WaitForStatus(
        client, "pair", [](const json& status) { return status["containers"]["ready"] == 2; },
        20s));
    // One, then another while it runs: the idle container takes the second,
    // where the first free one (max_inputs 2 lets it) would take both.
    std::vector<std::string> answers(2);
    std::thread first(
        [&] { answers[0] = Summary(agent.Client(false).Get("/apps/demo/pair/cgi-bin/slow?2")); });
    CHECK(WaitForInFlight(client, "pair", 1));
    answers[1] = Summary(agent.Client(false).Get("/apps/demo/pair/cgi-bin/slow?2"));
    first.join();
    for (const std::string& answer : answers) {
      INFO(answer);
      CHECK(answer.starts_with("200 concurrent=1 host="));
    }
    CHECK(answers[0].substr(answers[0].find("host=")) !=
          answers[1].substr(answers[1].find("host=")));

    // Five at once: two in each container, the fifth waits for an input.
    constexpr int kRequests = 5;
    answers.assign(kRequests, "");
    std::vector<std::thread> callers;
    for (int i = 0; i < kRequests; ++i) {
      callers.emplace_back([&, i] {
        answers[i] = Summary(agent.Client(false).Get("/apps/demo/pair/cgi-bin/slow?2"));
      });
    }
    const bool one_queued = WaitForStatus(
        client, "pair",
        [](const json& status) {
          return status["in_flight_requests"] == 4 && status["queued_requests"] == 1;
        },
        10s);
    for (std::thread& caller : callers) caller.join();
    CHECK(one_queued);
    std::map<std::string, int> most;  // host: the most its container ran at once
    for (const std::string& answer : answers) {
      INFO(answer);
      REQUIRE(answer.starts_with("200 concurrent="));
      const int concurrent = std::stoi(answer.substr(answer.find('=') + 1));
      CHECK(concurrent <= 2);
      int& seen = most[answer.substr(answer.find("host="))];
      seen = std::max(seen, concurrent);
    }
    CHECK(most.size() == 2);
    for (const auto& [host, concurrent] : most) CHECK(concurrent == 2);
  }

  SECTION("a draining container still serving is taken back before a new one starts") {
    // Three short requests at two inputs each: two containers.
    std::vector<std::thread> callers;
    for (int i = 0; i < 3; ++i)
      callers.emplace_back([&] { agent.Client(false).Get("/apps/demo/surge/cgi-bin/slow?1"); });
    for (std::thread& caller : callers) caller.join();
    callers.clear();
    // One long request in each (the second goes to the idle one): two
    // requests need one container, so one drains, its request still running.
    std::vector<std::string> long_answers(2);
    for (int i = 0; i < 2; ++i) {
      callers.emplace_back([&, i] {
        long_answers[i] = Summary(agent.Client(false).Get("/apps/demo/surge/cgi-bin/slow?10"));
      });
      CHECK(WaitForInFlight(client, "surge", i + 1));
    }
    auto ids = [](const json& status) {
      std::set<std::string> ids;
      for (const json& container : status["container_list"]) ids.insert(container["id"]);
      return ids;
    };
    json draining;
    CHECK(WaitForStatus(
        client, "surge",
        [&](const json& status) {
          draining = status;
          return status["containers"]["draining"] == 1 && status["containers"]["ready"] == 1;
        },
        10s));
    // Two more at once: one fills the serving container, the other waits,
    // and four need two containers again. The draining one comes back, takes
    // the waiting request at once, and no third container starts.
    for (int i = 0; i < 2; ++i)
      callers.emplace_back([&] { agent.Client(false).Get("/apps/demo/surge/cgi-bin/slow?4"); });
    json taken_back;
    CHECK(WaitForStatus(
        client, "surge",
        [&](const json& status) {
          taken_back = status;
          return status["containers"]["ready"] == 2 && status["containers"]["draining"] == 0 &&
                 status["in_flight_requests"] == 4 && status["queued_requests"] == 0;
        },
        3s));  // the two short ones run for 4 s: none has freed an input yet
    INFO(draining.dump() << "\n" << taken_back.dump());
    CHECK(ids(taken_back) == ids(draining));
    for (std::thread& caller : callers) caller.join();
    for (const std::string& answer : long_answers) CHECK(answer.starts_with("200 concurrent="));
  }

  SECTION("a request beyond web.max_queued is refused at once; the queued one is served") {
    REQUIRE(anonymous.Get("/apps/demo/queued/index.html")->status == 200);  // started
    // Its one input held, one request waiting for it: a third has no room.
    std::string held, waited;
    std::thread holder(
        [&] { held = Summary(agent.Client(false).Get("/apps/demo/queued/cgi-bin/slow?3")); });
    const bool holding = WaitForInFlight(client, "queued", 1);
    std::thread waiter(
        [&] { waited = Summary(agent.Client(false).Get("/apps/demo/queued/index.html")); });
    const bool waiting = WaitForStatus(
        client, "queued", [](const json& status) { return status["queued_requests"] == 1; }, 10s);
    auto refused = anonymous.Get("/apps/demo/queued/index.html");
    holder.join();
    waiter.join();
    CHECK(holding);
    CHECK(waiting);
    REQUIRE(refused);
    CHECK(refused->status == 503);
    CHECK(Body(refused)["error"]["message"] == "too many requests waiting (1)");
    CHECK(held.starts_with("200 concurrent=1 "));
    CHECK(waited == "200 hello\n");
  }

  SECTION("with web.max_queued 0 a request with no free input is refused, and starts a container") {
    auto refused = anonymous.Get("/apps/demo/unqueued/index.html");
    REQUIRE(refused);
    CHECK(refused->status == 503);
    CHECK(Body(refused)["error"]["message"] == "too many requests waiting (0)");
    // Demand all the same: a container starts for the requests that come back.
    CHECK(WaitForStatus(
        client, "unqueued", [](const json& status) { return status["containers"]["ready"] == 1; },
        30s));
    auto served = anonymous.Get("/apps/demo/unqueued/index.html");
    REQUIRE(served);
    CHECK(served->status == 200);
    CHECK(served->body == "hello\n");
  }

  SECTION("a request whose client goes while it waits leaves the queue, and no container runs it") {
    REQUIRE(anonymous.Get("/apps/demo/queued/index.html")->status == 200);  // started
    std::string held;
    std::thread holder(
        [&] { held = Summary(agent.Client(false).Get("/apps/demo/queued/cgi-bin/slow?4")); });
    const bool holding = WaitForInFlight(client, "queued", 1);
    core::UniqueFd leaving = tests::ConnectLoopback(agent.port());
    REQUIRE(tests::SendAll(leaving.get(),
                           "GET /apps/demo/queued/cgi-bin/count HTTP/1.1\r\nHost: a\r\n\r\n"));
    const bool waiting = WaitForStatus(
        client, "queued", [](const json& status) { return status["queued_requests"] == 1; }, 10s);
    leaving.Reset();
    // Out of the queue at its next look, while the input is still held.
    const bool left = WaitForStatus(
        client, "queued",
        [](const json& status) {
          return status["queued_requests"] == 0 && status["in_flight_requests"] == 1;
        },
        2s);
    // Its place in the queue (max_queued 1) is free for the next request.
    std::string waited;
    std::thread waiter(
        [&] { waited = Summary(agent.Client(false).Get("/apps/demo/queued/cgi-bin/count")); });
    holder.join();
    waiter.join();
    CHECK(holding);
    CHECK(waiting);
    CHECK(left);
    CHECK(held.starts_with("200 concurrent=1 "));
    CHECK(waited == "200 calls=1\n");  // the first call of count: the abandoned one never ran
  }

  SECTION("a container is ready when its health_path answers; web.port_env names its port") {
    // It listens at once, on $HTTP_PORT: only its health path holds the
    // first request back until the page is there.
    auto first = anonymous.Get("/apps/demo/late/index.html");
    REQUIRE(first);
    CHECK(first->status == 200);
    CHECK(first->body == "ready\n");
    CHECK(FunctionStatus(client, "late")["containers"]["ready"] == 1);
  }

  SECTION("a container replaced by a new generation finishes its request before it stops") {
    REQUIRE(anonymous.Get("/apps/demo/site/index.html")->status == 200);
    std::string held;
    std::thread holder(
        [&] { held = Summary(agent.Client(false).Get("/apps/demo/site/cgi-bin/slow?3")); });
    const bool holding = WaitForInFlight(client, "site", 1);
    // A new generation changes the function: its container is replaced.
    json changed = desired;
    changed["generation"] = 2;
    changed["apps"]["demo"]["functions"]["site"]["env"] = {{"GENERATION", "2"}};
    auto reapplied = client.Put("/v1/desired", changed.dump(), "application/json");
    const json during = FunctionStatus(client, "site");
    holder.join();
    CHECK(holding);
    REQUIRE(reapplied);
    CHECK(reapplied->status == 200);
    INFO(during.dump());
    // The old container is draining while its request runs (its state in
    // the list: the new generation's serving does not hold it).
    CHECK(std::any_of(during["container_list"].begin(), during["container_list"].end(),
                      [](const json& container) { return container["state"] == "draining"; }));
    INFO(held);
    CHECK(held.starts_with("200 concurrent=1 host="));
    // The next request is the new container's.
    const std::string next = Summary(anonymous.Get("/apps/demo/site/cgi-bin/slow?0"));
    INFO(next);
    CHECK(next.starts_with("200 concurrent=1 host="));
    CHECK(next.substr(next.find("host=")) != held.substr(held.find("host=")));
  }

  SECTION("min_containers stays warm without requests, past the scaledown window") {
    CHECK(WaitForStatus(
        client, "warm", [](const json& status) { return status["containers"]["ready"] == 1; },
        20s));
    std::this_thread::sleep_for(1500ms);  // three scaledown windows
    json warm = FunctionStatus(client, "warm");
    CHECK(warm["containers"]["ready"] == 1);
    CHECK(warm["scaling_reason"].get<std::string>().find("min_containers") != std::string::npos);
  }

  SECTION("a container that keeps failing is a crash loop: 503s that say so") {
    auto refused = anonymous.Get("/apps/demo/broken/");
    REQUIRE(refused);
    CHECK(refused->status == 503);
    json error = json::parse(refused->body)["error"];
    CHECK(error["code"] == "unavailable");
    CHECK(error["message"].get<std::string>().find("exited with code 7") != std::string::npos);
    json status = FunctionStatus(client, "broken");
    REQUIRE(status.contains("crash_loop"));
    CHECK(status["crash_loop"]["crashes"].get<int>() >= 1);
    // Its output reached the function's log.
    auto logs = client.Get("/v1/logs?app=demo&function=broken");
    REQUIRE(logs);
    CHECK(logs->body.find("dying") != std::string::npos);
  }

  SECTION("a request that finds no ready container in time gets a 503, never the container") {
    auto refused = anonymous.Get("/apps/demo/silent/");
    REQUIRE(refused);
    CHECK(refused->status == 503);
    CHECK(refused->body.find("was ready within 500 ms") != std::string::npos);
  }

  SECTION("a response head that is not HTTP's is a 502 that says why, in the agent's log too") {
    auto garbled = anonymous.Get("/apps/demo/site/cgi-bin/garbled");
    REQUIRE(garbled);
    CHECK(garbled->status == 502);
    const json error = Body(garbled);
    INFO(garbled->body);
    CHECK(error["error"]["code"] == "bad-gateway");
    CHECK(error["error"]["message"] == "the web container's response: a bad status code");
    CHECK(agent.Log().find("app demo: 502 bad-gateway: the web container's response: a bad "
                           "status code") != std::string::npos);
    // The container is still served from.
    auto next = anonymous.Get("/apps/demo/site/index.html");
    REQUIRE(next);
    CHECK(next->status == 200);
  }

  SECTION("a container silent for its function's timeout: a 504, or its stream cut short") {
    auto late = anonymous.Get("/apps/demo/hasty/cgi-bin/slow?5");
    REQUIRE(late);
    CHECK(late->status == 504);
    CHECK(late->body.find("the container sent no response within 1000 ms") != std::string::npos);
    // And the agent's log says so, as nginx's error log would.
    CHECK(agent.Log().find("app demo: 504 gateway-timeout: ") != std::string::npos);
    // Within the timeout, the next request of the same container is served.
    auto timely = anonymous.Get("/apps/demo/hasty/index.html");
    REQUIRE(timely);
    CHECK(timely->status == 200);

    // A stream's pause longer than the timeout ends it, without its end.
    core::UniqueFd stream = tests::ConnectLoopback(agent.port());
    REQUIRE(tests::SendAll(stream.get(),
                           "GET /apps/demo/hasty/cgi-bin/stream?5 HTTP/1.1\r\nHost: a\r\n\r\n"));
    std::string received = tests::ReadUntil(stream.get(), "\r\n0\r\n\r\n");  // or its end
    INFO(received);
    CHECK(received.find("Transfer-Encoding: chunked") != std::string::npos);
    CHECK(received.find("tick 1") != std::string::npos);
    CHECK(received.find("\r\n0\r\n\r\n") == std::string::npos);
    CHECK(tests::ReadAtEnd(stream.get(), 10s) == 0);
  }

  SECTION("a client that leaves a stream gives its container's input back at once") {
    // One container of one input: while the stream held it, the next
    // request would wait for its minute, and get a 503 after 10 s.
    core::UniqueFd stream = tests::ConnectLoopback(agent.port());
    REQUIRE(tests::SendAll(stream.get(),
                           "GET /apps/demo/single/cgi-bin/stream?60 HTTP/1.1\r\nHost: a\r\n\r\n"));
    CHECK(tests::ReadUntil(stream.get(), "tick 1").find("tick 1") != std::string::npos);
    stream.Reset();
    auto next = anonymous.Get("/apps/demo/single/index.html");
    REQUIRE(next);
    CHECK(next->status == 200);
    CHECK(next->body == "hello\n");
  }

  SECTION("jobs and unknown functions are not endpoints; web functions take no calls") {
    CHECK(anonymous.Get("/apps/demo/job/")->status == 404);
    CHECK(anonymous.Get("/apps/demo/nope/")->status == 404);
    CHECK(anonymous.Get("/apps/other/site/")->status == 404);
    auto call = client.Post("/v1/apps/demo/functions/site/calls", "{}", "application/json");
    REQUIRE(call);
    CHECK(call->status == 409);
    CHECK(call->body.find("is a web function") != std::string::npos);
  }

  // An orderly stop leaves no container behind, whatever each section started.
  REQUIRE(agent.Kill(SIGTERM).ok());
  std::vector<std::string> left;
  for (const auto& entry : fs::directory_iterator(dir.path() / "agent" / "containers"))
    left.push_back(entry.path().filename());
  INFO(agent.Log());
  CHECK(left.empty());
}

TEST_CASE(
    "gantry agent refuses a --web-domain that is not a DNS name or is over its own name, before it "
    "makes anything",
    "[serving]") {
  tests::TempDir dir("gantry-web-domain-test");
  for (const std::string domain : {"Fn.test", "fn..test", ".fn.test", "fn_test", "-fn.test"}) {
    INFO(domain);
    auto refused = tests::RunGantry({"agent", "--listen", "127.0.0.1:0", "--data-dir",
                                     (dir.path() / "agent").string(), "--web-domain", domain});
    CHECK(refused.exit_code != 0);
    CHECK(refused.err.find("--web-domain: expected a DNS name in lower case") != std::string::npos);
    CHECK(std::count(refused.err.begin(), refused.err.end(), '\n') == 1);
    CHECK(!fs::exists(dir.path() / "agent"));
  }
  // A domain the agent's own name is under: requests to that name would
  // all go to functions, and its API would be unreachable by it.
  for (const std::string listen : {"gpu1.fn.test:0", "GPU1.Fn.Test.:0"}) {
    INFO(listen);
    auto refused = tests::RunGantry({"agent", "--listen", listen, "--data-dir",
                                     (dir.path() / "agent").string(), "--web-domain", "fn.test"});
    CHECK(refused.exit_code != 0);
    CHECK(refused.err.find("--web-domain: this agent's own name " +
                           listen.substr(0, listen.size() - 2) + " is under fn.test") !=
          std::string::npos);
    CHECK(std::count(refused.err.begin(), refused.err.end(), '\n') == 1);
    CHECK(!fs::exists(dir.path() / "agent"));
  }
}

TEST_CASE(
    "scheduled jobs fire on the agent, and a restart neither repeats nor silently loses a run",
    "[serving][schedule][runc]") {
  if (!tests::ContainersOrSkip()) return;
  tests::TempDir dir("gantry-schedule-test");
  fs::path store = dir.path() / "store";
  const std::string digest = tests::RequireBusyboxImage(dir.path(), store);
  auto started_agent = tests::RequireAgent(dir.path() / "agent", store, dir.path() / "agent.log");
  tests::AgentProcess& agent = *started_agent;
  auto client = agent.Client();
  // Each run writes the due time it is told first, so that a run the
  // agent's stop interrupts has written it too. Overlapping runs are
  // allowed: no run is skipped but those the restart skips.
  json desired = {
      {"generation", 1},
      {"apps",
       {{"demo",
         {{"volumes", {"out"}},
          {"functions",
           {{"ticker",
             {{"image", {{"digest", digest}}},
              {"command", {"/bin/sh", "-c", "echo \"$GANTRY_SCHEDULED_AT\" >> /out/ticks"}},
              {"volumes", {{"/out", "out"}}},
              {"schedule", {{"every_ms", 1000}, {"overlap", "allow"}}}}}}}}}}}};
  auto applied = client.Put("/v1/desired", desired.dump(), "application/json");
  REQUIRE(applied);
  REQUIRE(applied->status == 200);
  const fs::path ticks = dir.path() / "agent" / "volumes" / "demo" / "out" / "ticks";
  auto due_times = [&] {
    std::ifstream in(ticks);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  };
  auto wait_for_ticks = [&](std::size_t count) {
    for (int i = 0; i < 150 && due_times().size() < count; ++i) std::this_thread::sleep_for(100ms);
    return due_times().size();
  };
  INFO(agent.Log());
  REQUIRE(wait_for_ticks(2) >= 2);
  json status = FunctionStatus(client, "ticker");
  REQUIRE(status["schedule"].is_object());
  CHECK(status["schedule"]["last_call"].get<std::string>().starts_with("call-"));
  CHECK(status["schedule"].contains("next_fire"));

  // Stopped just after a run, for four seconds: at least three due times
  // pass. The newest runs on time, catch_up 1 runs the one before it (as
  // scheduler_test checks to the second), the others are skipped and counted.
  // Stopped in order, or killed: the due time and its call are one record.
  const int signal = GENERATE(SIGTERM, SIGKILL);
  INFO("stopped with signal " << signal);
  const std::size_t before = wait_for_ticks(due_times().size() + 1);
  REQUIRE(agent.Kill(signal).ok());
  std::this_thread::sleep_for(4s);
  REQUIRE(agent.Restart().ok());
  REQUIRE(wait_for_ticks(before + 3) >= before + 3);
  auto restarted = agent.Client();
  // Only the restart's first tick skips: skipped_runs is settled by now.
  const std::vector<std::string> lines = due_times();
  const json after = FunctionStatus(restarted, "ticker")["schedule"];
  INFO(after.dump());
  INFO(agent.Log());
  std::string all_lines;
  for (const std::string& line : lines) all_lines += line + " ";
  INFO(all_lines);
  std::vector<std::int64_t> seconds;  // the due times, Unix seconds
  for (const std::string& line : lines) {
    INFO(line);
    REQUIRE(std::regex_match(line, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00)")));
    auto due = core::ParseTimestamp(line, nullptr);
    REQUIRE(due.ok());
    seconds.push_back(
        std::chrono::duration_cast<std::chrono::seconds>(due->time_since_epoch()).count());
  }
  // No due time ran twice, before the stop or across it (in order of due
  // time: a run queued at the stop runs after the restart).
  std::sort(seconds.begin(), seconds.end());
  for (std::size_t i = 1; i < seconds.size(); ++i) CHECK(seconds[i] > seconds[i - 1]);
  // Each due time from the last run before the stop on either ran or is
  // counted as skipped: none lost without a word. Killed, a run may also
  // be a call the kill interrupted before its container wrote.
  std::int64_t missing = 0;
  for (std::size_t i = before; i < seconds.size(); ++i) missing += seconds[i] - seconds[i - 1] - 1;
  const auto skipped = after["skipped_runs"].get<std::int64_t>();
  if (signal == SIGTERM) {
    CHECK(missing == skipped);
  } else {
    const json calls = Body(restarted.Get("/v1/calls?app=demo"))["calls"];
    std::int64_t interrupted = 0;
    for (const json& call : calls) interrupted += call["state"] == "interrupted" ? 1 : 0;
    CHECK(missing >= skipped);
    CHECK(missing <= skipped + interrupted);
  }
  CHECK(skipped >= 1);  // the stop was long enough for catch_up 1 to skip some
}

TEST_CASE("a cron schedule fires once in each minute, on the minute, under a test clock",
          "[serving][schedule][runc]") {
  if (!tests::ContainersOrSkip()) return;
  tests::TempDir dir("gantry-cron-test");
  fs::path store = dir.path() / "store";
  const std::string digest = tests::RequireBusyboxImage(dir.path(), store);
  // libfaketime runs the agent's wall clock ten times as fast (its monotonic
  // clock as it is): "* * * * *" is due every six seconds.
  auto started_agent = tests::RequireAgent(
      dir.path() / "agent", store, dir.path() / "agent.log", {},
      {"LD_PRELOAD=" FAKETIME_LIBRARY, "FAKETIME=+0 x10", "FAKETIME_DONT_FAKE_MONOTONIC=1"});
  tests::AgentProcess& agent = *started_agent;
  auto client = agent.Client();
  json desired = {{"generation", 1},
                  {"apps",
                   {{"demo",
                     {{"functions",
                       {{"minutely",
                         {{"image", {{"digest", digest}}},
                          {"command", {"/bin/true"}},
                          {"schedule", {{"cron", "* * * * *"}, {"timezone", "UTC"}}}}}}}}}}}};
  auto applied = client.Put("/v1/desired", desired.dump(), "application/json");
  REQUIRE(applied);
  REQUIRE(applied->status == 200);
  INFO(agent.Log());
  // Each call's creation, on the agent's (fast) clock.
  std::vector<std::int64_t> created;
  for (int i = 0; i < 900 && created.size() < 4; ++i) {
    std::this_thread::sleep_for(100ms);
    created.clear();
    const json calls = Body(client.Get("/v1/calls?app=demo"));
    for (const json& call : calls["calls"])
      created.push_back(call["created_ms"].get<std::int64_t>());
  }
  REQUIRE(created.size() >= 4);
  std::sort(created.begin(), created.end());
  for (std::size_t i = 0; i < created.size(); ++i) {
    INFO("call " << i << " created at " << created[i] << " ms");
    // On the minute: the scheduler wakes at its due time, or at most a
    // second (ten on this clock) after it; 20 s allows for a loaded machine.
    CHECK(created[i] % 60000 < 20000);
    // Once a minute: neither twice nor a minute left out.
    if (i > 0) CHECK(created[i] / 60000 == created[i - 1] / 60000 + 1);
  }
  json schedule = FunctionStatus(client, "minutely")["schedule"];
  INFO(schedule.dump());
  CHECK(std::regex_search(schedule["last_fire"].get<std::string>(),
                          std::regex("T[0-9]{2}:[0-9]{2}:00")));
}
