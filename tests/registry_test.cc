// `gantry push`, `gantry pull` and `from: REF` end to end against the CNCF
// distribution registry (Debian's docker-registry) on loopback, open and
// behind htpasswd auth, with skopeo as the independent other side; and a
// corrupted blob served by a test server.

#include <httplib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "builder/content_store.h"
#include "builder/registry_client.h"
#include "core/sha256.h"
#include "tests/busybox_image.h"
#include "tests/docker_registry.h"
#include "tests/gantry_command.h"
#include "tests/skip.h"
#include "tests/temp_dir.h"
#include "tests/tls_certificate.h"

namespace fs = std::filesystem;
using nlohmann::json;
using tests::CommandOutput;
using tests::DockerRegistry;
using tests::RunGantry;
using tests::RunProcess;
using tests::TempDir;

namespace {

std::string Read(const fs::path& path) {
  std::ifstream stream(path, std::ios::binary);
  std::ostringstream text;
  text << stream.rdbuf();
  return text.str();
}

// The manifest digest index.json of an OCI layout gives `name`.
std::string LayoutDigest(const fs::path& layout, const std::string& name) {
  json index = json::parse(Read(layout / "index.json"), nullptr, false);
  if (!index.is_object()) return "";
  for (const json& manifest : index.value("manifests", json::array())) {
    if (manifest.value("annotations", json::object())
            .value("org.opencontainers.image.ref.name", "") == name)
      return manifest.value("digest", "");
  }
  return "";
}

CommandOutput CheckLayout(const fs::path& layout) {
  return RunProcess(
      {"/usr/bin/python3", std::string(GANTRY_SOURCE_DIR) + "/tests/oci_layout_check.py",
       std::string(GANTRY_SOURCE_DIR) + "/../shared/oci-image-spec-schemas", layout.string()});
}

std::unique_ptr<DockerRegistry> StartRegistry(const fs::path& dir,
                                              std::optional<DockerRegistry::Login> login = {},
                                              std::optional<DockerRegistry::Tls> tls = {}) {
  auto registry = DockerRegistry::Start(dir, std::move(login), std::move(tls));
  INFO((registry.ok() ? "" : registry.error().message));
  REQUIRE(registry.ok());
  return std::move(registry).value();
}

// A busybox image `box` built by gantry into `store`; its manifest digest.
std::string BuildBox(const TempDir& work, const fs::path& store) {
  auto digest = tests::BuildBusyboxImage(GANTRY_BINARY, work.path(), store);
  INFO((digest.ok() ? "" : digest.error().message));
  REQUIRE(digest.ok());
  return *digest;
}

// `gantry push` of the image BuildBox built in `work` to REGISTRY/team, without building again.
std::vector<std::string> PushBox(const DockerRegistry& registry, const TempDir& work) {
  return {"push",      (work.path() / "context" / "app.yaml").string(),
          "--to",      registry.domain() + "/team",
          "--store",   (work.path() / "store").string(),
          "--no-build"};
}

int Count(const std::string& text, const std::regex& pattern) {
  return static_cast<int>(std::distance(std::sregex_iterator(text.begin(), text.end(), pattern),
                                        std::sregex_iterator()));
}

bool CanTest() {
  if (!tests::HasDockerRegistry()) {
    tests::Skip("docker-registry is not installed (apt-get install docker-registry)");
    return false;
  }
  if (!tests::CanRunContainers()) {
    tests::Skip("building the busybox image needs root and /bin/busybox");
    return false;
  }
  return true;
}

}  // namespace

