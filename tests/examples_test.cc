// Every example of examples/ through the real binary, as a newcomer runs
// them: `gantry up` on the embedded local agent (real runc), `gantry run`,
// `gantry map`. The images are built once into a shared store by the
// examples_images fixture (tests/CMakeLists.txt): a Debian base is minutes.

#include <httplib.h>
#include <signal.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/atomic_file.h"
#include "core/subprocess.h"
#include "tests/agent_fixture.h"
#include "tests/agent_process.h"
#include "tests/gantry_command.h"
#include "tests/temp_dir.h"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

const fs::path kStore = EXAMPLES_STORE;

// The environment of a gantry command: nothing inherited but PATH, with its
// own GANTRY_HOME.
std::vector<std::string> Environment(const fs::path& home, std::vector<std::string> more = {}) {
  more.push_back("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  more.push_back("HOME=/root");
  more.push_back("GANTRY_HOME=" + home.string());
  return more;
}

// Whether a GantryUp runs on its own local agent or on the agents registered
// in its GANTRY_HOME.
enum class UpOn { kLocalAgent, kRegisteredAgents };

// `gantry up SPEC` in the background on a data dir of its own (or on the
// registered agents), its output in a file.
class GantryUp {
 public:
  GantryUp(const std::string& spec, const fs::path& dir, std::vector<std::string> args = {},
           std::vector<std::string> env = {}, UpOn on = UpOn::kLocalAgent)
      : dir_(dir), output_(dir / "up.out") {
    core::SubprocessOptions options;
    options.argv = {GANTRY_BINARY,   "up", (fs::path(GANTRY_SOURCE_DIR) / spec).string(), "--store",
                    kStore.string(), "-q"};
    if (on == UpOn::kLocalAgent)
      options.argv.insert(options.argv.end(),
                          {"--port", "0", "--data-dir", (dir / "local").string()});
    options.argv.insert(options.argv.end(), args.begin(), args.end());
    options.env = Environment(dir / "home", std::move(env));
    options.stdout_to = core::Output::File(output_);
    options.stderr_to = core::Output::File(output_);
    // Its own process group, as a shell gives a command it runs in the foreground.
    options.own_process_group = true;
    auto started = core::Subprocess::Start(options);
    REQUIRE(started.ok());
    process_.emplace(std::move(started).value());
  }

  std::string Output() const {
    auto text = core::ReadFile(output_);
    return text.ok() ? *text : "";
  }

  // Waits until the output holds `text`; false when gantry up ended or the
  // time ran out first.
  bool WaitFor(const std::string& text, std::chrono::seconds timeout) {
    for (auto end = std::chrono::steady_clock::now() + timeout;
         std::chrono::steady_clock::now() < end;) {
      if (Output().find(text) != std::string::npos) return true;
      auto ended = process_->Wait(100ms);
      if (!ended.ok() || *ended) return Output().find(text) != std::string::npos;
    }
    return false;
  }

  // The URL gantry up printed for `function` of `app`, split for httplib.
  std::pair<std::string, std::string> Endpoint(const std::string& app,
                                               const std::string& function) const {
    std::smatch match;
    std::string output = Output();
    std::regex pattern("(http://127\\.0\\.0\\.1:[0-9]+)(/apps/" + app + "/" + function + "/)");
    REQUIRE(std::regex_search(output, match, pattern));
    return {match[1], match[2]};
  }

  // Sends `signal` and returns the exit code (-1 if it has not ended in 60 s).
  // SIGINT goes to its whole process group, as a terminal's Ctrl-C does: what
  // gantry runs must not take it for its own.
  int Stop(int signal = SIGINT) {
    if (signal == SIGINT) {
      REQUIRE(kill(-process_->pid(), SIGINT) == 0);
    } else {
      REQUIRE(process_->Signal(signal).ok());
    }
    auto ended = process_->Wait(60s);
    if (!ended.ok() || !*ended) return -1;
    return process_->exit().code;
  }

  fs::path local() const { return dir_ / "local"; }

 private:
  fs::path dir_;
  fs::path output_;
  std::optional<core::Subprocess> process_;
};

// `gantry ARGS` with the local agent in DIR/local and the shared store (or `store`).
tests::CommandOutput Gantry(const fs::path& dir, std::vector<std::string> args,
                            std::vector<std::string> env = {}, const fs::path& store = kStore) {
  // Right after the verb: what follows a `--` is the call's.
  args.insert(args.begin() + 1,
              {"--data-dir", (dir / "local").string(), "--store", store.string(), "-q"});
  return tests::RunProcess(
      [&] {
        std::vector<std::string> argv = {GANTRY_BINARY};
        argv.insert(argv.end(), args.begin(), args.end());
        return argv;
      }(),
      GANTRY_SOURCE_DIR, Environment(dir / "home", std::move(env)));
}

// How many blobs a content store holds (the agent makes an empty store).
long BlobCount(const fs::path& store) {
  std::error_code error;
  long count = 0;
  for (auto it = fs::recursive_directory_iterator(store / "blobs", error);
       !error && it != fs::recursive_directory_iterator(); it.increment(error))
    count += it->is_regular_file() ? 1 : 0;
  return count;
}

// The containers runc still knows in a local agent's data dir.
std::string RuncContainers(const fs::path& local) {
  auto listed = tests::RunProcess({"runc", "--root", (local / "runc").string(), "list", "-q"});
  return listed.out;
}

}  // namespace

