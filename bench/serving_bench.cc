// serving_bench: what serving costs, side by side with its references in
// one run (issue 7: "cold start p50 under 150 ms and p99 under 300 ms on a
// busybox image; router overhead no worse than nginx's at p50 and p99").
//
//  1. A busybox image built by the real `gantry build` (tests/busybox_image.h)
//     and `gantry agent --gpus none` on it, with two web functions running
//     busybox httpd on $PORT (a shell in front of it exits on SIGTERM, so
//     containers stop at once):
//       cold: scaledown_window 100 ms, so it is back at zero soon after a request;
//       hot:  min_containers 1, max_containers 1, max_inputs 1000, cpu 0 (no
//             quota): one warm container.
//  2. Cold starts: GANTRY_BENCH_COLD (default 100) times, once `cold` has no
//     container left, GET /apps/bench/cold/ timed from the request sent to
//     its first byte. The image is cached (the PUT unpacked its layers).
//  3. The router's latency: wrk (`-t2 -cN -d GANTRY_BENCH_SECONDS, default 5,
//     --latency`) at N = 1, 50 and 200 connections, each sending its next
//     request as soon as it has an answer (which saturates busybox httpd at
//     50 and 200: those rows are mostly its queue), then at 50 and 200
//     connections paced to 150 requests a second in all (a wrk script's
//     delay()), against three paths to the same `hot` container's
//     /index.html:
//       direct: wrk run inside the container's network namespace (nsenter),
//               straight to 127.0.0.1:8000;
//       nginx:  nginx (Debian nginx-light, 2 workers, access log off, HTTP/1.0
//               to the upstream like the router) in that namespace on :8081,
//               proxying to :8000; wrk there too;
//       router: wrk on the host against the agent's /apps/bench/hot/index.html.
//     Each proxy's overhead is its figure less the direct one. The three
//     paths run back to back GANTRY_BENCH_ROUNDS times (default 3), each
//     round starting one path later, so that a change in the machine's load
//     falls on all three; each figure is a median over the rounds. Under
//     each row, the router's p50 and p99 less nginx's in the same round:
//     their median and range over the rounds, which tells a gap from the
//     machine's spread. GANTRY_BENCH_LOADS ("1,50 at 150/s") runs only the
//     rows it names.
//
// It needs root, runc, /bin/busybox, wrk and nginx (without root or runc it
// exits 77, a skip to CTest, unless GANTRY_TESTS_NO_SKIP says everything
// must run: then 1). Run it with
// `ctest --test-dir build -L bench -R serving_bench --output-on-failure`, or
// `build/bench/serving_bench`. It is not a test: it fails only when
// something it runs fails (or a path answers a request with an error
// status), never on a figure. The suite runs it short, as
// serving_bench_smoke, so that it is known to work on a fresh machine.

#include <httplib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/latency_sample.h"
#include "bench/machine_load.h"
#include "core/atomic_file.h"
#include "core/subprocess.h"
#include "tests/agent_process.h"
#include "tests/busybox_image.h"
#include "tests/skip.h"
#include "tests/temp_dir.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr char kPath[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr int kNginxPort = 8081;
/// Requests a second that the paced rows offer: under what busybox httpd
/// (a fork per connection) answers on a 2-core VM (about 350), so that
/// those rows measure the proxies rather than the container's queue.
constexpr int kPacedRate = 150;

/// httpd on $PORT behind a shell that exits on SIGTERM (the kernel then ends httpd).
const char* const kServer =
    "mkdir -p /www && echo hello > /www/index.html && "
    "trap 'exit 0' TERM; httpd -f -p \"$PORT\" -h /www & wait";

core::Error BenchError(const std::string& message) {
  return core::Error{core::ErrorCode::kIo, message, {}};
}