TEST_CASE(
    "gantry push: skopeo copies the image back with the same digest, and a second push uploads "
    "no blob") {
  if (!CanTest()) return;
  TempDir work, registry_dir, back;
  auto registry = StartRegistry(registry_dir.path());
  fs::path store = work.path() / "store";
  std::string built = BuildBox(work, store);
  fs::path spec = work.path() / "context" / "app.yaml";

  CommandOutput pushed = RunGantry({"push", spec.string(), "--to", registry->domain() + "/team",
                                    "--store", store.string(), "--tag", "v1"});
  INFO(pushed.err << registry->Log());
  REQUIRE(pushed.exit_code == 0);
  CHECK(pushed.out == registry->domain() + "/team/box@" + built + "\n");
  CHECK(pushed.err.find("box: pushed " + registry->domain() + "/team/box:v1: 3 blobs uploaded") !=
        std::string::npos);
  int uploads = registry->CompletedUploads();
  CHECK(uploads == 3);  // two layers and the config

  // skopeo, the other side: the manifest it reads is the one gantry pushed, byte for byte.
  CommandOutput copied = RunProcess({"skopeo", "copy", "--src-tls-verify=false",
                                     "docker://" + registry->domain() + "/team/box:v1",
                                     "oci:" + (back.path() / "layout").string() + ":box"});
  INFO(copied.err);
  REQUIRE(copied.exit_code == 0);
  CHECK(LayoutDigest(back.path() / "layout", "box") == built);
  CommandOutput checked = CheckLayout(back.path() / "layout");
  INFO(checked.out << checked.err);
  CHECK(checked.exit_code == 0);

  // Again: the registry has every blob (HEAD), nothing is uploaded.
  CommandOutput again = RunGantry({"push", spec.string(), "--to", registry->domain() + "/team",
                                   "--store", store.string(), "--tag", "v1", "--no-build"});
  INFO(again.err);
  REQUIRE(again.exit_code == 0);
  CHECK(again.out == pushed.out);
  CHECK(again.err.find("0 blobs uploaded (0 B), 0 mounted, 3 already there") != std::string::npos);
  CHECK(registry->CompletedUploads() == uploads);
}

TEST_CASE("gantry build --push builds then pushes as gantry push does") {
  if (!CanTest()) return;
  TempDir work, registry_dir;
  auto registry = StartRegistry(registry_dir.path());
  fs::path store = work.path() / "store";
  std::string built = BuildBox(work, store);
  fs::path spec = work.path() / "context" / "app.yaml";

  CommandOutput pushed = RunGantry({"build", spec.string(), "--output", store.string(), "--push",
                                    registry->domain() + "/team", "--tag", "v2"});
  INFO(pushed.err << registry->Log());
  REQUIRE(pushed.exit_code == 0);
  CHECK(pushed.out == registry->domain() + "/team/box@" + built + "\n");
  CHECK(pushed.err.find("box: pushed " + registry->domain() + "/team/box:v2: 3 blobs uploaded") !=
        std::string::npos);
  // skopeo reads the tag back: the manifest the registry serves is the one built.
  CommandOutput inspected = RunProcess({"skopeo", "inspect", "--tls-verify=false",
                                        "docker://" + registry->domain() + "/team/box:v2"});
  INFO(inspected.err);
  REQUIRE(inspected.exit_code == 0);
  CHECK(json::parse(inspected.out, nullptr, false).value("Digest", "") == built);

  // --tag and --insecure only go with --push.
  CommandOutput stray =
      RunGantry({"build", spec.string(), "--output", store.string(), "--tag", "v3"});
  CHECK(stray.exit_code == 2);
  CHECK(stray.err.find("--push") != std::string::npos);
}

TEST_CASE("gantry push mounts blobs another image of the push already put in the registry") {
  if (!CanTest()) return;
  TempDir work, registry_dir;
  auto registry = StartRegistry(registry_dir.path());
  fs::create_directories(work.path() / "bin");
  fs::copy_file("/bin/busybox", work.path() / "bin" / "busybox");
  std::ofstream(work.path() / "app.yaml") << R"(app: twins
images:
  one:
    from: scratch
    steps:
      - copy: {src: ./bin, dst: /bin}
      - env: {WHO: one}
  two:
    from: scratch
    steps:
      - copy: {src: ./bin, dst: /bin}
      - env: {WHO: two}
)";
  CommandOutput pushed =
      RunGantry({"push", (work.path() / "app.yaml").string(), "--to", registry->domain() + "/ns",
                 "--store", (work.path() / "store").string()},
                {"SOURCE_DATE_EPOCH=0"});
  INFO(pushed.err << registry->Log());
  REQUIRE(pushed.exit_code == 0);
  // The layer is uploaded once, for `one`, and mounted into `two`; the configs differ.
  CHECK(pushed.err.find("one: pushed " + registry->domain() + "/ns/one:latest: 2 blobs uploaded") !=
        std::string::npos);
  CHECK(pushed.err.find("two: pushed " + registry->domain() + "/ns/two:latest: 1 blob uploaded") !=
        std::string::npos);
  CHECK(pushed.err.find("1 mounted") != std::string::npos);
  CHECK(registry->CompletedUploads() == 3);
  CHECK(Count(pushed.out, std::regex(registry->domain() + "/ns/(one|two)@sha256:[0-9a-f]{64}\n")) ==
        2);
}

