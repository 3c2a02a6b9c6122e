// RegistryClient against a small in-process registry (cpp-httplib) that
// speaks the Bearer token flow: tokens, their cache, platform choice,
// redirected blobs and corrupted ones. The real registry is in
// tests/registry_test.cc.

#include "builder/registry_client.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <map>
#include <mutex>
#include <thread>

#include "builder/image_manifest.h"
#include "core/base64.h"
#include "core/image_reference.h"
#include "core/sha256.h"
#include "tests/temp_dir.h"

namespace {

using nlohmann::json;

class TestServer {
 public:
  TestServer() {
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~TestServer() {
    server_.stop();
    thread_.join();
  }
  httplib::Server& server() { return server_; }
  std::string Domain() const { return "127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

// A registry holding one image (team/app:v1, and an index team/app:multi
// pointing at it for linux/amd64), whose API wants a Bearer token that its
// /token endpoint gives to alice:secret. Layer blobs are served by a second
// server on "localhost" through a redirect, as registries backed by object
// stores do.
struct FakeRegistry {
  TestServer api;
  TestServer blob_host;
  std::map<std::string, std::string> blobs;  // digest -> content as served
  std::string manifest;
  std::string index;
  std::string layer_digest;
  std::atomic<int> tokens_given{0};
  std::atomic<int> blob_gets{0};
  std::atomic<bool> leaked_authorization{false};

  static std::string Put(std::map<std::string, std::string>& blobs, const std::string& content) {
    std::string digest = core::Sha256Digest(content);
    blobs[digest] = content;
    return digest;
  }

  explicit FakeRegistry(const std::string& layer_content = "layer bytes") {
    std::string config =
        json{{"architecture", "amd64"},
             {"os", "linux"},
             {"config", {{"Env", {"PATH=/bin"}}}},
             {"rootfs", {{"type", "layers"}, {"diff_ids", {"sha256:" + std::string(64, '1')}}}}}
            .dump();
    std::string config_digest = Put(blobs, config);
    layer_digest = core::Sha256Digest("layer bytes");
    blobs[layer_digest] = layer_content;  // what is served, corrupted or not
    manifest = json{{"schemaVersion", 2},
                    {"mediaType", builder::kOciManifestMediaType},
                    {"config",
                     {{"mediaType", builder::kOciConfigMediaType},
                      {"digest", config_digest},
                      {"size", config.size()}}},
                    {"layers",
                     {{{"mediaType", builder::kOciLayerGzipMediaType},
                       {"digest", layer_digest},
                       {"size", std::string("layer bytes").size()}}}}}
                   .dump();
    index = json{{"schemaVersion", 2},
                 {"mediaType", builder::kOciIndexMediaType},
                 {"manifests",
                  {{{"mediaType", builder::kOciManifestMediaType},
                    {"digest", "sha256:" + std::string(64, 'a')},
                    {"size", 10},
                    {"platform", {{"os", "linux"}, {"architecture", "arm64"}}}},
                   {{"mediaType", builder::kOciManifestMediaType},
                    {"digest", core::Sha256Digest(manifest)},
                    {"size", manifest.size()},
                    {"platform", {{"os", "linux"}, {"architecture", "amd64"}}}}}}}
                .dump();

    std::string realm = "http://" + api.Domain() + "/token";
    api.server().Get(
        "/token", [this](const httplib::Request& request, httplib::Response& response) {
          if (request.get_header_value("Authorization") !=
              "Basic " + core::Base64Encode("alice:secret")) {
            response.status = 401;
            return;
          }
          ++tokens_given;
          response.set_content(
              json{{"token", "token-" + std::to_string(tokens_given.load())}, {"expires_in", 300}}
                  .dump(),
              "application/json");
        });
    // An identity token (a credential helper's `<token>` user) is an OAuth2 refresh token.
    api.server().Post("/token", [this](const httplib::Request& request,
                                       httplib::Response& response) {
      if (request.get_param_value("grant_type") != "refresh_token" ||
          request.get_param_value("refresh_token") != "identity-token" ||
          request.get_param_value("scope").find("repository:") != 0) {
        response.status = 401;
        return;
      }
      ++tokens_given;
      response.set_content(json{{"access_token", "token-" + std::to_string(tokens_given.load())},
                                {"expires_in", 300}}
                               .dump(),
                           "application/json");
    });
    auto authorised = [this, realm](const httplib::Request& request, httplib::Response& response,
                                    const std::string& repository) {
      if (request.get_header_value("Authorization").rfind("Bearer token-", 0) == 0) return true;
      response.status = 401;
      response.set_header("WWW-Authenticate",
                          "Bearer realm=\"" + realm +
                              "\",service=\"fake\",scope=\"repository:" + repository + ":pull\"");
      response.set_content(
          R"({"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]})",
          "application/json");
      return false;
    };
    api.server().Get(
        R"(/v2/(.+)/manifests/(.+))",
        [this, authorised](const httplib::Request& request, httplib::Response& response) {
          if (!authorised(request, response, request.matches[1])) return;
          std::string reference = request.matches[2];
          if (reference == "v1" || reference == core::Sha256Digest(manifest)) {
            response.set_content(manifest, builder::kOciManifestMediaType);
          } else if (reference == "multi") {
            response.set_content(index, builder::kOciIndexMediaType);
          } else {
            response.status = 404;
            response.set_content(
                R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]})",
                "application/json");
          }
        });
    api.server().Get(
        R"(/v2/(.+)/blobs/(sha256:[0-9a-f]+))",
        [this, authorised](const httplib::Request& request, httplib::Response& response) {
          if (!authorised(request, response, request.matches[1])) return;
          ++blob_gets;
          std::string digest = request.matches[2];
          if (digest == layer_digest) {
            response.set_redirect("http://localhost:" + std::to_string(blob_host.port()) +
                                      "/storage/" + digest + "?signature=s",
                                  307);
            return;
          }
          auto found = blobs.find(digest);
          if (found == blobs.end()) {
            response.status = 404;
            return;
          }
          response.set_content(found->second, "application/octet-stream");
        });
    blob_host.server().Get(R"(/storage/(sha256:[0-9a-f]+))", [this](const httplib::Request& request,
                                                                    httplib::Response& response) {
      if (request.has_header("Authorization")) leaked_authorization = true;
      response.set_content(blobs[request.matches[1]], "application/octet-stream");
    });
  }
};

