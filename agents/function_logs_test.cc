#include "agents/function_logs.h"

#include <catch2/catch.hpp>
#include <fstream>

#include "tests/temp_dir.h"

namespace agents {
namespace {

using nlohmann::json;

std::vector<json> Parse(const std::string& text) {
  std::vector<json> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    lines.push_back(json::parse(text.substr(start, end - start)));
    start = end + 1;
  }
  return lines;
}

TEST_CASE("function logs are JSON lines, read by function or by app, then followed",
          "[function_logs]") {
  tests::TempDir dir("gantry-logs-test");
  FunctionLogs logs(dir.path());
  REQUIRE(logs.Append("demo", "echo",
                      {{1, "call-1", "stdout", "hello", ""},
                       {2, "", "agent", "exited", "web-demo-echo-0"}})
              .ok());
  REQUIRE(logs.Append("demo", "other", {{3, "call-2", "stderr", "bad \xff byte", ""}}).ok());

  LogCursor echo_cursor;
  auto echo = Parse(logs.ReadNew("demo", "echo", &echo_cursor));
  REQUIRE(echo.size() == 2);
  CHECK(echo[0] ==
        json{{"time_ms", 1}, {"call", "call-1"}, {"stream", "stdout"}, {"text", "hello"}});
  CHECK(echo[1] == json{{"time_ms", 2},
                        {"container", "web-demo-echo-0"},
                        {"stream", "agent"},
                        {"text", "exited"}});
  CHECK(logs.ReadNew("demo", "echo", &echo_cursor).empty());

  LogCursor app_cursor;
  auto all = Parse(logs.ReadNew("demo", "", &app_cursor));
  CHECK(all.size() == 3);
  CHECK(all[2]["text"].get<std::string>().starts_with("bad "));

  // Following: only what came after.
  REQUIRE(logs.Append("demo", "echo", {{4, "call-3", "stdout", "again", ""}}).ok());
  auto fresh = Parse(logs.ReadNew("demo", "echo", &echo_cursor));
  REQUIRE(fresh.size() == 1);
  CHECK(fresh[0]["text"] == "again");
  CHECK(logs.ReadNew("demo", "nope", &echo_cursor).empty());
}

TEST_CASE("reading from a time on leaves the older lines out", "[function_logs]") {
  tests::TempDir dir("gantry-logs-test");
  FunctionLogs logs(dir.path());
  REQUIRE(logs.Append("demo", "echo",
                      {{100, "call-1", "stdout", "old", ""},
                       {200, "call-2", "stdout", "new", ""},
                       {300, "call-3", "stdout", "newer", ""}})
              .ok());
  LogCursor cursor;
  auto lines = Parse(logs.ReadNew("demo", "echo", &cursor, /*since_ms=*/200));
  REQUIRE(lines.size() == 2);
  CHECK(lines[0]["text"] == "new");
  CHECK(lines[1]["text"] == "newer");
  LogCursor late;
  CHECK(logs.ReadNew("demo", "", &late, /*since_ms=*/301).empty());
}

TEST_CASE("a log past its size is rotated and one old file kept", "[function_logs]") {
  tests::TempDir dir("gantry-logs-test");
  FunctionLogs logs(dir.path(), /*max_bytes=*/200);
  for (int i = 0; i < 20; ++i) {
    REQUIRE(logs.Append("demo", "echo", {{i, "", "stdout", "line " + std::to_string(i), ""}}).ok());
  }
  CHECK(std::filesystem::file_size(dir.path() / "demo/echo.log") <= 200);
  CHECK(std::filesystem::file_size(dir.path() / "demo/echo.log.1") <= 200);
  CHECK_FALSE(std::filesystem::exists(dir.path() / "demo/echo.log.2"));
  LogCursor cursor;
  auto lines = Parse(logs.ReadNew("demo", "echo", &cursor));
  REQUIRE_FALSE(lines.empty());
  CHECK(lines.back()["text"] == "line 19");
  // Oldest first, without gaps between the two files.
  for (std::size_t i = 1; i < lines.size(); ++i)
    CHECK(lines[i]["time_ms"] == lines[i - 1]["time_ms"].get<int>() + 1);
}

TEST_CASE("a log cursor goes to a client and back, and reads on from where it was",
          "[function_logs]") {
  tests::TempDir dir("gantry-logs-test");
  FunctionLogs logs(dir.path());
  REQUIRE(logs.Append("demo", "echo", {{1, "call-1", "stdout", "one", ""}}).ok());
  REQUIRE(logs.Append("demo", "other", {{2, "call-2", "stdout", "two", ""}}).ok());
  LogCursor first;
  CHECK(first.Encode() == "-");
  CHECK(Parse(logs.ReadNew("demo", "", &first)).size() == 2);
  const std::string handed = first.Encode();
  CHECK(handed.find("echo:") == 0);
  CHECK(handed.find(",other:") != std::string::npos);

  REQUIRE(logs.Append("demo", "echo", {{3, "call-3", "stdout", "three", ""}}).ok());
  auto back = LogCursor::Decode(handed);
  REQUIRE(back);
  auto fresh = Parse(logs.ReadNew("demo", "", &*back));
  REQUIRE(fresh.size() == 1);
  CHECK(fresh[0]["text"] == "three");
  CHECK(logs.ReadNew("demo", "", &*back).empty());
  // "-" is a cursor that has read nothing, yet started: the rotated files are behind it.
  auto none = LogCursor::Decode("-");
  REQUIRE(none);
  CHECK(none->started);
  for (const char* bad : {"", "echo", "echo:", "echo:x", "Echo:1", "echo:1,", ":1", "e/c:1"}) {
    INFO(bad);
    CHECK_FALSE(LogCursor::Decode(bad));
  }
}

TEST_CASE("a container's output is logged line by line as it comes, the rest at its end",
          "[function_logs]") {
  tests::TempDir dir("gantry-logs-test");
  FunctionLogs logs(dir.path());
  LogLine about;
  about.call = "call-1";
  OutputLog output(&logs, "demo", "echo", about);
  LogCursor cursor;
  output.Write("stdout", "fir");
  CHECK(logs.ReadNew("demo", "echo", &cursor).empty());  // no line ended yet
  output.Write("stdout", "st\nsec");
  output.Write("stderr", "oops\n");
  auto lines = Parse(logs.ReadNew("demo", "echo", &cursor));
  REQUIRE(lines.size() == 2);
  CHECK(lines[0]["text"] == "first");
  CHECK(lines[0]["stream"] == "stdout");
  CHECK(lines[0]["call"] == "call-1");
  CHECK(lines[1]["text"] == "oops");
  CHECK(lines[1]["stream"] == "stderr");
  REQUIRE(output.Finish("exited with code 0").ok());
  lines = Parse(logs.ReadNew("demo", "echo", &cursor));
  REQUIRE(lines.size() == 2);
  CHECK(lines[0]["text"] == "sec");  // the last line, without its newline
  CHECK(lines[1] == json{{"time_ms", lines[1]["time_ms"]},
                         {"call", "call-1"},
                         {"stream", "agent"},
                         {"text", "exited with code 0"}});
}

TEST_CASE("a container's output is logged up to 1 MiB a stream, then said to be cut",
          "[function_logs]") {
  tests::TempDir dir("gantry-logs-test");
  FunctionLogs logs(dir.path(), /*max_bytes=*/64 << 20);
  OutputLog output(&logs, "demo", "echo", LogLine{});
  const std::string line(1023, 'x');
  for (int i = 0; i < 1100; ++i) output.Write("stdout", line + "\n");
  output.Write("stderr", std::string(OutputLog::kLoggedBytes + 10, 'y'));  // one endless line
  output.Write("stderr", "more\n");
  REQUIRE(output.Finish("done").ok());
  LogCursor cursor;
  auto lines = Parse(logs.ReadNew("demo", "echo", &cursor));
  std::size_t stdout_lines = 0;
  std::vector<std::string> agent_lines;
  for (const json& logged : lines) {
    if (logged["stream"] == "stdout") ++stdout_lines;
    if (logged["stream"] == "stderr") FAIL("a stderr line past the limit was logged");
    if (logged["stream"] == "agent") agent_lines.push_back(logged["text"]);
  }
  CHECK(stdout_lines == OutputLog::kLoggedBytes / 1024);
  CHECK(agent_lines == std::vector<std::string>{"stdout cut short here (1 MiB of it is logged)",
                                                "stderr cut short here (1 MiB of it is logged)",
                                                "done"});
}

}  // namespace
}  // namespace agents