TEST_CASE(
    "gantry pull takes images skopeo pushed, OCI and Docker schema 2, and from: builds on "
    "them") {
  if (!CanTest()) return;
  TempDir work, registry_dir, pulled;
  auto registry = StartRegistry(registry_dir.path());
  fs::path store = work.path() / "store";
  std::string built = BuildBox(work, store);
  for (const char* format : {"oci", "v2s2"}) {
    CommandOutput copied = RunProcess({"skopeo", "copy", "--dest-tls-verify=false", "--format",
                                       format, "oci:" + store.string() + ":box",
                                       "docker://" + registry->domain() + "/skopeo/box:" + format});
    INFO(copied.err);
    REQUIRE(copied.exit_code == 0);
  }
  const std::string reference = registry->domain() + "/skopeo/box:oci";
  CommandOutput pull =
      RunGantry({"pull", reference, "--store", (pulled.path() / "store").string()});
  INFO(pull.err);
  REQUIRE(pull.exit_code == 0);
  CHECK(pull.out == reference + " " + built + "\n");  // skopeo kept the manifest as it was
  CHECK(pull.err.find("3 blobs downloaded") != std::string::npos);
  CommandOutput checked = CheckLayout(pulled.path() / "store");
  INFO(checked.out << checked.err);
  CHECK(checked.exit_code == 0);

  // Docker's media types: the manifest is stored as the registry has it.
  const std::string docker_reference = registry->domain() + "/skopeo/box:v2s2";
  CommandOutput raw = RunProcess(
      {"skopeo", "inspect", "--raw", "--tls-verify=false", "docker://" + docker_reference});
  REQUIRE(raw.exit_code == 0);
  CHECK(raw.out.find("application/vnd.docker.distribution.manifest.v2+json") != std::string::npos);
  CommandOutput docker_pull =
      RunGantry({"pull", docker_reference, "--store", (pulled.path() / "store").string()});
  INFO(docker_pull.err);
  REQUIRE(docker_pull.exit_code == 0);
  CHECK(docker_pull.out == docker_reference + " " + core::Sha256Digest(raw.out) + "\n");
  // Same layers, different manifest and config media types: only those two are new.
  CHECK(docker_pull.err.find("already stored") != std::string::npos);

  CommandOutput listed = RunGantry({"image", "ls", "--store", (pulled.path() / "store").string()});
  REQUIRE(listed.exit_code == 0);
  CHECK(listed.out.find(reference) != std::string::npos);
  CHECK(listed.out.find(built) != std::string::npos);
  CHECK(listed.out.find(docker_reference) != std::string::npos);

  // from: a registry reference, pulled into the build's store.
  fs::create_directories(work.path() / "derived");
  std::ofstream(work.path() / "derived" / "hello.txt") << "hello\n";
  std::ofstream(work.path() / "derived" / "app.yaml")
      << "app: derived\nimages:\n  web:\n    from: " << docker_reference
      << "\n    steps:\n      - copy: {src: ./hello.txt, dst: /srv/hello.txt}\n";
  fs::path derived_store = work.path() / "derived-store";
  CommandOutput derived = RunGantry({"build", (work.path() / "derived" / "app.yaml").string(),
                                     "--output", derived_store.string()});
  INFO(derived.err);
  REQUIRE(derived.exit_code == 0);
  CHECK(LayoutDigest(derived_store, docker_reference) == core::Sha256Digest(raw.out));
  CommandOutput derived_checked = CheckLayout(derived_store);
  INFO(derived_checked.out << derived_checked.err);
  // The pulled Docker manifest is outside the OCI schemas' media types; the built image is OCI.
  std::string web = LayoutDigest(derived_store, "web");
  REQUIRE_FALSE(web.empty());
  json manifest = json::parse(Read(derived_store / "blobs" / "sha256" / web.substr(7)));
  REQUIRE(manifest["layers"].size() == 3);
  for (const json& layer : manifest["layers"])
    CHECK(layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip");
  // A rebuild uses the stored base: the registry is not asked again.
  registry.reset();
  CommandOutput offline = RunGantry({"build", (work.path() / "derived" / "app.yaml").string(),
                                     "--output", derived_store.string(), "-q"});
  INFO(offline.err);
  CHECK(offline.exit_code == 0);
  CHECK(offline.out.find(web) != std::string::npos);
}

TEST_CASE(
    "behind htpasswd auth: credentials from the environment or the docker config, and a wrong "
    "password is one clear error") {
  if (!CanTest()) return;
  TempDir work, registry_dir, home, pulled;
  auto registry = StartRegistry(registry_dir.path(), DockerRegistry::Login{"alice", "s3cret-pw"});
  fs::path store = work.path() / "store";
  std::string built = BuildBox(work, store);
  std::vector<std::string> push = PushBox(*registry, work);
  std::string no_home = "HOME=" + home.path().string();

  CommandOutput anonymous = RunGantry(push, {no_home});
  CHECK(anonymous.exit_code == 1);
  CHECK(anonymous.err.find("the registry requires authentication") != std::string::npos);

  CommandOutput wrong = RunGantry(
      push, {no_home, "GANTRY_REGISTRY_USER=alice", "GANTRY_REGISTRY_PASSWORD=not-the-password"});
  CHECK(wrong.exit_code == 1);
  CHECK(wrong.err.find(registry->domain() +
                       ": the registry refused the credentials of user alice (from "
                       "GANTRY_REGISTRY_USER)") != std::string::npos);
  CHECK(wrong.err.find("not-the-password") == std::string::npos);
  CHECK(std::count(wrong.err.begin(), wrong.err.end(), '\n') == 1);

  CommandOutput right = RunGantry(
      push, {no_home, "GANTRY_REGISTRY_USER=alice", "GANTRY_REGISTRY_PASSWORD=s3cret-pw"});
  INFO(right.err);
  REQUIRE(right.exit_code == 0);
  CHECK(right.out == registry->domain() + "/team/box@" + built + "\n");

  // ~/.docker/config.json, as docker login writes it.
  fs::create_directories(home.path() / ".docker");
  std::ofstream(home.path() / ".docker" / "config.json")
      << R"({"auths": {")" << registry->domain() << R"(": {"auth": "YWxpY2U6czNjcmV0LXB3"}}})";
  CommandOutput pull = RunGantry({"pull", registry->domain() + "/team/box:latest", "--store",
                                  (pulled.path() / "store").string()},
                                 {no_home});
  INFO(pull.err);
  REQUIRE(pull.exit_code == 0);
  CHECK(pull.out == registry->domain() + "/team/box:latest " + built + "\n");
}

namespace {

// Writes an executable docker-credential-NAME into `dir` running `script` (sh).
void WriteHelper(const fs::path& dir, const std::string& name, const std::string& script) {
  fs::path helper = dir / ("docker-credential-" + name);
  std::ofstream(helper) << "#!/bin/sh\n" << script;
  fs::permissions(helper, fs::perms::owner_all);
}

}  // namespace

TEST_CASE(
    "behind htpasswd auth: a credential helper of the docker config answers, one that fails is "
    "one clear error, and the secret is never printed") {
  if (!CanTest()) return;
  TempDir work, registry_dir, home, helpers;
  auto registry = StartRegistry(registry_dir.path(), DockerRegistry::Login{"alice", "s3cret-pw"});
  fs::path store = work.path() / "store";
  std::string built = BuildBox(work, store);
  std::vector<std::string> push = PushBox(*registry, work);
  const char* path = std::getenv("PATH");
  std::vector<std::string> environment = {
      "HOME=" + home.path().string(),
      "PATH=" + helpers.path().string() + ":" + (path != nullptr ? path : "/usr/bin:/bin")};
  // The helper checks it is asked for this registry (its server URL on stdin) with `get`.
  WriteHelper(helpers.path(), "vault",
              "read server\n[ \"$1\" = get ] && [ \"$server\" = \"" + registry->domain() +
                  "\" ] || { echo \"asked $1 $server\" >&2; exit 1; }\n"
                  "printf '{\"ServerURL\":\"%s\",\"Username\":\"alice\",\"Secret\":\"s3cret-pw\"}' "
                  "\"$server\"\n");
  WriteHelper(helpers.path(), "broken", "echo 'no keyring here' >&2\nexit 3\n");
  WriteHelper(helpers.path(), "wrong",
              "printf '{\"Username\":\"alice\",\"Secret\":\"helper-wrong-pw\"}'\n");
  WriteHelper(helpers.path(), "empty", "echo 'credentials not found in native keychain'\nexit 1\n");
  fs::create_directories(home.path() / ".docker");
  auto configure = [&](const std::string& config) {
    std::ofstream(home.path() / ".docker" / "config.json") << config;
  };

  // credHelpers for this registry wins over credsStore.
  configure(R"({"credsStore": "broken", "credHelpers": {")" + registry->domain() +
            R"(": "vault"}})");
  CommandOutput helped = RunGantry(push, environment);
  INFO(helped.err);
  REQUIRE(helped.exit_code == 0);
  CHECK(helped.out == registry->domain() + "/team/box@" + built + "\n");
  CHECK(helped.err.find("s3cret-pw") == std::string::npos);

  configure(R"({"credsStore": "broken"})");
  CommandOutput broken = RunGantry(push, environment);
  CHECK(broken.exit_code == 1);
  CHECK(broken.err == registry->domain() +
                          ": the credential helper docker-credential-broken (named in " +
                          (home.path() / ".docker" / "config.json").string() +
                          ") failed (exit 3): no keyring here\n");

  configure(R"({"credsStore": "wrong"})");
  CommandOutput wrong = RunGantry(push, environment);
  CHECK(wrong.exit_code == 1);
  CHECK(wrong.err.find("refused the credentials of user alice (from docker-credential-wrong)") !=
        std::string::npos);
  CHECK(wrong.err.find("helper-wrong-pw") == std::string::npos);

  configure(R"({"credsStore": "missing-helper"})");
  CommandOutput missing = RunGantry(push, environment);
  CHECK(missing.exit_code == 1);
  CHECK(missing.err.find("no docker-credential-missing-helper on PATH") != std::string::npos);

  // A helper with nothing for the registry: anonymous, which this registry refuses.
  configure(R"({"credsStore": "empty"})");
  CommandOutput anonymous = RunGantry(push, environment);
  CHECK(anonymous.exit_code == 1);
  CHECK(anonymous.err.find("the registry requires authentication") != std::string::npos);
  CHECK(registry->CompletedUploads() == 3);  // only the push with the right secret uploaded
}