TEST_CASE("examples hello answers over HTTP through gantry up and scales to zero", "[examples]") {
  if (!tests::ContainersOrSkip()) return;
  tests::TempDir dir("examples-hello");
  GantryUp up("examples/hello/app.yaml", dir.path());
  REQUIRE(up.WaitFor("Serving hello", 300s));
  INFO(up.Output());
  auto [base, path] = up.Endpoint("hello", "site");
  CHECK(up.Output().find("container running") == std::string::npos);  // none before a request
  // The dashboard it prints is on a port of its own, not the endpoints' origin.
  std::smatch dashboard;
  const std::string output = up.Output();
  REQUIRE(std::regex_search(output, dashboard,
                            std::regex("Dashboard: (http://127\\.0\\.0\\.1:[0-9]+)/ui ")));
  CHECK(dashboard[1].str() != base);
  auto sign_in = httplib::Client(dashboard[1].str()).Get("/ui");
  REQUIRE(sign_in);
  CHECK(sign_in->status == 401);
  CHECK(sign_in->body.find("action=\"/ui/login\"") != std::string::npos);

  httplib::Client client(base);
  client.set_read_timeout(60, 0);
  auto response = client.Get(path.c_str());  // a cold start: held until httpd answers
  REQUIRE(response);
  CHECK(response->status == 200);
  CHECK(response->body.find("hello from gantry") != std::string::npos);
  REQUIRE(up.WaitFor("site: 1 container running", 30s));
  // scaledown_window is 10s: then no container runs, and a request starts one again.
  REQUIRE(up.WaitFor("site: 0 containers running (scaled to zero)", 60s));
  // httpd's shell ended on the SIGTERM of the scale-down, not at the grace's SIGKILL.
  CHECK(up.WaitFor(" stopped (exit code 0)", 10s));
  CHECK(up.Output().find("exit code 137") == std::string::npos);
  auto again = client.Get(path.c_str());
  REQUIRE(again);
  CHECK(again->status == 200);

  CHECK(up.Stop() == 0);
  CHECK(up.Output().find("Stopped.") != std::string::npos);
  CHECK(RuncContainers(up.local()).empty());
}

