#include "builder/registry_client.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "builder/image_manifest.h"
#include "core/base64.h"
#include "core/gantry_home.h"
#include "core/sha256.h"
#include "core/unique_fd.h"

namespace builder {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr char kAcceptManifests[] =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json";

// Where the API of a registry named in references is.
std::string ApiHost(const std::string& domain) {
  return domain == "docker.io" ? "registry-1.docker.io" : domain;
}

// "application/json; charset=utf-8" -> "application/json".
std::string MediaTypeOf(const std::string& content_type) {
  std::string type = content_type.substr(0, content_type.find(';'));
  while (!type.empty() && type.back() == ' ') type.pop_back();
  return type;
}

// What a registry said went wrong: the distribution error body
// {"errors":[{"code":"BLOB_UNKNOWN","message":"..."}]}, else the status.
std::string RegistrySays(const core::HttpResponse& response) {
  std::string said;
  json body = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_object() && body.contains("errors") && body["errors"].is_array()) {
    for (const json& error : body["errors"]) {
      if (!error.is_object()) continue;
      std::string code = error.value("code", "");
      std::string message = error.value("message", "");
      said += (said.empty() ? "" : "; ") + code + (message.empty() ? "" : ": " + message);
    }
  }
  std::string status = "HTTP " + std::to_string(response.status);
  return said.empty() ? status : status + " (" + said + ")";
}

std::string WithQuery(const std::string& url, const std::string& query) {
  return url + (url.find('?') == std::string::npos ? "?" : "&") + query;
}