TEST_CASE(
    "over TLS: push and pull trust the CA in GANTRY_HOME/certs.d, and without it the error says "
    "where a CA goes and nothing is kept") {
  if (!CanTest()) return;
  TempDir work, registry_dir, home, pulled;
  fs::path certificate = work.path() / "registry.crt";
  auto made = tests::MakeLoopbackCertificate(certificate, work.path() / "registry.key");
  INFO((made.ok() ? "" : made.error().message));
  REQUIRE(made.ok());
  auto registry = StartRegistry(registry_dir.path(), std::nullopt,
                                DockerRegistry::Tls{certificate, work.path() / "registry.key"});
  fs::path store = work.path() / "store";
  std::string built = BuildBox(work, store);
  std::vector<std::string> push = PushBox(*registry, work);
  std::vector<std::string> environment = {"GANTRY_HOME=" + home.path().string()};
  fs::path ca_folder = home.path() / "certs.d" / registry->domain();
  const std::string reference = registry->domain() + "/team/box:latest";
  fs::path pulled_store = pulled.path() / "store";

  // No CA: one line naming the registry and where its CA goes; --insecure does not skip the check.
  for (bool insecure : {false, true}) {
    std::vector<std::string> args = push;
    if (insecure) args.push_back("--insecure");
    CommandOutput refused = RunGantry(args, environment);
    INFO(refused.err);
    CHECK(refused.exit_code == 1);
    CHECK(refused.err.starts_with(registry->domain() +
                                  ": the registry's TLS certificate is not trusted ("));
    CHECK(refused.err.find("put the CA that signed it in " + (ca_folder / "ca.crt").string() +
                           " or /etc/docker/certs.d/" + registry->domain() + "/ca.crt") !=
          std::string::npos);
    CHECK(std::count(refused.err.begin(), refused.err.end(), '\n') == 1);
  }
  CHECK(registry->CompletedUploads() == 0);
  CommandOutput unpulled =
      RunGantry({"pull", reference, "--store", pulled_store.string()}, environment);
  CHECK(unpulled.exit_code == 1);
  CHECK(unpulled.err.find("TLS certificate is not trusted") != std::string::npos);
  CHECK_FALSE(fs::exists(pulled_store / "blobs" / "sha256" / built.substr(7)));
  CHECK(LayoutDigest(pulled_store, reference).empty());

  // The CA where Docker keeps it, under GANTRY_HOME: push and pull over HTTPS.
  fs::create_directories(ca_folder);
  fs::copy_file(certificate, ca_folder / "ca.crt");
  CommandOutput pushed = RunGantry(push, environment);
  INFO(pushed.err << registry->Log());
  REQUIRE(pushed.exit_code == 0);
  CHECK(pushed.out == registry->domain() + "/team/box@" + built + "\n");
  CHECK(registry->CompletedUploads() == 3);
  CommandOutput inspected =
      RunProcess({"skopeo", "inspect", "--cert-dir", ca_folder.string(), "docker://" + reference});
  INFO(inspected.err);
  REQUIRE(inspected.exit_code == 0);
  CHECK(json::parse(inspected.out, nullptr, false).value("Digest", "") == built);
  CommandOutput pull =
      RunGantry({"pull", reference, "--store", pulled_store.string()}, environment);
  INFO(pull.err);
  REQUIRE(pull.exit_code == 0);
  CHECK(pull.out == reference + " " + built + "\n");
  CHECK(pull.err.find("3 blobs downloaded") != std::string::npos);

  // The CA where Docker itself keeps it: a host set up for `docker pull`
  // needs nothing more. The folders this case makes (for this registry's
  // port alone, and /etc/docker/certs.d itself where there was none) are
  // gone after it.
  fs::remove_all(ca_folder);
  const fs::path docker_certs = "/etc/docker/certs.d";
  const fs::path docker_ca_folder = docker_certs / registry->domain();
  struct RemovedAfter {
    std::vector<fs::path> folders;  // deepest first
    ~RemovedAfter() {
      std::error_code ignored;
      fs::remove_all(folders.front(), ignored);
      for (std::size_t i = 1; i < folders.size(); ++i) fs::remove(folders[i], ignored);
    }
  } removed_after{{docker_ca_folder}};
  for (const fs::path& parent : {docker_certs, docker_certs.parent_path()}) {
    if (!fs::exists(parent)) removed_after.folders.push_back(parent);
  }
  std::error_code made_folder;
  fs::remove_all(docker_ca_folder, made_folder);  // a crashed run's
  fs::create_directories(docker_ca_folder, made_folder);
  if (made_folder) {
    WARN("the CA in /etc/docker/certs.d is not checked: /etc is not writable here");
    return;
  }
  fs::copy_file(certificate, docker_ca_folder / "ca.crt");
  fs::path docker_pulled_store = pulled.path() / "docker-ca-store";
  CommandOutput docker_pull =
      RunGantry({"pull", reference, "--store", docker_pulled_store.string()}, environment);
  INFO(docker_pull.err);
  CHECK(docker_pull.exit_code == 0);
  CHECK(docker_pull.out == reference + " " + built + "\n");
}

