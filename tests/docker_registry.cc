#include "tests/docker_registry.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "core/atomic_file.h"
#include "core/http_client.h"
#include "core/unique_fd.h"

namespace tests {
namespace {

namespace fs = std::filesystem;

constexpr char kRegistryBinary[] = "/usr/bin/docker-registry";

core::Error StartError(const std::string& message) {
  return core::Error{core::ErrorCode::kIo, "docker-registry: " + message, {}};
}

// A port on 127.0.0.1 that was free a moment ago.
core::Result<int> FreePort() {
  core::UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (!fd.valid() || bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    return StartError("no free port on 127.0.0.1");
  }
  return static_cast<int>(ntohs(address.sin_port));
}

}  // namespace

bool HasDockerRegistry() {
  return fs::exists(kRegistryBinary);
}

core::Result<std::unique_ptr<DockerRegistry>> DockerRegistry::Start(const fs::path& dir,
                                                                    std::optional<Login> login,
                                                                    std::optional<Tls> tls) {
  std::error_code error;
  fs::create_directories(dir / "data", error);
  if (error) return StartError("cannot create " + dir.string() + ": " + error.message());
  auto port = FreePort();
  if (!port) return port.error();
  std::string domain = "127.0.0.1:" + std::to_string(*port);
  std::ostringstream config;
  config << "version: 0.1\n"
         << "log:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\n"
         << "storage:\n  filesystem:\n    rootdirectory: " << (dir / "data").string() << "\n"
         << "  delete:\n    enabled: true\n"
         << "  maintenance:\n    uploadpurging:\n      enabled: false\n"
         << "http:\n  addr: " << domain << "\n  secret: gantry-test-secret\n";
  if (tls) {
    config << "  tls:\n    certificate: " << tls->certificate.string()
           << "\n    key: " << tls->key.string() << "\n";
  }
  if (login) {
    core::SubprocessOptions htpasswd;
    htpasswd.argv = {"/usr/bin/htpasswd", "-Bbn", login->user, login->password};
    htpasswd.stdout_to = core::Output::Capture();
    htpasswd.stderr_to = core::Output::Capture();
    auto made = core::RunSubprocess(std::move(htpasswd));
    if (!made) return made.error();
    if (made->exit.code != 0) return StartError("htpasswd failed: " + made->stderr_text);
    auto written = core::WriteFileAtomically(dir / "htpasswd", made->stdout_text);
    if (!written) return written.error();
    config << "auth:\n  htpasswd:\n    realm: gantry-test\n    path: "
           << (dir / "htpasswd").string() << "\n";
  }
  auto written = core::WriteFileAtomically(dir / "config.yml", config.str());
  if (!written) return written.error();

  core::SubprocessOptions options;
  options.argv = {kRegistryBinary, "serve", (dir / "config.yml").string()};
  options.stdout_to = core::Output::File(dir / "registry.log");
  options.stderr_to = core::Output::File(dir / "registry.log");
  auto process = core::Subprocess::Start(std::move(options));
  if (!process) return process.error();
  std::unique_ptr<DockerRegistry> registry(
      new DockerRegistry(std::move(process).value(), domain, dir / "registry.log"));

  // Ready when /v2/ answers (200 open, 401 behind auth).
  core::HttpClient client;
  core::HttpRequest ping;
  ping.url = (tls ? "https://" : "http://") + domain + "/v2/";
  if (tls) ping.ca_file = tls->certificate.string();
  ping.connect_timeout = std::chrono::seconds(1);
  for (int attempt = 0; attempt < 200; ++attempt) {
    auto answered = client.Send(ping);
    if (answered && (answered->status == 200 || answered->status == 401)) return registry;
    if (registry->process_.ended()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return StartError("did not answer on " + domain + "; its log:\n" + registry->Log());
}

DockerRegistry::~DockerRegistry() {
  (void)process_.Signal(SIGTERM);
  auto ended = process_.Wait(std::chrono::seconds(5));
  if (!ended || !*ended) (void)process_.Signal(SIGKILL);
  (void)process_.Wait();
}

std::string DockerRegistry::Log() const {
  auto text = core::ReadFile(log_);
  return text ? *text : "";
}

int DockerRegistry::CompletedUploads() const {
  // Access log lines: ... "PUT /v2/team/box/blobs/uploads/UUID?_state=...&digest=... HTTP/1.1" 201
  // ... (HTTP/2.0 over TLS).
  static const std::regex kUpload(R"re("PUT /v2/[^ ]+/blobs/uploads/[^ ]* HTTP/[0-9.]+" 201 )re");
  std::istringstream lines(Log());
  std::string line;
  int count = 0;
  while (std::getline(lines, line)) count += std::regex_search(line, kUpload) ? 1 : 0;
  return count;
}

}  // namespace tests