builder::RegistryOptions Options(const std::string& password = "secret") {
  builder::RegistryOptions options;
  options.insecure = true;
  options.credentials = builder::RegistryCredentials{"alice", password, "the test"};
  options.first_backoff = std::chrono::milliseconds(1);
  return options;
}

}  // namespace

TEST_CASE("RegistryClient pulls through the Bearer token flow, caching the token") {
  FakeRegistry registry;
  tests::TempDir dir;
  auto store = builder::ContentStore::Open(dir.path() / "store");
  REQUIRE(store.ok());
  builder::RegistryClient client(registry.api.Domain(), Options());
  auto reference = core::ParseImageReference(registry.api.Domain() + "/team/app:v1").value();
  auto pulled = client.Pull(reference, builder::HostPlatform(), *store, "app");
  INFO((pulled.ok() ? "" : pulled.error().message));
  REQUIRE(pulled.ok());
  CHECK(pulled->manifest.digest == core::Sha256Digest(registry.manifest));
  CHECK(pulled->blobs_downloaded == 2);
  CHECK(registry.tokens_given == 1);           // one token for the scope, reused for every request
  CHECK_FALSE(registry.leaked_authorization);  // the redirected blob got no token
  auto image = builder::ReadStoredImage(*store, pulled->manifest.digest);
  REQUIRE(image.ok());
  CHECK(store->HasBlob(registry.layer_digest));
  CHECK(store->Find("app").value()->digest == pulled->manifest.digest);

  // Again: every blob is there, none fetched.
  int gets = registry.blob_gets;
  auto again = client.Pull(reference, builder::HostPlatform(), *store, "app");
  REQUIRE(again.ok());
  CHECK(again->blobs_downloaded == 0);
  CHECK(again->blobs_present == 2);
  CHECK(registry.blob_gets == gets);
}

TEST_CASE("RegistryClient trades an identity token for a Bearer token with an OAuth2 POST") {
  FakeRegistry registry;
  tests::TempDir dir;
  auto store = builder::ContentStore::Open(dir.path() / "store").value();
  builder::RegistryOptions options = Options();
  options.credentials =
      builder::RegistryCredentials{"<token>", "identity-token", "docker-credential-test", true};
  builder::RegistryClient client(registry.api.Domain(), options);
  auto reference = core::ParseImageReference(registry.api.Domain() + "/team/app:v1").value();
  auto pulled = client.Pull(reference, builder::HostPlatform(), store, "app");
  INFO((pulled.ok() ? "" : pulled.error().message));
  REQUIRE(pulled.ok());
  CHECK(registry.tokens_given == 1);
  CHECK(pulled->blobs_downloaded == 2);
}