TEST_CASE("gantry pull rejects a corrupted blob and keeps nothing of it") {
  // A registry that serves a manifest whose layer's bytes are not the ones its digest names.
  std::string layer = "the layer as it was pushed";
  std::string layer_digest = core::Sha256Digest(layer);
  std::string config = json{{"architecture", "amd64"},
                            {"os", "linux"},
                            {"rootfs", {{"type", "layers"}, {"diff_ids", {layer_digest}}}}}
                           .dump();
  std::string manifest = json{{"schemaVersion", 2},
                              {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                              {"config",
                               {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                                {"digest", core::Sha256Digest(config)},
                                {"size", config.size()}}},
                              {"layers",
                               {{{"mediaType", "application/vnd.oci.image.layer.v1.tar+gzip"},
                                 {"digest", layer_digest},
                                 {"size", layer.size()}}}}}
                             .dump();
  httplib::Server server;
  server.Get("/v2/", [](const httplib::Request&, httplib::Response& response) {
    response.set_content("{}", "application/json");
  });
  server.Get("/v2/bad/img/manifests/latest",
             [&](const httplib::Request&, httplib::Response& response) {
               response.set_content(manifest, "application/vnd.oci.image.manifest.v1+json");
             });
  server.Get(R"(/v2/bad/img/blobs/(sha256:[0-9a-f]+))",
             [&](const httplib::Request& request, httplib::Response& response) {
               if (request.matches[1] == core::Sha256Digest(config)) {
                 response.set_content(config, "application/octet-stream");
               } else {
                 std::string corrupted = layer;
                 corrupted[3] ^= 0x20;  // one bit flipped in transit
                 response.set_content(corrupted, "application/octet-stream");
               }
             });
  int port = server.bind_to_any_port("127.0.0.1");
  std::thread thread([&] { server.listen_after_bind(); });
  while (!server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));

  TempDir pulled;
  fs::path store = pulled.path() / "store";
  CommandOutput pull = RunGantry(
      {"pull", "127.0.0.1:" + std::to_string(port) + "/bad/img:latest", "--store", store.string()});
  server.stop();
  thread.join();
  INFO(pull.err);
  CHECK(pull.exit_code == 1);
  CHECK(pull.err.find("blob " + layer_digest + " of bad/img does not match its digest") !=
        std::string::npos);
  CHECK_FALSE(fs::exists(store / "blobs" / "sha256" / layer_digest.substr(7)));
  CHECK(fs::is_empty(store / ".gantry" / "tmp"));
  CHECK(LayoutDigest(store, "127.0.0.1:" + std::to_string(port) + "/bad/img:latest").empty());
}