core::Result<json> GetJson(httplib::Client& client, const std::string& path) {
  auto result = client.Get(path);
  if (!result) return BenchError("GET " + path + ": " + httplib::to_string(result.error()));
  json body = json::parse(result->body, nullptr, false);
  if (result->status != 200 || body.is_discarded())
    return BenchError("GET " + path + ": " + std::to_string(result->status) + " " + result->body);
  return body;
}

/// Waits until the function has `count` containers (none starting or draining).
core::Status WaitForContainers(httplib::Client& client, const std::string& function, int count) {
  for (auto deadline = Clock::now() + 30s; Clock::now() < deadline;
       std::this_thread::sleep_for(10ms)) {
    auto status = GetJson(client, "/v1/status");
    if (!status) return status.error();
    const json& containers = (*status)["apps"]["bench"]["functions"][function]["containers"];
    if (containers["starting"] == 0 && containers["draining"] == 0 && containers["ready"] == count)
      return core::Ok{};
  }
  return BenchError(function + " did not reach " + std::to_string(count) + " containers in 30 s");
}

/// One cold start: the request sent to the first byte of the answer, in ms.
core::Result<double> TimeColdStart(const std::string& address) {
  httplib::Client client(address);
  client.set_read_timeout(60, 0);
  auto started = Clock::now();
  std::optional<double> first_byte_ms;
  std::string body;
  auto result = client.Get("/apps/bench/cold/index.html", [&](const char* data, std::size_t size) {
    if (!first_byte_ms)
      first_byte_ms = std::chrono::duration<double, std::milli>(Clock::now() - started).count();
    body.append(data, size);
    return true;
  });
  if (!result) return BenchError("cold GET: " + httplib::to_string(result.error()));
  if (result->status != 200 || body != "hello\n")
    return BenchError("cold GET: " + std::to_string(result->status) + " " + body);
  return first_byte_ms.value_or(0);
}

/// The pid of the hot function's container, from the agent's runc state.
core::Result<int> HotContainerPid(const fs::path& data_dir) {
  core::SubprocessOptions options;
  options.argv = {"runc", "--root", (data_dir / "runc").string(), "list", "--format", "json"};
  options.env = {kPath};
  options.stdout_to = core::Output::Capture();
  options.stderr_to = core::Output::Capture();
  auto listed = core::RunSubprocess(options, 30s);
  if (!listed) return listed.error();
  json containers = json::parse(listed->stdout_text, nullptr, false);
  if (containers.is_array()) {
    for (const json& container : containers) {
      if (container.value("id", "").starts_with("web-bench-hot-") &&
          container.value("status", "") == "running")
        return container.value("pid", 0);
    }
  }
  return BenchError("no running container of bench/hot in: " + listed->stdout_text);
}

/// CPU time (user + system, ms) that process `pid` (all its threads), and
/// its children with `children`, have used so far; 0 for one that is gone.
/// The proxies' cost per request, which the machine's other load does not
/// change as it changes their latency. The agent's children are not its
/// own: runc, and under it the container's httpd (forking per connection).
double CpuMs(pid_t pid, bool children) {
  double ticks = 0;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // Fields after the command's closing parenthesis: state is field 3, utime 14, stime 15.
  std::istringstream fields(text.substr(std::min(text.size(), text.rfind(')') + 1)));
  std::string field;
  for (int index = 3; index <= 15 && fields >> field; ++index) {
    if (index >= 14) ticks += std::stod(field);
  }
  double ms = ticks * 1000.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
  if (!children) return ms;
  std::error_code ignored;
  for (const auto& task :
       fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ignored)) {
    std::ifstream listed(task.path() / "children");
    for (pid_t child; listed >> child;) ms += CpuMs(child, true);
  }
  return ms;
}