TEST_CASE("RegistryClient picks the platform's manifest from an index") {
  FakeRegistry registry;
  tests::TempDir dir;
  auto store = builder::ContentStore::Open(dir.path() / "store").value();
  builder::RegistryClient client(registry.api.Domain(), Options());
  auto reference = core::ParseImageReference(registry.api.Domain() + "/team/app:multi").value();
  auto pulled = client.Pull(reference, {"linux", "amd64", ""}, store, "multi");
  INFO((pulled.ok() ? "" : pulled.error().message));
  REQUIRE(pulled.ok());
  CHECK(pulled->manifest.digest == core::Sha256Digest(registry.manifest));
  auto other = client.Pull(reference, {"linux", "riscv64", ""}, store, "multi-riscv");
  REQUIRE_FALSE(other.ok());
  CHECK(other.error().message.find("no manifest for linux/riscv64 (it has linux/arm64/v8, "
                                   "linux/amd64)") != std::string::npos);
  auto missing =
      client.Pull(core::ParseImageReference(registry.api.Domain() + "/team/app:v9").value(),
                  builder::HostPlatform(), store, "v9");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == core::ErrorCode::kNotFound);
  CHECK(missing.error().message.find("MANIFEST_UNKNOWN") != std::string::npos);
}

TEST_CASE("RegistryClient names a refused user and never the password") {
  FakeRegistry registry;
  tests::TempDir dir;
  auto store = builder::ContentStore::Open(dir.path() / "store").value();
  builder::RegistryClient client(registry.api.Domain(), Options("wrong-password"));
  auto reference = core::ParseImageReference(registry.api.Domain() + "/team/app:v1").value();
  auto pulled = client.Pull(reference, builder::HostPlatform(), store, "app");
  REQUIRE_FALSE(pulled.ok());
  CHECK(pulled.error().message.find("refused the credentials of user alice (from the test)") !=
        std::string::npos);
  CHECK(pulled.error().message.find("wrong-password") == std::string::npos);
}

TEST_CASE("RegistryClient rejects a corrupted blob and keeps nothing of it") {
  FakeRegistry registry("LAYER BYTES");  // same size, other bytes
  tests::TempDir dir;
  auto store = builder::ContentStore::Open(dir.path() / "store").value();
  builder::RegistryClient client(registry.api.Domain(), Options());
  auto reference = core::ParseImageReference(registry.api.Domain() + "/team/app:v1").value();
  auto pulled = client.Pull(reference, builder::HostPlatform(), store, "app");
  REQUIRE_FALSE(pulled.ok());
  CHECK(pulled.error().message.find("does not match its digest") != std::string::npos);
  CHECK_FALSE(store.HasBlob(registry.layer_digest));
  CHECK(std::filesystem::is_empty(store.PrivateDir() / "tmp"));
  CHECK_FALSE(store.Find("app").value().has_value());
}

TEST_CASE("IsInsecureRegistry: loopback and GANTRY_INSECURE_REGISTRIES") {
  CHECK(builder::IsInsecureRegistry("127.0.0.1:5000"));
  CHECK(builder::IsInsecureRegistry("localhost"));
  CHECK(builder::IsInsecureRegistry("[::1]:5000"));
  CHECK_FALSE(builder::IsInsecureRegistry("registry.example.com"));
  setenv("GANTRY_INSECURE_REGISTRIES", "registry.lan:5000, other.lan", 1);
  CHECK(builder::IsInsecureRegistry("registry.lan:5000"));
  CHECK(builder::IsInsecureRegistry("other.lan:443"));
  CHECK_FALSE(builder::IsInsecureRegistry("registry.lan:5001"));
  unsetenv("GANTRY_INSECURE_REGISTRIES");
}

