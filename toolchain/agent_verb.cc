#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <climits>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agents/agent.h"
#include "agents/api_server.h"
#include "agents/api_token.h"
#include "agents/router.h"
#include "core/atomic_file.h"
#include "core/gantry_home.h"
#include "core/quantity.h"
#include "toolchain/exit_code.h"
#include "toolchain/reporter.h"
#include "toolchain/stop_signals.h"
#include "toolchain/verbs.h"

namespace toolchain {
namespace {

struct AgentCommand {
  std::string listen = "127.0.0.1:7070";
  std::string data_dir;
  std::string store;
  std::string token_file;
  std::string tls_cert;
  std::string tls_key;
  std::string gpus = "auto";
  std::string runtime = "runc";
  std::string metrics_auth = "token";
  std::optional<int> dashboard_port;  // none: no dashboard
  std::string web_domain;             // "": web functions at /apps/APP/FUNCTION only
  std::string call_retention = "7d";  // how long ended calls are kept
  std::string log_format;  // "": gantry's own --log-format, else text on a terminal, JSON elsewhere
  CLI::App* gantry = nullptr;  // the global options
};

int Fail(const core::Error& error) {
  ReportErrors({error});
  return error.code == core::ErrorCode::kInternal ? kExitInternal : kExitUserError;
}

int RunAgent(const AgentCommand& command) {
  std::size_t colon = command.listen.rfind(':');
  agents::ApiOptions api;
  try {
    if (colon == std::string::npos) throw std::invalid_argument("no port");
    api.host = command.listen.substr(0, colon);
    api.port = std::stoi(command.listen.substr(colon + 1));
  } catch (const std::exception&) {
    return Fail({core::ErrorCode::kInvalidArgument,
                 "--listen: expected HOST:PORT, got " + command.listen,
                 {}});
  }
  if (command.tls_cert.empty() != command.tls_key.empty()) {
    return Fail({core::ErrorCode::kInvalidArgument, "--tls-cert and --tls-key go together", {}});
  }
  if (!command.tls_cert.empty()) {
    api.tls_cert = command.tls_cert;
    api.tls_key = command.tls_key;
  }

  api.metrics_need_token = command.metrics_auth == "token";
  api.dashboard_port = command.dashboard_port;
  if (!command.web_domain.empty()) {
    // The names clients reach this agent's API by: none may be a function's.
    std::vector<std::string> own_names = {api.host};
    char hostname[HOST_NAME_MAX + 1] = {};
    if (gethostname(hostname, sizeof hostname - 1) == 0) own_names.emplace_back(hostname);
    if (auto checked = agents::Router::CheckWebDomain(command.web_domain, own_names); !checked.ok())
      return Fail(checked.error());
    api.web_domain = command.web_domain;
  }
  // The agent's log: text for a person at a terminal, one JSON object per
  // line for a log collector; --log-format (of the agent, or gantry's) decides.
  std::string log_format = command.log_format;
  if (log_format.empty() && command.gantry->get_option("--log-format")->count() > 0)
    log_format = command.gantry->get_option("--log-format")->as<std::string>();
  if (log_format.empty()) log_format = isatty(STDERR_FILENO) ? "text" : "json";
  ConfigureLogging(spdlog::get_level() <= spdlog::level::debug,
                   log_format == "json" ? LogFormat::kJson : LogFormat::kText);

  auto call_retention = core::ParseDuration(command.call_retention);
  // Shorter, and a call could go while its caller still reads it.
  if (!call_retention || *call_retention < std::chrono::minutes(1)) {
    return Fail({core::ErrorCode::kInvalidArgument,
                 "--call-retention: expected a duration of 1m or more such as 7d or 12h, got " +
                     command.call_retention,
                 {}});
  }

  StopSignals stop_signals;
  // The agent holds a socket per client connection and up to 64 spare
  // sockets per web container: a soft limit of 1024 open files (the usual
  // default) runs out long before the hard one, as nginx's would without
  // worker_rlimit_nofile. Containers get their own limit in their spec.
  if (rlimit files{}; getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }

  agents::AgentOptions options;
  options.data_dir = command.data_dir.empty() ? core::GantryHome() / "agent"
                                              : std::filesystem::path(command.data_dir);
  options.store = core::StoreOrDefault(command.store);
  options.gpus = command.gpus;
  options.runtime = command.runtime;
  options.version = GANTRY_VERSION;
  options.call_retention = *call_retention;
  auto agent = agents::Agent::Open(options);
  if (!agent) return Fail(agent.error());
  std::optional<std::filesystem::path> token_file;
  if (!command.token_file.empty()) token_file = command.token_file;
  auto token = agents::LoadOrCreateToken(options.data_dir, token_file);
  if (!token) return Fail(token.error());
  api.token = *token;

  agents::ApiServer server(**agent, api);
  if (auto bound = server.Bind(); !bound.ok()) return Fail(bound.error());
  std::string address =
      (api.tls_cert ? "https://" : "http://") + api.host + ":" + std::to_string(server.port());
  // Local tools (and tests) find the agent through these files; the
  // dashboard's first, as `address` says the agent is up.
  const std::filesystem::path dashboard_file = options.data_dir / "dashboard_address";
  std::string dashboard_address;
  if (api.dashboard_port) {
    dashboard_address = (api.tls_cert ? "https://" : "http://") + api.host + ":" +
                        std::to_string(server.dashboard_port());
    if (auto written = core::WriteFileAtomically(dashboard_file, dashboard_address + "\n");
        !written.ok()) {
      return Fail(written.error());
    }
  } else {
    std::error_code ignored;
    std::filesystem::remove(dashboard_file, ignored);
  }
  if (auto written = core::WriteFileAtomically(options.data_dir / "address", address + "\n");
      !written.ok()) {
    return Fail(written.error());
  }
  const std::string token_path =
      token_file ? token_file->string() : (options.data_dir / "token").string();
  spdlog::info("agent listening on {} (token in {})", address, token_path);
  if (!dashboard_address.empty())
    spdlog::info("dashboard at {}/ui (sign in with the token)", dashboard_address);
  if (!api.web_domain.empty()) {
    spdlog::info("web functions at {}FUNCTION.APP.{}:{}/ too (by Host)",
                 api.tls_cert ? "https://" : "http://", api.web_domain, server.port());
  }

  std::thread stopper([&] {
    int signal = stop_signals.Wait();
    spdlog::info("agent: stopping on signal {}", signal);
    (*agent)->Shutdown();
    server.Stop();
  });
  auto served = server.Serve();
  stop_signals.Notify();
  stopper.join();
  if (!served.ok()) return Fail(served.error());
  return kExitOk;
}

}  // namespace

void AddAgentVerb(CLI::App& gantry, int* exit_code) {
  auto command = std::make_shared<AgentCommand>();
  CLI::App* verb =
      gantry.add_subcommand("agent", "Run the agent that runs an app's containers on this host");
  verb->add_option("--listen", command->listen, "HOST:PORT of the API (port 0: any free port)")
      ->capture_default_str();
  verb->add_option("--data-dir", command->data_dir,
                   "The agent's folder (default: $GANTRY_HOME/agent)");
  verb->add_option("--store", command->store,
                   "The content store images are read from (default: $GANTRY_HOME/store)");
  verb->add_option("--token-file", command->token_file,
                   "A file holding the API token (default: DATA_DIR/token, made on first start)");
  verb->add_option("--tls-cert", command->tls_cert, "Serve HTTPS with this certificate (PEM)");
  verb->add_option("--tls-key", command->tls_key, "The certificate's private key (PEM)");
  verb->add_option("--gpus", command->gpus, "auto (CUDA driver), none, or fake:H100x8,A100-80GBx2")
      ->capture_default_str();
  verb->add_option("--runtime", command->runtime, "The OCI runtime binary (runc or crun)")
      ->capture_default_str();
  verb->add_option("--metrics-auth", command->metrics_auth,
                   "Who may read GET /metrics: token (as the API) or none (any scraper)")
      ->check(CLI::IsMember({"token", "none"}))
      ->capture_default_str();
  verb->add_option("--dashboard-port", command->dashboard_port,
                   "Serve the dashboard (/ui) on this port of the --listen host, its own origin "
                   "(0: any free port; default: no dashboard)")
      ->check(CLI::Range(0, 65535));
  verb->add_option("--web-domain", command->web_domain,
                   "Also serve each web function at http://FUNCTION.APP.DOMAIN/ (by Host header)");
  verb->add_option("--log-format", command->log_format,
                   "The agent's log on stderr: text, or json (one object per line); default: "
                   "text on a terminal, json elsewhere")
      ->check(CLI::IsMember({"text", "json"}));
  verb->add_option("--call-retention", command->call_retention,
                   "How long a job call's record and output are kept after it ended (7d, 12h)")
      ->capture_default_str();
  command->gantry = &gantry;
  verb->callback([command, exit_code] { *exit_code = RunAgent(*command); });
}

}  // namespace toolchain