TEST_CASE("gantry up --watch re-applies an edit of a copied file", "[examples]") {
  if (!tests::ContainersOrSkip()) return;
  tests::TempDir dir("examples-watch");
  fs::path app = dir.path() / "hello";
  fs::create_directories(app);
  fs::copy(fs::path(GANTRY_SOURCE_DIR) / "examples/hello", app, fs::copy_options::recursive);
  GantryUp up((app / "app.yaml").string(), dir.path(), {"--watch"});
  REQUIRE(up.WaitFor("Serving hello", 300s));
  auto [base, path] = up.Endpoint("hello", "site");
  httplib::Client client(base);
  client.set_read_timeout(60, 0);
  auto before = client.Get(path.c_str());
  REQUIRE(before);
  CHECK(before->body.find("hello from gantry") != std::string::npos);

  REQUIRE(core::WriteFileAtomically(app / "www" / "index.html", "<p>edited</p>\n").ok());
  REQUIRE(up.WaitFor("changed: planning again", 30s));
  REQUIRE(up.WaitFor("image.web: replaced", 120s));  // a new digest: only the copy step rebuilt
  INFO(up.Output());
  std::string body;
  for (int i = 0; i < 300 && body != "<p>edited</p>\n"; ++i) {
    if (auto after = client.Get(path.c_str())) body = after->body;
    std::this_thread::sleep_for(100ms);
  }
  CHECK(body == "<p>edited</p>\n");
  CHECK(up.Stop() == 0);
}

TEST_CASE("gantry up with a bad spec fails in one line and leaves nothing running", "[examples]") {
  if (!tests::ContainersOrSkip()) return;
  tests::TempDir dir("examples-bad-spec");
  fs::path spec = dir.path() / "app.yaml";
  REQUIRE(core::WriteFileAtomically(spec, "app: bad\nfunctions:\n  f: {image: nope}\n").ok());
  auto up = Gantry(dir.path(), {"up", spec.string(), "--port", "0"});
  CHECK(up.exit_code == 1);
  CHECK(up.err.find(spec.string() + ":3:") != std::string::npos);
  CHECK(up.err.find("nope") != std::string::npos);
  CHECK(RuncContainers(dir.path() / "local").empty());
}