namespace {

// An image of `layer_count` layers of `layer_size` bytes each (distinct
// bytes) in `store`: its manifest descriptor and its layers.
std::pair<builder::Descriptor, std::vector<builder::Descriptor>> StoreImage(
    builder::ContentStore& store, int layer_count, std::size_t layer_size) {
  std::vector<builder::Descriptor> layers;
  json diff_ids = json::array();
  for (int n = 0; n < layer_count; ++n) {
    std::string layer(layer_size, '\0');
    for (std::size_t i = 0; i < layer.size(); ++i)
      layer[i] = static_cast<char>((i * 7 + static_cast<std::size_t>(n)) % 251);
    layers.push_back(store.PutBlob(layer, builder::kOciLayerGzipMediaType).value());
    diff_ids.push_back("sha256:" + std::string(64, static_cast<char>('1' + n)));
  }
  std::string config = json{{"architecture", "amd64"},
                            {"os", "linux"},
                            {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}}
                           .dump();
  json layer_list = json::array();
  for (const builder::Descriptor& layer : layers) layer_list.push_back(layer.ToJson());
  std::string manifest = json{
      {"schemaVersion", 2},
      {"mediaType", builder::kOciManifestMediaType},
      {"config", store.PutBlob(config, builder::kOciConfigMediaType).value().ToJson()},
      {"layers", layer_list}}.dump();
  return {store.PutBlob(manifest, builder::kOciManifestMediaType).value(), layers};
}

// The push side of a registry for repository up/box: upload sessions that
// take PATCH chunks and a closing PUT (checked against its digest), and
// manifests. It records the PATCH ranges, how many uploads were in flight
// at most, and the order in which blobs and the manifest were completed.
// `fail_patch` (1-based): that PATCH keeps half its chunk and answers 500.
struct UploadRegistry {
  TestServer server;
  std::mutex mutex;
  std::map<std::string, std::string> uploads;  // session -> bytes so far
  std::map<std::string, std::string> blobs;    // digest -> content
  std::vector<std::string> patch_ranges;
  std::vector<std::string> completed;  // blob digests, then "manifest"
  int sessions = 0;
  int in_flight = 0;
  int most_in_flight = 0;
  std::size_t fail_patch = 0;
  std::chrono::milliseconds upload_time{0};  // each PATCH and PUT takes at least this

  // Counts a request in flight while it lives.
  struct InFlight {
    UploadRegistry& registry;
    explicit InFlight(UploadRegistry& r) : registry(r) {
      std::lock_guard lock(registry.mutex);
      registry.most_in_flight = std::max(registry.most_in_flight, ++registry.in_flight);
    }
    ~InFlight() {
      std::lock_guard lock(registry.mutex);
      --registry.in_flight;
    }
  };

  UploadRegistry() {
    const std::string base = "/v2/up/box/blobs/uploads/";
    auto range_of = [](const std::string& bytes) {
      return "0-" + std::to_string(bytes.empty() ? 0 : bytes.size() - 1);
    };
    server.server().new_task_queue = [] { return new httplib::ThreadPool(16); };
    server.server().Get("/v2/", [](const httplib::Request&, httplib::Response& response) {
      response.set_content("{}", "application/json");
    });
    server.server().Get(R"(/v2/up/box/blobs/(sha256:[0-9a-f]+))",
                        [this](const httplib::Request& request, httplib::Response& response) {
                          std::lock_guard lock(mutex);
                          response.status = blobs.count(request.matches[1]) ? 200 : 404;
                        });
    server.server().Post(base, [this, base](const httplib::Request&, httplib::Response& response) {
      std::lock_guard lock(mutex);
      std::string session = "s" + std::to_string(++sessions);
      uploads[session] = "";
      response.status = 202;
      response.set_header("Location", base + session);
    });
    server.server().Patch(
        base + "(s[0-9]+)",
        [this, base, range_of](const httplib::Request& request, httplib::Response& response) {
          InFlight counted(*this);
          std::this_thread::sleep_for(upload_time);
          std::lock_guard lock(mutex);
          std::string& bytes = uploads[request.matches[1]];
          std::string range = request.get_header_value("Content-Range");
          patch_ranges.push_back(range);
          if (range.substr(0, range.find('-')) != std::to_string(bytes.size())) {
            response.status = 416;
            return;
          }
          if (patch_ranges.size() == fail_patch) {
            bytes += request.body.substr(0, request.body.size() / 2);
            response.status = 500;
            return;
          }
          bytes += request.body;
          response.status = 202;
          response.set_header("Location", base + std::string(request.matches[1]));
          response.set_header("Range", range_of(bytes));
        });
    server.server().Get(base + "(s[0-9]+)", [this, base, range_of](const httplib::Request& request,
                                                                   httplib::Response& response) {
      std::lock_guard lock(mutex);
      response.status = 204;
      response.set_header("Location", base + std::string(request.matches[1]));
      response.set_header("Range", range_of(uploads[request.matches[1]]));
    });
    server.server().Put(base + "(s[0-9]+)",
                        [this](const httplib::Request& request, httplib::Response& response) {
                          InFlight counted(*this);
                          std::this_thread::sleep_for(upload_time);
                          std::lock_guard lock(mutex);
                          std::string bytes = uploads[request.matches[1]] + request.body;
                          std::string digest = request.get_param_value("digest");
                          if (core::Sha256Digest(bytes) != digest) {
                            response.status = 400;
                            return;
                          }
                          blobs[digest] = bytes;
                          completed.push_back(digest);
                          response.status = 201;
                        });
    server.server().Put("/v2/up/box/manifests/v1", [this](const httplib::Request& request,
                                                          httplib::Response& response) {
      std::lock_guard lock(mutex);
      completed.push_back("manifest");
      response.status = 201;
      response.set_header("Docker-Content-Digest", core::Sha256Digest(request.body));
    });
  }
};

builder::RegistryOptions UploadOptions() {
  builder::RegistryOptions options;
  options.insecure = true;
  options.first_backoff = std::chrono::milliseconds(1);
  options.monolithic_limit = 4096;  // layers go in 64 KiB chunks, the config in one PUT
  options.chunk_bytes = 64 * 1024;
  return options;
}

}  // namespace