TEST_CASE("RegistryClient uploads large blobs in PATCH chunks the registry accepts") {
  if (!CanTest()) return;
  TempDir work, registry_dir, back;
  auto registry = StartRegistry(registry_dir.path());
  fs::path store_path = work.path() / "store";
  std::string built = BuildBox(work, store_path);
  auto store = builder::ContentStore::OpenExisting(store_path);
  REQUIRE(store.ok());
  builder::RegistryOptions options;
  options.insecure = true;
  options.monolithic_limit = 4096;  // busybox's layer (about 1 MiB) goes in 64 KiB chunks
  options.chunk_bytes = 64 * 1024;
  builder::RegistryClient client(registry->domain(), options);
  std::uint64_t last_done = 0;
  int reports = 0;
  auto pushed = client.Push(*store, built, "chunked/box", "v1",
                            [&](const builder::TransferProgress& progress) {
                              last_done = progress.done;
                              ++reports;
                            });
  INFO((pushed.ok() ? "" : pushed.error().message) << registry->Log());
  REQUIRE(pushed.ok());
  CHECK(pushed->reference == registry->domain() + "/chunked/box@" + built);
  CHECK(pushed->blobs_uploaded == 3);
  CHECK(reports > 10);
  CHECK(last_done > 0);
  std::string log = registry->Log();
  CHECK(Count(log, std::regex(
                       R"re("PATCH /v2/chunked/box/blobs/uploads/[^ ]* HTTP/1\.1" 202 )re")) > 10);
  CommandOutput copied = RunProcess({"skopeo", "copy", "--src-tls-verify=false",
                                     "docker://" + registry->domain() + "/chunked/box:v1",
                                     "oci:" + (back.path() / "layout").string() + ":box"});
  INFO(copied.err);
  REQUIRE(copied.exit_code == 0);
  CHECK(LayoutDigest(back.path() / "layout", "box") == built);
}