TEST_CASE("gantry up and run as a user who is not root say how to fix it in one line",
          "[examples]") {
  if (!tests::ContainersOrSkip()) return;
  tests::TempDir dir("examples-not-root");
  // As a user's own home would be: they can look in (for registered agents: none).
  fs::permissions(dir.path(),
                  fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  for (const char* verb : {"up", "run"}) {
    INFO(verb);
    std::vector<std::string> argv = {
        "setpriv", "--reuid=65534",          "--regid=65534", "--clear-groups", GANTRY_BINARY,
        verb,      "examples/batch/app.yaml"};
    if (std::string(verb) == "run") argv.push_back("square");
    argv.insert(argv.end(), {"--data-dir", (dir.path() / "local").string()});
    auto refused = tests::RunProcess(argv, GANTRY_SOURCE_DIR, Environment(dir.path() / "home"));
    CHECK(refused.exit_code == 1);
    CHECK(refused.err ==
          "the agent runs containers with runc, which needs root here: run gantry as root "
          "(sudo -E gantry ..., -E keeps GANTRY_HOME)\n");
    CHECK_FALSE(fs::exists(dir.path() / "local"));
  }
}

TEST_CASE("what a killed gantry up left does not run again", "[examples]") {
  if (!tests::ContainersOrSkip()) return;
  tests::TempDir dir("examples-killed");
  {
    GantryUp up("examples/hello/app.yaml", dir.path());
    REQUIRE(up.WaitFor("Serving hello", 300s));
    auto [base, path] = up.Endpoint("hello", "site");
    httplib::Client client(base);
    client.set_read_timeout(60, 0);
    REQUIRE(client.Get(path.c_str()));
    REQUIRE(up.WaitFor("site: 1 container running", 30s));
    CHECK(up.Stop(SIGKILL) == 128 + SIGKILL);
  }
  CHECK_FALSE(RuncContainers(dir.path() / "local").empty());  // its container outlived it

  // The next process on the same local agent: hello is dropped, not served again.
  auto run = Gantry(dir.path(), {"run", "examples/batch/app.yaml", "square", "--", "3"});
  INFO(run.err);
  CHECK(run.exit_code == 0);
  CHECK(run.out == "9\n");
  CHECK(run.err.find("hello") == std::string::npos);
  CHECK(RuncContainers(dir.path() / "local").empty());
  CHECK_FALSE(fs::exists(dir.path() / "local" / "state" / "hello.json"));
}

TEST_CASE("gantry up refuses a second process on the same local agent", "[examples]") {
  if (!tests::ContainersOrSkip()) return;
  tests::TempDir dir("examples-twice");
  GantryUp up("examples/hello/app.yaml", dir.path());
  REQUIRE(up.WaitFor("Serving hello", 300s));
  auto second = Gantry(dir.path(), {"up", "examples/hello/app.yaml", "--port", "0"});
  CHECK(second.exit_code == 1);
  CHECK(second.err.find("the local agent in " + (dir.path() / "local").string() + " is in use (") !=
        std::string::npos);
  CHECK(second.err.find("locked by gantry up, run or map (pid ") != std::string::npos);
  CHECK(second.err.find("stop that one, or give this one its own --data-dir") != std::string::npos);
  CHECK(up.Stop(SIGTERM) == 0);
}

TEST_CASE("gantry run and map call the app a running gantry up serves", "[examples]") {
  if (!tests::ContainersOrSkip()) return;
  tests::TempDir dir("examples-shared-up");
  GantryUp up("examples/batch/app.yaml", dir.path());
  REQUIRE(up.WaitFor("Serving batch", 300s));
  auto run = Gantry(dir.path(), {"run", "examples/batch/app.yaml", "square", "--", "7"});
  INFO(run.err);
  CHECK(run.exit_code == 0);
  CHECK(run.out == "49\n");
  CHECK(run.err.find("calling square on the local agent of the gantry up serving batch") !=
        std::string::npos);
  fs::path inputs = dir.path() / "inputs.jsonl";
  REQUIRE(core::WriteFileAtomically(inputs, "2\n3\n").ok());
  auto mapped =
      Gantry(dir.path(), {"map", "examples/batch/app.yaml", "square", "--inputs", inputs.string()});
  INFO(mapped.err);
  CHECK(mapped.exit_code == 0);
  CHECK(mapped.out.find("\"stdout\":\"4\\n\"") != std::string::npos);
  CHECK(mapped.out.find("\"stdout\":\"9\\n\"") != std::string::npos);
  // The calls ran on up's agent: their output is in the logs it follows.
  CHECK(up.WaitFor("stdout: 49", 10s));
  // An app it does not serve is still refused, with the reason.
  auto other = Gantry(dir.path(), {"run", "examples/cron/app.yaml", "tick"});
  CHECK(other.exit_code == 1);
  CHECK(other.err.find("is in use (") != std::string::npos);
  CHECK(up.Stop() == 0);
  CHECK(RuncContainers(up.local()).empty());
}

TEST_CASE("gantry up on a registered agent serves there and takes the app off at Ctrl-C",
          "[examples]") {
  if (!tests::ContainersOrSkip()) return;
  tests::TempDir dir("examples-up-registered");
  auto agent = tests::AgentProcess::Start(GANTRY_BINARY, dir.path() / "agent", kStore,
                                          dir.path() / "agent.log");
  REQUIRE(agent.ok());
  httplib::Client agent_client = (*agent)->Client();
  auto gantry = [&](std::vector<std::string> args) {
    args.insert(args.begin(), GANTRY_BINARY);
    return tests::RunProcess(args, GANTRY_SOURCE_DIR, Environment(dir.path() / "home"));
  };
  REQUIRE(gantry((*agent)->AddArgs("box")).exit_code == 0);
  // A copy: the state goes beside the spec.
  fs::path app = dir.path() / "hello";
  fs::create_directories(app);
  fs::copy(fs::path(GANTRY_SOURCE_DIR) / "examples/hello", app, fs::copy_options::recursive);
  const std::string spec = (app / "app.yaml").string();
  auto app_on_agent = [&] {
    auto desired = agent_client.Get("/v1/desired");
    REQUIRE(desired);
    return json::parse(desired->body)["apps"].contains("hello");
  };

  {
    GantryUp up(spec, dir.path(), {}, {}, UpOn::kRegisteredAgents);
    REQUIRE(up.WaitFor("Serving hello", 300s));
    INFO(up.Output());
    CHECK(up.Output().find("Local agent at") == std::string::npos);
    auto [base, path] = up.Endpoint("hello", "site");
    CHECK(base == (*agent)->address());
    httplib::Client client(base);
    client.set_read_timeout(60, 0);
    auto response = client.Get(path.c_str());
    REQUIRE(response);
    CHECK(response->body.find("hello from gantry") != std::string::npos);
    REQUIRE(up.WaitFor("site: 1 container running", 30s));
    CHECK(fs::exists(app / ".gantry" / "state" / "hello.json.up.lock"));
    // While up serves it, an apply would pull the app from under it.
    auto during = gantry({"deploy", spec, "--store", kStore.string(), "-q"});
    CHECK(during.exit_code == 1);
    CHECK(during.err.find("app hello is served by gantry up (") != std::string::npos);
    CHECK(up.Stop() == 0);
    CHECK(up.Output().find("Destroy complete!") != std::string::npos);
    CHECK(up.Output().find("Stopped.") != std::string::npos);
  }
  CHECK_FALSE(app_on_agent());
  CHECK_FALSE(fs::exists(app / ".gantry" / "state" / "hello.json.up.lock"));

  // A local agent's options make no sense there: refused, nothing started.
  auto local_option = gantry({"up", spec, "--data-dir", (dir.path() / "local").string()});
  CHECK(local_option.exit_code == 1);
  CHECK(local_option.err ==
        "--data-dir is an option of the embedded local agent, and agents are registered: add "
        "--local to run there\n");
  CHECK_FALSE(fs::exists(dir.path() / "local"));

  // An app deployed there is not up's to replace, nor to remove at its end.
  auto deployed = gantry({"deploy", spec, "--store", kStore.string(), "-q"});
  INFO(deployed.err);
  REQUIRE(deployed.exit_code == 0);
  auto refused = gantry({"up", spec, "--store", kStore.string(), "-q"});
  CHECK(refused.exit_code == 1);
  CHECK(refused.err.find("app hello is deployed on box (state ") != std::string::npos);
  CHECK(refused.err.find("gantry destroy " + spec + " removes it") != std::string::npos);
  CHECK(app_on_agent());
  CHECK(gantry({"destroy", spec, "--yes", "--store", kStore.string(), "-q"}).exit_code == 0);
  CHECK_FALSE(app_on_agent());
}

TEST_CASE("examples batch maps 1000 inputs and writes the results in input order", "[examples]") {
  if (!tests::ContainersOrSkip()) return;
  tests::TempDir dir("examples-batch");
  fs::path out = dir.path() / "results.jsonl";
  auto mapped = Gantry(dir.path(), {"map", "examples/batch/app.yaml", "square", "--inputs",
                                    "examples/batch/inputs.jsonl", "--out", out.string()});
  INFO(mapped.err);
  REQUIRE(mapped.exit_code == 0);
  CHECK(mapped.err.find("1000/1000") != std::string::npos);
  auto text = core::ReadFile(out);
  REQUIRE(text.ok());
  std::istringstream lines(*text);
  std::string line;
  long expected = 0;
  while (std::getline(lines, line)) {
    ++expected;
    json result = json::parse(line);
    INFO(line);
    REQUIRE(result["index"] == expected - 1);
    REQUIRE(result["input"] == expected);
    REQUIRE(result["state"] == "succeeded");
    REQUIRE(result["stdout"] == std::to_string(expected * expected) + "\n");
  }
  CHECK(expected == 1000);
  CHECK(RuncContainers(dir.path() / "local").empty());
}

TEST_CASE("gantry map reports failed inputs after their retries and a bad input line",
          "[examples]") {
  if (!tests::ContainersOrSkip()) return;
  tests::TempDir dir("examples-map-failures");
  fs::path inputs = dir.path() / "inputs.jsonl";
  REQUIRE(core::WriteFileAtomically(inputs, "3\n\"1+\"\n[\"4\"]\n").ok());
  auto mapped = Gantry(dir.path(), {"map", "examples/batch/app.yaml", "square", "--inputs",
                                    inputs.string(), "--parallel", "2"});
  INFO(mapped.err);
  CHECK(mapped.exit_code == 1);
  CHECK(mapped.err.find("failed: input 2 (failed): exited with code 2") != std::string::npos);
  CHECK(mapped.err.find("1 of 3 calls failed after their retries") != std::string::npos);
  std::istringstream lines(mapped.out);
  std::vector<json> results;
  for (std::string line; std::getline(lines, line);) results.push_back(json::parse(line));
  REQUIRE(results.size() == 3);
  CHECK(results[0]["stdout"] == "9\n");
  CHECK(results[1]["state"] == "failed");
  CHECK(results[1]["exit_code"] == 2);
  CHECK(results[2]["stdout"] == "16\n");

  tests::TempDir other("examples-map-bad-input");
  REQUIRE(core::WriteFileAtomically(inputs, "3\n{not json\n").ok());
  auto bad = Gantry(other.path(),
                    {"map", "examples/batch/app.yaml", "square", "--inputs", inputs.string()});
  CHECK(bad.exit_code == 1);
  CHECK(bad.err.find(inputs.string() + ":2:1: an input is one JSON value a line") !=
        std::string::npos);
  CHECK_FALSE(fs::exists(other.path() / "local"));  // refused before an agent was started
}

TEST_CASE("gantry map stopped by Ctrl-C stops its calls and says which inputs never ran",
          "[examples]") {
  if (!tests::ContainersOrSkip()) return;
  tests::TempDir dir("examples-map-stopped");
  fs::path spec = dir.Write("app.yaml", R"(app: napper
images:
  shell: {from: {debootstrap: bookworm}}
functions:
  nap:
    image: shell
    command: ["/bin/sh", "-c", "sleep 60"]
    max_containers: 2
)");
  fs::path inputs = dir.Write("inputs.jsonl", "1\n2\n3\n4\n5\n");
  core::SubprocessOptions options;
  options.argv = {GANTRY_BINARY, "map",           spec.string(), "nap",
                  "--inputs",    inputs.string(), "--data-dir",  (dir.path() / "local").string(),
                  "--store",     kStore.string(), "-q"};
  options.env = Environment(dir.path() / "home");
  options.stdout_to = core::Output::Capture();
  options.stderr_to = core::Output::Capture();
  options.own_process_group = true;  // as a shell runs it in the foreground
  auto map = core::Subprocess::Start(options);
  REQUIRE(map.ok());
  // Two calls at once (max_containers), each in its container.
  std::string running;
  for (int i = 0; i < 1200 && std::count(running.begin(), running.end(), '\n') < 2; ++i) {
    std::this_thread::sleep_for(100ms);
    running = RuncContainers(dir.path() / "local");
  }
  REQUIRE(std::count(running.begin(), running.end(), '\n') == 2);
  REQUIRE(kill(-map->pid(), SIGINT) == 0);  // a terminal's Ctrl-C: the whole group
  REQUIRE(map->Wait(60s).ok());
  INFO(map->stderr_text());
  CHECK(map->exit().code == 128 + SIGINT);
  CHECK(map->stderr_text().find("stopped by signal 2: no new calls; the 2 running are stopped") !=
        std::string::npos);
  std::istringstream lines(map->stdout_text());
  std::vector<json> results;
  for (std::string line; std::getline(lines, line);) results.push_back(json::parse(line));
  REQUIRE(results.size() == 5);
  int stopped = 0, not_run = 0;
  for (const json& result : results) {
    if (result["state"] == "stopped") {
      ++stopped;
      CHECK(result["id"].get<std::string>().starts_with("call-"));
    }
    if (result["state"] == "not_run") ++not_run;
  }
  CHECK(stopped == 2);
  CHECK(not_run == 3);
  CHECK(RuncContainers(dir.path() / "local").empty());
}

TEST_CASE("gantry run prints the call's output and exits with its exit code", "[examples]") {
  if (!tests::ContainersOrSkip()) return;
  tests::TempDir dir("examples-run");
  auto run = Gantry(dir.path(), {"run", "examples/batch/app.yaml", "square", "--", "12"});
  INFO(run.err);
  CHECK(run.exit_code == 0);
  CHECK(run.out == "144\n");  // the plan and the call's id go to stderr
  CHECK(run.err.find("Apply complete!") != std::string::npos);

  auto failed = Gantry(dir.path(), {"run", "examples/batch/app.yaml", "square", "--", "1+"});
  CHECK(failed.exit_code == 2);  // the shell's own exit code for the bad expression
  CHECK(failed.err.find("arithmetic expression") != std::string::npos);

  auto unknown = Gantry(dir.path(), {"run", "examples/batch/app.yaml", "cube"});
  CHECK(unknown.exit_code == 1);
  CHECK(unknown.err.find("app batch has no function cube (its functions: square)") !=
        std::string::npos);
  auto web = Gantry(dir.path(), {"run", "examples/hello/app.yaml", "site"});
  CHECK(web.exit_code == 1);
  CHECK(web.err.find("is a web endpoint: call it over HTTP") != std::string::npos);
  CHECK(RuncContainers(dir.path() / "local").empty());
}

TEST_CASE("gantry run streams the output of a call while it runs", "[examples]") {
  if (!tests::ContainersOrSkip()) return;
  tests::TempDir dir("examples-stream");
  fs::path spec = dir.Write("app.yaml", R"(app: streamer
images:
  shell: {from: {debootstrap: bookworm}}
functions:
  talk:
    image: shell
    command: ["/bin/sh", "-c", "echo first; echo oops >&2; sleep 4; echo second"]
)");
  fs::path out = dir.path() / "run.out";
  core::SubprocessOptions options;
  options.argv = {GANTRY_BINARY, "run",           spec.string(),
                  "talk",        "--data-dir",    (dir.path() / "local").string(),
                  "--store",     kStore.string(), "-q"};
  options.env = Environment(dir.path() / "home");
  options.stdout_to = core::Output::File(out);
  options.stderr_to = core::Output::Capture();
  auto run = core::Subprocess::Start(options);
  REQUIRE(run.ok());
  std::string seen;
  for (int i = 0; i < 600 && seen.find("first") == std::string::npos; ++i) {
    std::this_thread::sleep_for(100ms);
    auto text = core::ReadFile(out);
    if (text.ok()) seen = *text;
  }
  CHECK(seen == "first\n");  // before the call has ended
  REQUIRE(run->Wait(60s).ok());
  CHECK(run->exit().code == 0);
  CHECK(run->stderr_text().find("oops\n") != std::string::npos);
  auto all = core::ReadFile(out);
  REQUIRE(all.ok());
  CHECK(*all == "first\nsecond\n");
}

TEST_CASE("examples cron fires under a test clock and keeps its volume", "[examples]") {
  if (!tests::ContainersOrSkip()) return;
  tests::TempDir dir("examples-cron");
  // libfaketime runs the wall clock ten times as fast (the monotonic clock
  // as it is): the every-minute schedule fires every six seconds. Preloaded
  // by hand: the faketime command would run gantry as its child, and take
  // the stop signal itself.
  GantryUp up(
      "examples/cron/app.yaml", dir.path(), {},
      {"LD_PRELOAD=" FAKETIME_LIBRARY, "FAKETIME=+0 x10", "FAKETIME_DONT_FAKE_MONOTONIC=1"});
  REQUIRE(up.WaitFor("Serving cron", 300s));
  INFO(up.Output());
  CHECK(up.Output().find("tick         next ") != std::string::npos);
  REQUIRE(up.WaitFor("stdout: 3", 90s));  // the third run counted three lines
  CHECK(up.Stop() == 0);
  auto ticks = core::ReadFile(dir.path() / "local" / "volumes" / "cron" / "ticks" / "ticks.log");
  REQUIRE(ticks.ok());
  CHECK(std::count(ticks->begin(), ticks->end(), '\n') >= 3);
  CHECK(std::regex_search(*ticks, std::regex("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z\n")));
}

TEST_CASE("examples gpu fails to place on a host without a GPU before building", "[examples]") {
  if (!tests::ContainersOrSkip()) return;
  tests::TempDir dir("examples-gpu");
  fs::path store = dir.path() / "store";  // empty: nothing of the CUDA image may land there
  auto up = Gantry(dir.path(), {"up", "examples/gpu/app.yaml", "--port", "0", "--gpus", "none"}, {},
                   store);
  INFO(up.out << up.err);
  CHECK(up.exit_code == 1);
  CHECK(up.err.find("function vector-add fits on no agent: it needs H100:1 or A100-80GB:1 or "
                    "L4:1") != std::string::npos);
  CHECK(up.err.find("local has") != std::string::npos);
  CHECK(up.err.find("no GPUs") != std::string::npos);
  CHECK(up.out.find("Apply complete") == std::string::npos);
  CHECK(BlobCount(store) == 0);  // the CUDA image was neither pulled nor built
}

TEST_CASE("examples python-api answers with its secret from the environment", "[examples]") {
  if (!tests::ContainersOrSkip()) return;
  tests::TempDir dir("examples-python");
  const std::string greeting = "Bonjour-7f3a9c";
  fs::path empty_store = dir.path() / "store";
  auto unset =
      Gantry(dir.path(), {"up", "examples/python-api/app.yaml", "--port", "0"}, {}, empty_store);
  CHECK(unset.exit_code == 1);
  CHECK(unset.err.find("GREETING") != std::string::npos);
  CHECK(unset.out.find("Apply complete") == std::string::npos);
  CHECK(BlobCount(empty_store) == 0);  // stopped before building
  GantryUp up("examples/python-api/app.yaml", dir.path(), {}, {"GREETING=" + greeting});
  REQUIRE(up.WaitFor("Serving python-api", 600s));
  INFO(up.Output());
  auto [base, path] = up.Endpoint("python-api", "api");
  httplib::Client client(base);
  client.set_read_timeout(60, 0);
  auto greet = client.Get((path + "greet?name=Ada").c_str());
  REQUIRE(greet);
  CHECK(greet->status == 200);
  CHECK(json::parse(greet->body)["message"] == greeting + ", Ada!");
  auto stats =
      client.Post((path + "stats").c_str(), R"({"numbers": [1, 2, 6]})", "application/json");
  REQUIRE(stats);
  CHECK(json::parse(stats->body) == json{{"count", 3}, {"sum", 9.0}, {"mean", 3.0}});

  CHECK(up.Stop() == 0);
  // The secret reached the container, and nothing else.
  CHECK(up.Output().find(greeting) == std::string::npos);
  CHECK(up.Output().find("(sensitive)") != std::string::npos);
}