/// The `gantry agent` this bench started: a child whose command line has "agent".
core::Result<pid_t> AgentPid() {
  std::error_code ignored;
  for (const auto& task : fs::directory_iterator("/proc/self/task", ignored)) {
    std::ifstream children(task.path() / "children");
    for (pid_t child; children >> child;) {
      std::ifstream cmdline("/proc/" + std::to_string(child) + "/cmdline");
      std::string argv((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
      if (argv.find(std::string("\0agent\0", 7)) != std::string::npos) return child;
    }
  }
  return BenchError("cannot find the agent's process among the bench's children");
}

/// What wrk said: latency percentiles in ms, requests a second, errors.
struct WrkFigures {
  double p50 = 0, p99 = 0, requests_per_second = 0;
  double requests = 0;  // in all
  std::string errors;   // wrk's "Socket errors" and "Non-2xx" lines, if any
};

double ToMilliseconds(double value, const std::string& unit) {
  if (unit == "us") return value / 1000;
  if (unit == "s") return value * 1000;
  if (unit == "m") return value * 60'000;
  return value;  // "ms"
}

/// One row of the latency table: wrk's connections, and the rate they
/// offer together (0: each sends its next request as soon as it has an
/// answer; otherwise each waits connections/rate seconds between its
/// requests on average, by a wrk script's delay()).
struct Load {
  int connections = 1;
  int rate = 0;
  std::string script;  // the wrk script that paces them, "" for none

  std::string Name() const {
    std::string name = std::to_string(connections);
    if (rate > 0) name += " at " + std::to_string(rate) + "/s";
    return name;
  }
};

core::Result<WrkFigures> RunWrk(std::optional<int> netns_pid, const std::string& url,
                                const Load& load, int seconds) {
  core::SubprocessOptions options;
  if (netns_pid) {
    options.argv = {"nsenter", "--net=/proc/" + std::to_string(*netns_pid) + "/ns/net"};
  }
  for (const std::string& arg :
       {std::string("wrk"), "-t" + std::to_string(std::min(2, load.connections)),
        "-c" + std::to_string(load.connections), "-d" + std::to_string(seconds) + "s",
        std::string("--latency")}) {
    options.argv.push_back(arg);
  }
  if (!load.script.empty()) options.argv.insert(options.argv.end(), {"-s", load.script});
  options.argv.push_back(url);
  options.env = {kPath};
  options.stdout_to = core::Output::Capture();
  options.stderr_to = core::Output::Capture();
  auto ran = core::RunSubprocess(options, std::chrono::seconds(seconds + 60));
  if (!ran) return ran.error();
  if (ran->exit.code != 0) return BenchError("wrk failed: " + ran->stderr_text + ran->stdout_text);
  WrkFigures figures;
  std::smatch match;
  const std::string& out = ran->stdout_text;
  static const std::regex kP50(R"(\n\s+50%\s+([0-9.]+)(us|ms|s|m)\b)");
  static const std::regex kP99(R"(\n\s+99%\s+([0-9.]+)(us|ms|s|m)\b)");
  static const std::regex kRate(R"(Requests/sec:\s+([0-9.]+))");
  if (!std::regex_search(out, match, kP50)) return BenchError("no p50 in wrk's output: " + out);
  figures.p50 = ToMilliseconds(std::stod(match[1]), match[2]);
  if (!std::regex_search(out, match, kP99)) return BenchError("no p99 in wrk's output: " + out);
  figures.p99 = ToMilliseconds(std::stod(match[1]), match[2]);
  if (std::regex_search(out, match, kRate)) figures.requests_per_second = std::stod(match[1]);
  static const std::regex kRequests(R"(\n\s*([0-9]+) requests in )");
  if (std::regex_search(out, match, kRequests)) figures.requests = std::stod(match[1]);
  // An error status is a failure of the path, not a figure; a socket
  // timeout is busybox httpd's listen backlog overflowing (direct too).
  static const std::regex kErrorStatus(R"(Non-2xx or 3xx responses:[^\n]*)");
  if (std::regex_search(out, match, kErrorStatus))
    return BenchError(url + " answered with an error status: " + match.str());
  static const std::regex kSocketErrors(R"(Socket errors:[^\n]*)");
  for (auto it = std::sregex_iterator(out.begin(), out.end(), kSocketErrors);
       it != std::sregex_iterator(); ++it) {
    figures.errors += (figures.errors.empty() ? "" : "; ") + it->str();
  }
  return figures;
}

/// nginx in the container's network namespace, proxying :8081 to :8000.
core::Result<core::Subprocess> StartNginx(const fs::path& dir, int netns_pid) {
  fs::create_directories(dir / "logs");
  std::ofstream(dir / "nginx.conf") << "worker_processes 2;\n"
                                       "daemon off;\n"
                                       "pid "
                                    << (dir / "nginx.pid").string()
                                    << ";\n"
                                       "error_log "
                                    << (dir / "logs/error.log").string()
                                    << ";\n"
                                       "events { worker_connections 4096; }\n"
                                       "http {\n"
                                       "  access_log off;\n"
                                       "  server {\n"
                                       "    listen 127.0.0.1:"
                                    << kNginxPort
                                    << ";\n"
                                       "    location / { proxy_pass http://127.0.0.1:8000; }\n"
                                       "  }\n"
                                       "}\n";
  core::SubprocessOptions options;
  options.argv = {"nsenter",
                  "--net=/proc/" + std::to_string(netns_pid) + "/ns/net",
                  "nginx",
                  "-p",
                  dir.string(),
                  "-c",
                  (dir / "nginx.conf").string()};
  options.env = {kPath};
  options.stdout_to = core::Output::File(dir / "logs/stdout");
  options.stderr_to = core::Output::File(dir / "logs/stdout");
  auto nginx = core::Subprocess::Start(options);
  if (!nginx) return nginx.error();
  std::this_thread::sleep_for(500ms);  // until it listens
  return nginx;
}

/// `figures` less `reference`, round by round: their median and range, as
/// "+0.02 (-0.10 to +0.15)", so that a gap can be told from the spread.
std::string RoundGaps(const std::vector<double>& figures, const std::vector<double>& reference) {
  std::vector<double> gaps;
  for (std::size_t round = 0; round < figures.size() && round < reference.size(); ++round)
    gaps.push_back(figures[round] - reference[round]);
  if (gaps.empty()) return "none";
  const auto [low, high] = std::minmax_element(gaps.begin(), gaps.end());
  char text[64];
  std::snprintf(text, sizeof text, "%+.2f (%+.2f to %+.2f)", bench::Median(gaps), *low, *high);
  return text;
}

core::Status Bench() {
  tests::TempDir scratch("gantry-serving-bench");
  auto digest = tests::BuildBusyboxImage(GANTRY_BINARY, scratch.path(), scratch.path() / "store");
  if (!digest) return digest.error();
  const fs::path data_dir = scratch.path() / "agent";
  auto agent = tests::AgentProcess::Start(GANTRY_BINARY, data_dir, scratch.path() / "store",
                                          scratch.path() / "agent.log", {"--gpus", "none"});
  if (!agent) return agent.error();
  auto client = (*agent)->Client();
  json server = {{"image", {{"digest", *digest}}},
                 {"command", {"/bin/sh", "-c", kServer}},
                 {"web", json::object()}};
  json cold = server, hot = server;
  cold["scaledown_window_ms"] = 100;
  // No CPU quota: a default function's 0.125 cores would measure the quota.
  hot.update({{"min_containers", 1}, {"max_containers", 1}, {"max_inputs", 1000}, {"cpu", 0}});
  json desired = {{"generation", 1},
                  {"apps", {{"bench", {{"functions", {{"cold", cold}, {"hot", hot}}}}}}}};
  auto put = client.Put("/v1/desired", desired.dump(), "application/json");
  if (!put || put->status != 200)
    return BenchError("PUT /v1/desired: " + (put ? put->body : httplib::to_string(put.error())));

  const int cold_starts = static_cast<int>(bench::EnvNumber("GANTRY_BENCH_COLD", 100));
  const int seconds = static_cast<int>(bench::EnvNumber("GANTRY_BENCH_SECONDS", 5));
  std::printf("serving_bench: %d cold starts, then wrk for %d s per row\n", cold_starts, seconds);
  std::printf("load average before: %s\n", bench::LoadAverage().c_str());

  bench::LatencySample cold_ms;
  for (int i = 0; i < cold_starts; ++i) {
    if (auto idle = WaitForContainers(client, "cold", 0); !idle.ok()) return idle.error();
    auto ms = TimeColdStart((*agent)->address());
    if (!ms) return BenchError(ms.error().message + "\nagent log:\n" + (*agent)->Log());
    cold_ms.ms.push_back(*ms);
  }
  std::printf("\ncold start, request to first byte (ms), %d starts, image cached:\n", cold_starts);
  std::printf("  p50 %.1f   p90 %.1f   p99 %.1f   max %.1f   (goal: p50 < 150, p99 < 300)\n",
              cold_ms.Percentile(0.5), cold_ms.Percentile(0.9), cold_ms.Percentile(0.99),
              cold_ms.Max());

  if (auto warm = WaitForContainers(client, "hot", 1); !warm.ok()) return warm.error();
  auto pid = HotContainerPid(data_dir);
  if (!pid) return pid.error();
  auto nginx = StartNginx(scratch.path() / "nginx", *pid);
  if (!nginx) return nginx.error();

  const int rounds = static_cast<int>(bench::EnvNumber("GANTRY_BENCH_ROUNDS", 3));
  std::printf(
      "\nlatency of GET /index.html on one warm busybox httpd container (ms), wrk --latency,\n"
      "medians of %d rounds of the three paths back to back:\n",
      rounds);
  std::printf("  %-11s | %-17s | %-29s | %-29s\n", "connections", "direct p50/p99",
              "nginx p50/p99 (+p50/+p99)", "router p50/p99 (+p50/+p99)");
  const std::string router_url = (*agent)->address() + "/apps/bench/hot/index.html";
  auto agent_pid = AgentPid();
  if (!agent_pid) return agent_pid.error();
  // Each round runs the three paths back to back, so that a change in the
  // machine's load falls on all three alike; a row holds each path's
  // medians over the rounds.
  struct PathRuns {
    std::vector<double> p50, p99, rate, cpu;
    std::string errors;

    void Add(const WrkFigures& figures, double cpu_per_request) {
      p50.push_back(figures.p50);
      p99.push_back(figures.p99);
      rate.push_back(figures.requests_per_second);
      cpu.push_back(cpu_per_request);
      if (!figures.errors.empty()) errors += (errors.empty() ? "" : "; ") + figures.errors;
    }
  };
  std::vector<Load> loads = {{1, 0, ""}, {50, 0, ""}, {200, 0, ""}};
  for (int connections : {50, 200}) {
    Load paced{connections, kPacedRate, ""};
    paced.script = (scratch.path() / ("paced-" + std::to_string(connections) + ".lua")).string();
    // Each wait drawn from 0 to twice the mean, so that the connections do
    // not send in waves; each wrk thread seeded apart.
    std::ofstream(paced.script)
        << "function init(args) math.randomseed(tonumber(tostring({}):match('0x(%x+)'), 16)) end\n"
        << "function delay() return math.random(0, " << 2 * connections * 1000 / kPacedRate
        << ") end\n";
    loads.push_back(paced);
  }
  // GANTRY_BENCH_LOADS ("1,50 at 150/s"): only the rows named, to look
  // closer at one.
  const char* only = std::getenv("GANTRY_BENCH_LOADS");
  for (const Load& load : loads) {
    if (only && ("," + std::string(only) + ",").find("," + load.Name() + ",") == std::string::npos)
      continue;
    PathRuns direct, proxied, routed;
    // A path: wrk's network namespace (none: the host's) and URL, and the
    // process whose CPU time a request is charged (none for direct).
    struct Path {
      PathRuns& runs;
      std::optional<int> netns_pid;
      std::string url;
      std::optional<pid_t> proxy;
      bool proxy_children;
    };
    const Path paths[] = {
        {direct, *pid, "http://127.0.0.1:8000/index.html", std::nullopt, false},
        {proxied, *pid, "http://127.0.0.1:" + std::to_string(kNginxPort) + "/index.html",
         nginx->pid(), true},
        {routed, std::nullopt, router_url, *agent_pid, false}};
    // One wrk run of `path`, with its proxy's CPU time a request (µs).
    auto measure = [&](const Path& path) -> core::Status {
      const double cpu_before = path.proxy ? CpuMs(*path.proxy, path.proxy_children) : 0;
      auto run = RunWrk(path.netns_pid, path.url, load, seconds);
      if (!run && &path.runs == &routed)
        return BenchError(run.error().message + "\nagent log:\n" + (*agent)->Log());
      if (!run) return run.error();
      double cpu_per_request = 0;
      if (path.proxy && run->requests > 0) {
        cpu_per_request =
            (CpuMs(*path.proxy, path.proxy_children) - cpu_before) * 1000 / run->requests;
      }
      path.runs.Add(*run, cpu_per_request);
      return core::Ok{};
    };
    // Each round starts one path later, so that none always runs first
    // (after a pause) or last.
    for (int round = 0; round < rounds; ++round) {
      for (int step = 0; step < 3; ++step) {
        if (auto ran = measure(paths[(round + step) % 3]); !ran.ok()) return ran.error();
      }
    }
    using bench::Median;
    std::printf(
        "  %-11s | %7.2f / %7.2f | %6.2f / %6.2f (%+5.2f/%+5.2f) | %6.2f / %6.2f (%+5.2f/%+5.2f)\n",
        load.Name().c_str(), Median(direct.p50), Median(direct.p99), Median(proxied.p50),
        Median(proxied.p99), Median(proxied.p50) - Median(direct.p50),
        Median(proxied.p99) - Median(direct.p99), Median(routed.p50), Median(routed.p99),
        Median(routed.p50) - Median(direct.p50), Median(routed.p99) - Median(direct.p99));
    std::printf("          router less nginx, round by round: p50 %s, p99 %s\n",
                RoundGaps(routed.p50, proxied.p50).c_str(),
                RoundGaps(routed.p99, proxied.p99).c_str());
    std::printf("          requests/s: direct %.0f, nginx %.0f, router %.0f\n", Median(direct.rate),
                Median(proxied.rate), Median(routed.rate));
    std::printf("          CPU per request (us): nginx %.0f, router (the agent's process) %.0f\n",
                Median(proxied.cpu), Median(routed.cpu));
    for (const auto& [name, runs] : {std::pair{"direct", &direct}, std::pair{"nginx", &proxied},
                                     std::pair{"router", &routed}}) {
      if (!runs->errors.empty()) std::printf("          %s: %s\n", name, runs->errors.c_str());
    }
  }
  std::printf("load average after: %s\n", bench::LoadAverage().c_str());
  (void)nginx->Signal(SIGQUIT);
  (void)nginx->Wait(5s);
  return core::Ok{};
}

}  // namespace

int main() {
  if (!tests::CanRunContainers()) {
    std::fprintf(stderr, "serving_bench: needs root, /usr/sbin/runc and /bin/busybox\n");
    return tests::SkipsAllowed() ? tests::kSkippedExit : 1;
  }
  auto status = Bench();
  if (!status.ok()) {
    std::fprintf(stderr, "serving_bench: %s\n", status.error().message.c_str());
    return 1;
  }
  return 0;
}