// A temporary file of the store, removed when the object goes unless kept.
class TempFile {
 public:
  explicit TempFile(std::filesystem::path path) : path_(std::move(path)) {}
  ~TempFile() {
    std::error_code ignored;
    if (!kept_) std::filesystem::remove(path_, ignored);
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::filesystem::path& path() const { return path_; }
  void Keep() { kept_ = true; }

 private:
  std::filesystem::path path_;
  bool kept_ = false;
};

// A request body read from `length` bytes of a file at `offset`, reporting
// progress as it goes: a blob is uploaded without holding it in memory.
std::function<core::Result<std::size_t>(char*, std::size_t)> FileBody(
    const std::filesystem::path& path, std::uint64_t offset, std::uint64_t length,
    std::function<void(std::uint64_t)> progress) {
  auto fd = std::make_shared<core::UniqueFd>(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  auto position = std::make_shared<std::uint64_t>(offset);
  std::uint64_t end = offset + length;
  return [fd, position, end, path, progress](char* buffer,
                                             std::size_t size) -> core::Result<std::size_t> {
    if (!fd->valid()) {
      return core::Error{
          core::ErrorCode::kIo, "cannot open " + path.string() + ": " + std::strerror(errno), {}};
    }
    std::size_t wanted = static_cast<std::size_t>(std::min<std::uint64_t>(size, end - *position));
    if (wanted == 0) return std::size_t{0};
    ssize_t read = 0;
    do {
      read = pread(fd->get(), buffer, wanted, static_cast<off_t>(*position));
    } while (read < 0 && errno == EINTR);
    if (read <= 0) {
      return core::Error{core::ErrorCode::kIo,
                         "cannot read " + path.string() + ": " +
                             (read < 0 ? std::strerror(errno) : "shorter than its descriptor"),
                         {}};
    }
    *position += static_cast<std::uint64_t>(read);
    if (progress) progress(*position);
    return static_cast<std::size_t>(read);
  };
}

}  // namespace

bool IsInsecureRegistry(const std::string& domain) {
  std::string host = domain;
  if (host.starts_with("[")) {
    host = host.substr(1, host.find(']') - 1);
  } else if (auto colon = host.rfind(':'); colon != std::string::npos) {
    host.resize(colon);
  }
  if (host == "localhost" || host == "::1" || host.starts_with("127.")) return true;
  const char* listed = std::getenv("GANTRY_INSECURE_REGISTRIES");
  std::string_view rest = listed == nullptr ? "" : listed;
  while (!rest.empty()) {
    std::size_t comma = rest.find(',');
    std::string_view entry = rest.substr(0, comma);
    while (!entry.empty() && entry.front() == ' ') entry.remove_prefix(1);
    while (!entry.empty() && entry.back() == ' ') entry.remove_suffix(1);
    if (!entry.empty() && (entry == domain || entry == host)) return true;
    rest = comma == std::string_view::npos ? "" : rest.substr(comma + 1);
  }
  return false;
}

std::vector<std::string> RegistryCaFiles(const std::string& domain) {
  std::vector<std::string> files;
  for (const std::filesystem::path& root :
       {core::GantryHome() / "certs.d", std::filesystem::path("/etc/docker/certs.d")}) {
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(root / domain, error)) {
      if (entry.path().extension() == ".crt") files.push_back(entry.path().string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

struct RegistryClient::State {
  std::string domain;
  std::string base_url;  // "https://host[:port]", or "http://…" once a registry proved plain
  RegistryOptions options;
  core::HttpClient http;
  std::vector<std::string> ca_files;  // RegistryCaFiles
  // Whether the scheme may still change: with `insecure`, until the first answer.
  bool may_fall_back_to_http = false;

  bool credentials_looked_up = false;
  enum class Auth { kAnonymous, kBasic, kBearer } auth = Auth::kAnonymous;
  std::string realm;
  std::string service;
  struct Token {
    std::string value;
    Clock::time_point expires;
  };
  std::map<std::string, Token> tokens;                   // by the scopes they grant
  std::map<std::string, std::string> blob_repositories;  // digest -> a repository that has it
  bool last_retryable = false;  // whether the last failed Exchange may work when tried again
  RegistryClient::ProgressCallback on_progress;  // of the push or pull under way

  static std::string PullScope(const std::string& repository) {
    return "repository:" + repository + ":pull";
  }
  static std::string PushScope(const std::string& repository) {
    return "repository:" + repository + ":pull,push";
  }
  static std::string ScopeKey(const std::vector<std::string>& scopes) {
    std::string key;
    for (const std::string& scope : scopes) key += scope + " ";
    return key;
  }

  std::string Url(const std::string& path) const { return base_url + path; }
  // An absolute URL for a Location header, which may be relative.
  std::string Absolute(const std::string& location) const {
    if (location.starts_with("http://") || location.starts_with("https://")) return location;
    return base_url + (location.starts_with("/") ? "" : "/") + location;
  }

  core::Error Fail(core::ErrorCode code, const std::string& message) const {
    return core::Error{code, domain + ": " + message, {}};
  }

  core::Error Untrusted(const core::Error& error) const {
    return Fail(core::ErrorCode::kIo,
                "the registry's TLS certificate is not trusted (" + error.message +
                    "): put the CA that signed it in " +
                    (core::GantryHome() / "certs.d" / domain / "ca.crt").string() +
                    " or /etc/docker/certs.d/" + domain +
                    "/ca.crt, or among the system's CAs (--insecure only allows plain HTTP)");
  }

  void Backoff(int attempt) const {
    auto wait = options.first_backoff * (1 << std::min(attempt, 5));
    std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(wait, std::chrono::seconds(8)));
  }

  void LookUpCredentials(core::Status* problem) {
    if (credentials_looked_up) return;
    credentials_looked_up = true;
    if (options.credentials) return;
    auto found = FindRegistryCredentials(domain);
    if (!found) {
      *problem = found.error();
      return;
    }
    options.credentials = *found;
  }

  std::string BasicAuthorization() const {
    return "Basic " +
           core::Base64Encode(options.credentials->username + ":" + options.credentials->password);
  }

  core::Error Unauthorized(const core::HttpResponse& response) const {
    if (options.credentials) {
      return Fail(core::ErrorCode::kInvalidArgument,
                  "the registry refused the credentials of user " + options.credentials->username +
                      " (from " + options.credentials->source + "): " + RegistrySays(response));
    }
    return Fail(core::ErrorCode::kInvalidArgument,
                "the registry requires authentication (" + RegistrySays(response) +
                    "): set GANTRY_REGISTRY_USER and GANTRY_REGISTRY_PASSWORD, or log in to it "
                    "in ~/.docker/config.json");
  }

  // A token from the realm for `scopes`, cached until it expires.
  core::Status FetchToken(const std::vector<std::string>& scopes) {
    // Credentials go in clear text only to a registry allowed plain HTTP.
    if (options.credentials && !options.insecure && realm.rfind("https://", 0) != 0) {
      return Fail(core::ErrorCode::kInvalidArgument,
                  "the registry sends its credentials to the token service " +
                      core::RedactedUrl(realm) +
                      ", which is not HTTPS; gantry sends them there only with --insecure");
    }
    std::string url = realm;
    if (!service.empty()) url = WithQuery(url, "service=" + core::UrlEncode(service));
    for (const std::string& scope : scopes) url = WithQuery(url, "scope=" + core::UrlEncode(scope));
    core::HttpRequest request;
    request.url = url;
    request.extra_ca_files = ca_files;
    if (options.credentials && options.credentials->identity_token) {
      // OAuth2 with the identity token as the refresh token, as Docker does.
      std::string scope_list;
      for (const std::string& scope : scopes) scope_list += (scope_list.empty() ? "" : " ") + scope;
      request.method = "POST";
      request.url = realm;
      request.max_redirects = 0;  // a redirect would carry the body (the token) along
      request.headers.Add("Content-Type", "application/x-www-form-urlencoded");
      request.body =
          "grant_type=refresh_token&client_id=gantry&service=" + core::UrlEncode(service) +
          "&scope=" + core::UrlEncode(scope_list) +
          "&refresh_token=" + core::UrlEncode(options.credentials->password);
    } else if (options.credentials) {
      request.headers.Add("Authorization", BasicAuthorization());
    }
    core::Result<core::HttpResponse> response = core::Error{};
    for (int attempt = 0;; ++attempt) {
      response = http.Send(request);
      if (!response && http.last_failure() == core::TransportFailure::kUntrustedTls)
        return Untrusted(response.error());
      bool retry = !response || response->status >= 500 || response->status == 429;
      if (!retry || attempt + 1 >= options.attempts) break;
      Backoff(attempt);
    }
    if (!response) return response.error();
    if (response->status == 401 || response->status == 403) return Unauthorized(*response);
    if (response->status != 200) {
      return Fail(core::ErrorCode::kIo, "the token service " + core::RedactedUrl(realm) +
                                            " answered " + RegistrySays(*response));
    }
    json body = json::parse(response->body, nullptr, /*allow_exceptions=*/false);
    std::string token;
    if (body.is_object()) {
      for (const char* field : {"token", "access_token"}) {
        if (body.contains(field) && body[field].is_string() && token.empty())
          token = body[field].get<std::string>();
      }
    }
    if (token.empty()) {
      return Fail(core::ErrorCode::kIo,
                  "the token service " + core::RedactedUrl(realm) + " gave no token");
    }
    std::int64_t expires_in = 60;  // the distribution spec's default
    if (body.contains("expires_in") && body["expires_in"].is_number_integer())
      expires_in = std::max<std::int64_t>(body["expires_in"].get<std::int64_t>(), 1);
    auto margin = std::chrono::seconds(std::min<std::int64_t>(10, expires_in / 2));
    tokens[ScopeKey(scopes)] =
        Token{std::move(token), Clock::now() + std::chrono::seconds(expires_in) - margin};
    return core::Ok{};
  }

  // After a 401: learns how the registry wants to be spoken to.
  core::Status Authenticate(const core::HttpResponse& response,
                            const std::vector<std::string>& scopes) {
    core::Status problem = core::Ok{};
    LookUpCredentials(&problem);
    if (!problem) return problem;
    std::vector<AuthChallenge> challenges =
        ParseAuthChallenges(response.headers.Get("WWW-Authenticate").value_or(""));
    for (const AuthChallenge& challenge : challenges) {
      auto found = challenge.parameters.find("realm");
      if (challenge.scheme != "bearer" || found == challenge.parameters.end()) continue;
      auth = Auth::kBearer;
      realm = found->second;
      auto service_found = challenge.parameters.find("service");
      service = service_found == challenge.parameters.end() ? "" : service_found->second;
      tokens.erase(ScopeKey(scopes));
      return FetchToken(scopes);
    }
    for (const AuthChallenge& challenge : challenges) {
      if (challenge.scheme != "basic") continue;
      if (!options.credentials) return Unauthorized(response);
      if (options.credentials->identity_token) {
        return Fail(core::ErrorCode::kInvalidArgument,
                    options.credentials->source +
                        " gave an identity token, which only a registry's token service takes, "
                        "and the registry asks for a user and password");
      }
      auth = Auth::kBasic;
      return core::Ok{};
    }
    return Fail(core::ErrorCode::kInvalidArgument,
                "the registry asks for an authentication gantry does not speak: " +
                    response.headers.Get("WWW-Authenticate").value_or("(no WWW-Authenticate)"));
  }

  core::Status Authorize(const std::vector<std::string>& scopes, core::HttpRequest& request) {
    if (auth == Auth::kBasic && options.credentials) {
      request.headers.Add("Authorization", BasicAuthorization());
    } else if (auth == Auth::kBearer) {
      auto token = tokens.find(ScopeKey(scopes));
      if (token == tokens.end() || token->second.expires <= Clock::now()) {
        auto fetched = FetchToken(scopes);
        if (!fetched) return fetched;
        token = tokens.find(ScopeKey(scopes));
      }
      request.headers.Add("Authorization", "Bearer " + token->second.value);
    }
    return core::Ok{};
  }

  // Sends the request `make` builds (once per try, so that bodies and sinks
  // start afresh), authorised for `scopes`: re-authenticates once on a 401,
  // tries again with backoff on connection errors and 5xx/429 answers. An
  // error set in `local_error` (a sink's or reader's own) is never retried.
  core::Result<core::HttpResponse> Exchange(const std::vector<std::string>& scopes,
                                            const std::function<core::HttpRequest()>& make,
                                            const std::optional<core::Error>* local_error = nullptr,
                                            int attempts = 0) {
    int tries = attempts > 0 ? attempts : options.attempts;
    bool reauthenticated = false;
    last_retryable = false;
    for (int attempt = 0;;) {
      core::HttpRequest request = make();
      request.extra_ca_files = ca_files;
      auto authorised = Authorize(scopes, request);
      if (!authorised) return authorised.error();
      auto response = http.Send(request);
      if (!response) {
        if (local_error != nullptr && local_error->has_value()) return **local_error;
        core::TransportFailure failure = http.last_failure();
        if (failure == core::TransportFailure::kUntrustedTls) return Untrusted(response.error());
        if (failure == core::TransportFailure::kNotTls && may_fall_back_to_http) {
          // A registry allowed plain HTTP that does not speak TLS: speak HTTP to it.
          may_fall_back_to_http = false;
          base_url = "http://" + ApiHost(domain);
          continue;
        }
        last_retryable = true;
        if (++attempt >= tries) return Fail(response.error().code, response.error().message);
        Backoff(attempt - 1);
        continue;
      }
      may_fall_back_to_http = false;
      if (response->status == 401) {
        if (reauthenticated) return Unauthorized(*response);
        auto authenticated = Authenticate(*response, scopes);
        if (!authenticated) return authenticated.error();
        reauthenticated = true;
        continue;
      }
      if (response->status >= 500 || response->status == 429) {
        last_retryable = true;
        if (++attempt < tries) {
          Backoff(attempt - 1);
          continue;
        }
      }
      return response;
    }
  }

  void Progress(const std::string& digest, std::uint64_t done, std::uint64_t size) const {
    if (on_progress) on_progress(TransferProgress{digest, done, size});
  }

  // A State for one more thread: this one's registry, options, scheme,
  // auth, tokens and known blob repositories, with a connection of its own.
  std::unique_ptr<State> Worker() const {
    auto worker = std::make_unique<State>();
    worker->domain = domain;
    worker->base_url = base_url;
    worker->options = options;
    worker->ca_files = ca_files;
    worker->may_fall_back_to_http = may_fall_back_to_http;
    worker->credentials_looked_up = credentials_looked_up;
    worker->auth = auth;
    worker->realm = realm;
    worker->service = service;
    worker->tokens = tokens;
    worker->blob_repositories = blob_repositories;
    return worker;
  }

  // `transfer` of each of `blobs`: the first on this State, which learns the
  // scheme and the auth, then the others on up to `parallel_blobs` Worker
  // States at once, progress reported one call at a time. After a failure no
  // blob starts; the first failure in the order of `blobs` is returned once
  // all threads are done. The blob repositories the workers learnt come back here.
  core::Status ForEachBlob(const std::vector<Descriptor>& blobs,
                           const std::function<core::Status(State&, const Descriptor&)>& transfer) {
    if (blobs.empty()) return core::Ok{};
    auto first = transfer(*this, blobs[0]);
    if (!first) return first;
    std::size_t threads = std::min<std::size_t>(
        static_cast<std::size_t>(std::max(options.parallel_blobs, 1)), blobs.size() - 1);
    std::mutex mutex;  // the next blob, the failures, progress calls
    std::size_t next = 1;
    bool failed = false;
    std::vector<std::optional<core::Error>> errors(blobs.size());
    std::vector<std::unique_ptr<State>> workers;
    for (std::size_t i = 0; i < threads; ++i) {
      workers.push_back(Worker());
      if (on_progress) {
        workers.back()->on_progress = [&](const TransferProgress& progress) {
          std::lock_guard lock(mutex);
          on_progress(progress);
        };
      }
    }
    std::vector<std::thread> pool;
    for (auto& worker : workers) {
      pool.emplace_back([&, state = worker.get()] {
        while (true) {
          std::size_t index = 0;
          {
            std::lock_guard lock(mutex);
            if (failed || next >= blobs.size()) return;
            index = next++;
          }
          auto done = transfer(*state, blobs[index]);
          if (!done) {
            std::lock_guard lock(mutex);
            errors[index] = done.error();
            failed = true;
          }
        }
      });
    }
    for (std::thread& thread : pool) thread.join();
    for (auto& worker : workers) {
      for (auto& [digest, repository] : worker->blob_repositories)
        blob_repositories.insert_or_assign(digest, repository);
    }
    for (auto& error : errors) {
      if (error) return *error;
    }
    return core::Ok{};
  }

  // --- push ---

  // `method` to an upload session `url` with `length` bytes of `blob` from
  // `offset`, read from the store's file as they go out, progress reported.
  core::HttpRequest BlobUpload(const std::string& method, const std::string& url,
                               const ContentStore& store, const Descriptor& blob,
                               std::uint64_t offset, std::uint64_t length) const {
    core::HttpRequest request;
    request.method = method;
    request.url = url;
    request.headers.Add("Content-Type", "application/octet-stream");
    request.body_size = length;
    request.body_reader =
        FileBody(store.BlobPath(blob.digest), offset, length,
                 [this, &blob](std::uint64_t done) { Progress(blob.digest, done, blob.size); });
    return request;
  }

  // One PUT of the whole blob to an upload session.
  core::Status UploadMonolithic(const std::vector<std::string>& scopes, const std::string& location,
                                const ContentStore& store, const Descriptor& blob) {
    std::string url = WithQuery(location, "digest=" + core::UrlEncode(blob.digest));
    auto response = Exchange(
        scopes, [&] { return BlobUpload("PUT", url, store, blob, 0, blob.size); }, nullptr, 1);
    if (!response) return response.error();
    if (response->status != 201) {
      last_retryable = last_retryable || response->status >= 500;
      return Fail(core::ErrorCode::kIo,
                  "uploading " + blob.digest + " failed: " + RegistrySays(*response));
    }
    return core::Ok{};
  }

  // PATCH after PATCH of chunks, resuming from what the registry says it has
  // when one fails, then the closing PUT.
  core::Status UploadChunked(const std::vector<std::string>& scopes, std::string location,
                             std::uint64_t chunk_min, const ContentStore& store,
                             const Descriptor& blob) {
    std::uint64_t chunk = std::max(options.chunk_bytes, chunk_min);
    std::uint64_t offset = 0;
    int failures = 0;
    while (offset < blob.size) {
      std::uint64_t length = std::min(chunk, blob.size - offset);
      auto response = Exchange(
          scopes,
          [&] {
            core::HttpRequest request = BlobUpload("PATCH", location, store, blob, offset, length);
            request.headers.Add("Content-Range",
                                std::to_string(offset) + "-" + std::to_string(offset + length - 1));
            return request;
          },
          nullptr, 1);
      if (response && response->status == 202) {
        if (auto next = response->headers.Get("Location")) location = Absolute(*next);
        std::optional<std::string> range = response->headers.Get("Range");
        offset = offset + length;
        if (range && range->find('-') != std::string::npos)
          offset = std::strtoull(range->c_str() + range->find('-') + 1, nullptr, 10) + 1;
        continue;
      }
      bool retryable =
          response ? (response->status >= 500 || response->status == 416) : last_retryable;
      if (!retryable || ++failures >= options.attempts) {
        if (!response) return response.error();
        return Fail(core::ErrorCode::kIo,
                    "uploading a chunk of " + blob.digest + " failed: " + RegistrySays(*response));
      }
      // Resume from what the registry has.
      Backoff(failures - 1);
      auto status = Exchange(scopes, [&] {
        core::HttpRequest request;
        request.url = location;
        return request;
      });
      if (!status) return status.error();
      if (status->status != 204) {
        return Fail(core::ErrorCode::kIo,
                    "the upload of " + blob.digest + " was lost: " + RegistrySays(*status));
      }
      if (auto next = status->headers.Get("Location")) location = Absolute(*next);
      std::optional<std::string> range = status->headers.Get("Range");
      offset = range && range->find('-') != std::string::npos
                   ? std::strtoull(range->c_str() + range->find('-') + 1, nullptr, 10) + 1
                   : 0;
    }
    auto closed = Exchange(scopes, [&] {
      core::HttpRequest request;
      request.method = "PUT";
      request.url = WithQuery(location, "digest=" + core::UrlEncode(blob.digest));
      request.headers.Add("Content-Type", "application/octet-stream");
      return request;
    });
    if (!closed) return closed.error();
    if (closed->status != 201) {
      return Fail(core::ErrorCode::kIo,
                  "finishing the upload of " + blob.digest + " failed: " + RegistrySays(*closed));
    }
    return core::Ok{};
  }

  core::Status PushBlob(const ContentStore& store, const std::string& repository,
                        const Descriptor& blob, PushResult& result) {
    const std::vector<std::string> scopes = {PushScope(repository)};
    const std::string blob_path = "/v2/" + repository + "/blobs/";
    auto head = Exchange(scopes, [&] {
      core::HttpRequest request;
      request.method = "HEAD";
      request.url = Url(blob_path + blob.digest);
      return request;
    });
    if (!head) return head.error();
    if (head->status == 200) {
      ++result.blobs_present;
      blob_repositories[blob.digest] = repository;
      return core::Ok{};
    }
    if (head->status != 404)
      return Fail(core::ErrorCode::kIo, "HEAD of " + blob.digest + ": " + RegistrySays(*head));

    for (int attempt = 0;; ++attempt) {
      std::optional<core::HttpResponse> started;
      auto known = blob_repositories.find(blob.digest);
      if (known != blob_repositories.end() && known->second != repository) {
        std::vector<std::string> mount_scopes = {PushScope(repository), PullScope(known->second)};
        auto mounted = Exchange(mount_scopes, [&] {
          core::HttpRequest request;
          request.method = "POST";
          request.url = Url(blob_path + "uploads/?mount=" + core::UrlEncode(blob.digest) +
                            "&from=" + core::UrlEncode(known->second));
          return request;
        });
        if (!mounted) return mounted.error();
        if (mounted->status == 201) {
          ++result.blobs_mounted;
          blob_repositories[blob.digest] = repository;
          return core::Ok{};
        }
        if (mounted->status == 202) started = std::move(mounted).value();
      }
      if (!started) {
        auto posted = Exchange(scopes, [&] {
          core::HttpRequest request;
          request.method = "POST";
          request.url = Url(blob_path + "uploads/");
          return request;
        });
        if (!posted) return posted.error();
        if (posted->status != 202) {
          return Fail(core::ErrorCode::kIo, "starting the upload of " + blob.digest +
                                                " failed: " + RegistrySays(*posted));
        }
        started = std::move(posted).value();
      }
      std::optional<std::string> location = started->headers.Get("Location");
      if (!location) {
        return Fail(core::ErrorCode::kIo, "the registry started an upload without a Location");
      }
      std::uint64_t chunk_min = 0;
      if (auto minimum = started->headers.Get("OCI-Chunk-Min-Length"))
        chunk_min = std::strtoull(minimum->c_str(), nullptr, 10);
      last_retryable = false;
      core::Status uploaded =
          blob.size <= options.monolithic_limit
              ? UploadMonolithic(scopes, Absolute(*location), store, blob)
              : UploadChunked(scopes, Absolute(*location), chunk_min, store, blob);
      if (uploaded) break;
      // A monolithic PUT cut short leaves a session in an unknown state: start another.
      if (!last_retryable || attempt + 1 >= options.attempts) return uploaded;
      Backoff(attempt);
    }
    ++result.blobs_uploaded;
    result.bytes_uploaded += blob.size;
    blob_repositories[blob.digest] = repository;
    return core::Ok{};
  }

  // --- pull ---

  // A manifest or index by tag or digest, checked against the digest it
  // was asked by (and the one the registry says it has).
  core::Result<std::pair<std::string, std::string>> FetchManifest(const std::string& repository,
                                                                  const std::string& reference,
                                                                  const std::string& expected) {
    auto response = Exchange({PullScope(repository)}, [&] {
      core::HttpRequest request;
      request.url = Url("/v2/" + repository + "/manifests/" + reference);
      request.headers.Add("Accept", kAcceptManifests);
      request.max_body_bytes = 4 << 20;  // the distribution spec's manifest limit
      return request;
    });
    if (!response) return response.error();
    std::string where = repository + (reference.starts_with("sha256:") ? "@" : ":") + reference;
    if (response->status == 404) {
      return Fail(core::ErrorCode::kNotFound, "no image " + where + ": " + RegistrySays(*response));
    }
    if (response->status != 200) {
      return Fail(core::ErrorCode::kIo,
                  "fetching the manifest of " + where + " failed: " + RegistrySays(*response));
    }
    std::string digest = core::Sha256Digest(response->body);
    std::optional<std::string> said = response->headers.Get("Docker-Content-Digest");
    if ((!expected.empty() && digest != expected) ||
        (said && said->starts_with("sha256:") && *said != digest)) {
      return Fail(core::ErrorCode::kIo, "the manifest of " + where + " does not match its digest " +
                                            (expected.empty() ? *said : expected) + " (it is " +
                                            digest + ")");
    }
    std::string media_type = MediaTypeOf(response->headers.Get("Content-Type").value_or(""));
    if (!IsImageIndex(media_type) && !IsImageManifest(media_type)) {
      json body = json::parse(response->body, nullptr, /*allow_exceptions=*/false);
      if (body.is_object() && body.contains("mediaType") && body["mediaType"].is_string())
        media_type = body["mediaType"].get<std::string>();
    }
    if (!IsImageIndex(media_type) && !IsImageManifest(media_type)) {
      return Fail(core::ErrorCode::kParse, where + " is a " +
                                               (media_type.empty() ? "document" : media_type) +
                                               ", not an image manifest or index");
    }
    return std::pair{std::move(response->body), media_type};
  }

  // Streams a blob into the store, hashing it as it lands; kept only when its
  // digest and size are the descriptor's.
  core::Status FetchBlob(const std::string& repository, const Descriptor& blob, ContentStore& store,
                         PullResult& result) {
    TempFile temp(store.TempPath("pull"));
    core::UniqueFd fd;
    std::optional<core::Sha256> hasher;
    std::uint64_t received = 0;
    std::optional<core::Error> local_error;
    auto response = Exchange(
        {PullScope(repository)},
        [&] {
          fd = core::UniqueFd(
              open(temp.path().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
          hasher.emplace();
          received = 0;
          core::HttpRequest request;
          request.url = Url("/v2/" + repository + "/blobs/" + blob.digest);
          request.body_sink = [&](std::string_view piece) -> core::Status {
            received += piece.size();
            if (received > blob.size) {
              local_error =
                  Fail(core::ErrorCode::kIo,
                       "blob " + blob.digest + " of " + repository + " is larger than the " +
                           std::to_string(blob.size) + " bytes its descriptor says");
              return *local_error;
            }
            if (!fd.valid()) {
              local_error =
                  core::Error{core::ErrorCode::kIo,
                              "cannot write " + temp.path().string() + ": " + std::strerror(errno),
                              {}};
              return *local_error;
            }
            hasher->Update(piece);
            while (!piece.empty()) {
              ssize_t written = write(fd.get(), piece.data(), piece.size());
              if (written < 0 && errno == EINTR) continue;
              if (written <= 0) {
                local_error = core::Error{
                    core::ErrorCode::kIo,
                    "cannot write " + temp.path().string() + ": " + std::strerror(errno),
                    {}};
                return *local_error;
              }
              piece.remove_prefix(static_cast<std::size_t>(written));
            }
            Progress(blob.digest, received, blob.size);
            return core::Ok{};
          };
          return request;
        },
        &local_error);
    if (!response) return response.error();
    if (response->status != 200) {
      return Fail(core::ErrorCode::kIo, "fetching blob " + blob.digest + " of " + repository +
                                            " failed: " + RegistrySays(*response));
    }
    std::string digest = hasher->Finish();
    if (digest != blob.digest || received != blob.size) {
      return Fail(core::ErrorCode::kIo, "blob " + blob.digest + " of " + repository +
                                            " does not match its digest (got " +
                                            std::to_string(received) + " bytes with digest " +
                                            digest + "); nothing was kept");
    }
    fd.Reset();
    auto adopted = store.AdoptBlob(temp.path(), blob.digest);
    if (!adopted) return adopted;
    temp.Keep();
    ++result.blobs_downloaded;
    result.bytes_downloaded += blob.size;
    return core::Ok{};
  }
};

RegistryClient::RegistryClient(std::string domain, RegistryOptions options)
    : state_(std::make_unique<State>()) {
  state_->base_url = "https://" + ApiHost(domain);
  state_->may_fall_back_to_http = options.insecure;
  state_->ca_files = RegistryCaFiles(domain);
  state_->domain = std::move(domain);
  state_->options = std::move(options);
}
RegistryClient::~RegistryClient() = default;
RegistryClient::RegistryClient(RegistryClient&&) noexcept = default;
RegistryClient& RegistryClient::operator=(RegistryClient&&) noexcept = default;

core::Result<PushResult> RegistryClient::Push(const ContentStore& store,
                                              const std::string& manifest_digest,
                                              const std::string& repository, const std::string& tag,
                                              ProgressCallback on_progress) {
  state_->on_progress = std::move(on_progress);
  struct ForgetProgress {
    State* state;
    ~ForgetProgress() { state->on_progress = nullptr; }
  } forget_progress{state_.get()};
  auto manifest_text = store.ReadBlob(manifest_digest);
  if (!manifest_text) return manifest_text.error();
  json manifest = json::parse(*manifest_text, nullptr, /*allow_exceptions=*/false);
  std::string media_type = kOciManifestMediaType;
  if (manifest.is_object() && manifest.contains("mediaType") && manifest["mediaType"].is_string())
    media_type = manifest["mediaType"].get<std::string>();
  auto image = ReadStoredImage(store, manifest_digest);
  if (!image) return image.error();
  PushResult result;
  result.manifest_digest = manifest_digest;
  std::mutex result_mutex;
  auto layers_pushed = state_->ForEachBlob(
      image->layers, [&](State& state, const Descriptor& layer) -> core::Status {
        PushResult one;
        auto pushed = state.PushBlob(store, repository, layer, one);
        std::lock_guard lock(result_mutex);
        result.blobs_uploaded += one.blobs_uploaded;
        result.blobs_mounted += one.blobs_mounted;
        result.blobs_present += one.blobs_present;
        result.bytes_uploaded += one.bytes_uploaded;
        return pushed;
      });
  if (!layers_pushed) return layers_pushed.error();
  auto pushed = state_->PushBlob(store, repository, image->config, result);
  if (!pushed) return pushed.error();

  auto response = state_->Exchange({State::PushScope(repository)}, [&] {
    core::HttpRequest request;
    request.method = "PUT";
    request.url = state_->Url("/v2/" + repository + "/manifests/" + tag);
    request.headers.Add("Content-Type", media_type);
    request.body = *manifest_text;
    return request;
  });
  if (!response) return response.error();
  if (response->status != 201 && response->status != 200) {
    return state_->Fail(core::ErrorCode::kIo, "pushing the manifest of " + repository + ":" + tag +
                                                  " failed: " + RegistrySays(*response));
  }
  std::optional<std::string> said = response->headers.Get("Docker-Content-Digest");
  if (said && *said != manifest_digest) {
    return state_->Fail(core::ErrorCode::kIo, "the registry stored the manifest of " + repository +
                                                  ":" + tag + " as " + *said + ", not " +
                                                  manifest_digest);
  }
  result.reference = state_->domain + "/" + repository + "@" + manifest_digest;
  return result;
}

core::Result<PullResult> RegistryClient::Pull(const core::ImageReference& reference,
                                              const Platform& platform, ContentStore& store,
                                              const std::string& name,
                                              ProgressCallback on_progress) {
  state_->on_progress = std::move(on_progress);
  struct ForgetProgress {
    State* state;
    ~ForgetProgress() { state->on_progress = nullptr; }
  } forget_progress{state_.get()};
  const std::string& repository = reference.repository;
  auto fetched = state_->FetchManifest(
      repository, reference.digest.empty() ? reference.tag : reference.digest, reference.digest);
  if (!fetched) return fetched.error();
  auto [manifest_text, media_type] = std::move(fetched).value();
  if (IsImageIndex(media_type)) {
    json index = json::parse(manifest_text, nullptr, /*allow_exceptions=*/false);
    auto chosen = ChooseManifest(index, platform);
    if (!chosen) {
      return state_->Fail(chosen.error().code,
                          reference.ToString() + ": " + chosen.error().message);
    }
    auto platform_manifest = state_->FetchManifest(repository, chosen->digest, chosen->digest);
    if (!platform_manifest) return platform_manifest.error();
    std::tie(manifest_text, media_type) = std::move(platform_manifest).value();
    if (!IsImageManifest(media_type)) {
      return state_->Fail(core::ErrorCode::kParse,
                          reference.ToString() + ": the index points at another index");
    }
  }
  json manifest = json::parse(manifest_text, nullptr, /*allow_exceptions=*/false);
  if (!manifest.is_object() || !manifest.contains("config") || !manifest.contains("layers") ||
      !manifest["layers"].is_array()) {
    return state_->Fail(core::ErrorCode::kParse,
                        reference.ToString() + ": the manifest has no config or layers");
  }
  std::vector<Descriptor> blobs;
  auto config = Descriptor::FromJson(manifest["config"]);
  if (!config) return config.error();
  blobs.push_back(*config);
  for (const json& entry : manifest["layers"]) {
    auto layer = Descriptor::FromJson(entry);
    if (!layer) return layer.error();
    blobs.push_back(*layer);
  }
  PullResult result;
  std::vector<Descriptor> missing;
  for (const Descriptor& blob : blobs) {
    bool listed = std::any_of(missing.begin(), missing.end(),
                              [&](const Descriptor& other) { return other.digest == blob.digest; });
    if (store.HasBlob(blob.digest)) {
      ++result.blobs_present;
    } else if (!listed) {
      missing.push_back(blob);
    }
  }
  std::mutex result_mutex;
  auto pulled =
      state_->ForEachBlob(missing, [&](State& state, const Descriptor& blob) -> core::Status {
        PullResult one;
        auto fetched = state.FetchBlob(repository, blob, store, one);
        std::lock_guard lock(result_mutex);
        result.blobs_downloaded += one.blobs_downloaded;
        result.bytes_downloaded += one.bytes_downloaded;
        return fetched;
      });
  if (!pulled) return pulled.error();
  auto stored = store.PutBlob(manifest_text, media_type);
  if (!stored) return stored.error();
  auto image = ReadStoredImage(store, stored->digest);
  if (!image) return image.error();
  auto tagged = store.Tag(name, *stored);
  if (!tagged) return tagged.error();
  result.manifest = *stored;
  result.manifest.annotations[kRefNameAnnotation] = name;
  return result;
}

}  // namespace builder