TEST_CASE(
    "RegistryClient resumes a chunked upload from the Range the registry kept when a PATCH fails "
    "mid-way") {
  tests::TempDir dir;
  auto store = builder::ContentStore::Open(dir.path() / "store").value();
  auto [manifest, layers] = StoreImage(store, 1, 300 * 1024);
  UploadRegistry registry;
  registry.fail_patch = 2;
  builder::RegistryClient client(registry.server.Domain(), UploadOptions());
  auto pushed = client.Push(store, manifest.digest, "up/box", "v1");
  INFO((pushed.ok() ? "" : pushed.error().message));
  REQUIRE(pushed.ok());
  CHECK(pushed->blobs_uploaded == 2);
  CHECK(registry.blobs.at(layers[0].digest) == store.ReadBlob(layers[0].digest).value());
  // The second chunk failed with its first 32 KiB kept: the next PATCH starts there.
  REQUIRE(registry.patch_ranges.size() >= 3);
  CHECK(registry.patch_ranges[1] == "65536-131071");
  CHECK(registry.patch_ranges[2] == "98304-163839");
  CHECK(registry.sessions == 2);  // one per blob: the failed chunk did not start the upload again
}

TEST_CASE(
    "RegistryClient pushes layers several at once, then the config, then the manifest, and reports "
    "progress one call at a time") {
  tests::TempDir dir;
  auto store = builder::ContentStore::Open(dir.path() / "store").value();
  auto [manifest, layers] = StoreImage(store, 6, 128 * 1024);
  UploadRegistry registry;
  registry.upload_time = std::chrono::milliseconds(20);
  builder::RegistryOptions options = UploadOptions();
  options.parallel_blobs = 3;
  builder::RegistryClient client(registry.server.Domain(), options);
  std::atomic<int> in_callback{0};
  std::atomic<bool> overlapped{false};
  std::map<std::string, std::uint64_t> last_done;
  auto pushed = client.Push(store, manifest.digest, "up/box", "v1",
                            [&](const builder::TransferProgress& progress) {
                              if (++in_callback > 1) overlapped = true;
                              last_done[progress.digest] = progress.done;
                              --in_callback;
                            });
  INFO((pushed.ok() ? "" : pushed.error().message));
  REQUIRE(pushed.ok());
  CHECK(pushed->blobs_uploaded == 7);
  CHECK(pushed->bytes_uploaded > 6 * 128 * 1024);
  CHECK(registry.most_in_flight > 1);
  CHECK(registry.most_in_flight <= 3);
  CHECK_FALSE(overlapped);
  for (const builder::Descriptor& layer : layers) CHECK(last_done[layer.digest] == layer.size);
  // Every layer, then the config, then the manifest.
  REQUIRE(registry.completed.size() == 8);
  for (std::size_t i = 0; i < 6; ++i) {
    CHECK(std::any_of(layers.begin(), layers.end(), [&](const builder::Descriptor& layer) {
      return layer.digest == registry.completed[i];
    }));
  }
  CHECK(std::none_of(layers.begin(), layers.end(), [&](const builder::Descriptor& layer) {
    return layer.digest == registry.completed[6];
  }));  // the config
  CHECK(registry.completed[7] == "manifest");
}
