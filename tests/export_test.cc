// `gantry export kubernetes|compose` end to end: the real binary builds and
// pushes the images to Debian's docker-registry on loopback and writes the
// manifests, which the engines' own schemas then check (tests/export/
// validate.mjs with the npm validators that the export_validators fixture
// installs, and docker-compose config); the golden files and the
// deliberately broken manifests go through the same validators.

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "core/base64.h"
#include "tests/docker_registry.h"
#include "tests/gantry_command.h"
#include "tests/skip.h"
#include "tests/temp_dir.h"

namespace fs = std::filesystem;
using tests::CommandOutput;
using tests::DockerRegistry;
using tests::RunGantry;
using tests::RunProcess;
using tests::TempDir;

namespace {

const std::string kEverything = "tests/export/everything/app.yaml";
const fs::path kExportTests = fs::path(GANTRY_SOURCE_DIR) / "tests/export";

std::string Read(const fs::path& path) {
  std::ifstream stream(path, std::ios::binary);
  std::ostringstream text;
  text << stream.rdbuf();
  return text.str();
}

struct ValidateOptions {
  bool expect_invalid = false;
  // The Knative features the cluster enables (config-features), comma-separated.
  std::string knative_features;
};

// validate.mjs over `paths` (files or folders).
CommandOutput Validate(const std::string& target, const std::vector<std::string>& paths,
                       const ValidateOptions& options = {}) {
  std::vector<std::string> argv = {"node", std::string(EXPORT_VALIDATORS_DIR) + "/validate.mjs"};
  if (options.expect_invalid) argv.push_back("--expect-invalid");
  if (!options.knative_features.empty())
    argv.push_back("--knative-features=" + options.knative_features);
  argv.push_back(target);
  argv.insert(argv.end(), paths.begin(), paths.end());
  return RunProcess(argv);
}

// The Knative features that export's warnings in `text` ask the cluster to
// enable, comma-separated: what validate.mjs takes as config-features.
std::string KnativeFeatures(const std::string& text) {
  static const std::regex kWarning(
      "knative: these Services need the features ([^\\n]*) enabled in Knative's config-features");
  std::set<std::string> features;
  for (std::sregex_iterator match(text.begin(), text.end(), kWarning), end; match != end; ++match) {
    std::istringstream list((*match)[1].str());
    for (std::string feature; std::getline(list >> std::ws, feature, ',');)
      features.insert(feature);
  }
  std::string joined;
  for (const std::string& feature : features) joined += (joined.empty() ? "" : ",") + feature;
  return joined;
}

std::vector<std::string> GoldenFiles(const std::string& suffix) {
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(kExportTests / "golden")) {
    const std::string name = entry.path().filename().string();
    if (name.size() > suffix.size() && name.ends_with(suffix)) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// The secrets the everything spec reads from the environment.
// The variables the specs' secrets read (examples/python-api's GREETING too).
const std::vector<std::string> kSecretEnvironment = {"HF_TOKEN=hf_very_secret_token",
                                                     "DB_USER=ana_the_user", "GREETING=Bonjour"};

std::unique_ptr<DockerRegistry> StartRegistry(const fs::path& dir) {
  auto registry = DockerRegistry::Start(dir);
  INFO((registry.ok() ? "" : registry.error().message));
  REQUIRE(registry.ok());
  return std::move(registry).value();
}

}  // namespace

TEST_CASE("the golden Kubernetes manifests pass the Kubernetes and Knative schemas") {
  std::vector<std::string> files = GoldenFiles(".kubernetes.yaml");
  std::vector<std::string> hpa = GoldenFiles(".kubernetes-hpa.yaml");
  files.insert(files.end(), hpa.begin(), hpa.end());
  REQUIRE(files.size() >= 4);
  std::string warnings;
  for (const std::string& file : files) warnings += Read(file);
  CommandOutput validated =
      Validate("kubernetes", files, {.knative_features = KnativeFeatures(warnings)});
  INFO(validated.out << validated.err);
  CHECK(validated.exit_code == 0);
}

TEST_CASE("a Knative Service is valid only on a cluster with the features its warning names") {
  const std::string everything = (kExportTests / "golden/everything.kubernetes.yaml").string();
  const std::string features = KnativeFeatures(Read(everything));
  REQUIRE(features ==
          "kubernetes.podspec-affinity,kubernetes.podspec-persistent-volume-claim,"
          "kubernetes.podspec-persistent-volume-write,kubernetes.podspec-tolerations");
  CommandOutput enabled = Validate("kubernetes", {everything}, {.knative_features = features});
  INFO(enabled.out << enabled.err);
  CHECK(enabled.exit_code == 0);
  // Knative's default: none of them, so its webhook refuses the Service.
  CommandOutput plain = Validate("kubernetes", {everything});
  INFO(plain.out);
  CHECK(plain.exit_code == 1);
  CHECK(plain.out.find("/spec/template/spec/affinity needs Knative's "
                       "kubernetes.podspec-affinity, which is not enabled") != std::string::npos);
  // Each named feature is needed: without the write one, a claim that is
  // not read-only is refused.
  CommandOutput read_only = Validate(
      "kubernetes", {everything},
      {.knative_features = "kubernetes.podspec-affinity,kubernetes.podspec-persistent-volume-claim,"
                           "kubernetes.podspec-tolerations"});
  INFO(read_only.out);
  CHECK(read_only.exit_code == 1);
  CHECK(read_only.out.find("needs Knative's kubernetes.podspec-persistent-volume-write") !=
        std::string::npos);
  CHECK(read_only.out.find("podspec-affinity, which") == std::string::npos);
}

TEST_CASE("the golden compose files pass the Compose schema and docker-compose config") {
  std::vector<std::string> files = GoldenFiles(".compose.yaml");
  REQUIRE(files.size() >= 2);
  CommandOutput validated = Validate("compose", files);
  INFO(validated.out << validated.err);
  CHECK(validated.exit_code == 0);
  for (const std::string& file : files) {
    CommandOutput config = RunProcess({"docker-compose", "-f", file, "config", "-q"},
                                      GANTRY_SOURCE_DIR, kSecretEnvironment);
    INFO(file << "\n" << config.err);
    CHECK(config.exit_code == 0);
  }
}

TEST_CASE("a deliberately broken manifest fails every validator") {
  CommandOutput kubernetes =
      Validate("kubernetes", {(kExportTests / "broken/kubernetes.yaml").string()},
               {.expect_invalid = true, .knative_features = ""});
  INFO(kubernetes.out << kubernetes.err);
  CHECK(kubernetes.exit_code == 0);
  CHECK(kubernetes.out.find("0 valid, 6 invalid") != std::string::npos);
  CHECK(kubernetes.out.find("replicas must be integer") != std::string::npos);
  CHECK(kubernetes.out.find("/spec/template/spec/containers/0/resource is not a field of apps/v1 "
                            "Deployment") != std::string::npos);
  CHECK(kubernetes.out.find("/spec/template/spec/containerConcurency is not a field of "
                            "serving.knative.dev/v1 Service") != std::string::npos);
  CommandOutput compose = Validate("compose", {(kExportTests / "broken/compose.yaml").string()},
                                   {.expect_invalid = true, .knative_features = ""});
  INFO(compose.out << compose.err);
  CHECK(compose.exit_code == 0);
  CommandOutput config = RunProcess(
      {"docker-compose", "-f", (kExportTests / "broken/compose.yaml").string(), "config", "-q"});
  CHECK(config.exit_code != 0);
  CHECK(config.err.find("capability") != std::string::npos);
  // And the same validators refuse what they are meant to accept, broken.
  CommandOutput accepted = Validate("kubernetes", {(kExportTests / "broken").string()});
  CHECK(accepted.exit_code == 1);
}

TEST_CASE("gantry export kubernetes pushes the images and writes one valid manifest per object") {
  if (!tests::HasDockerRegistry()) {
    tests::Skip("docker-registry is not installed (apt-get install docker-registry)");
    return;
  }
  TempDir home, registry_dir, out;
  auto registry = StartRegistry(registry_dir.path());
  std::vector<std::string> environment = {"GANTRY_HOME=" + home.path().string()};
  CommandOutput exported =
      RunGantry({"export", "kubernetes", kEverything, "--registry", registry->domain() + "/team",
                 "--namespace", "ml", "--out", out.path().string(), "-q"},
                environment);
  INFO(exported.err << registry->Log());
  REQUIRE(exported.exit_code == 0);
  CHECK(exported.err.find("warning: budget: daily_usd 40 monthly_usd 900") != std::string::npos);
  CHECK(exported.err.find("warning: functions.api.web.auth: key") != std::string::npos);
  CHECK(exported.err.find("warning: secrets.hf: values are not exported") != std::string::npos);
  for (const char* file : {"service-everything-api.yaml", "cronjob-everything-nightly.yaml",
                           "cronjob-everything-poll.yaml", "job-everything-batch.yaml",
                           "persistentvolumeclaim-everything-weights.yaml",
                           "persistentvolumeclaim-everything-cache.yaml"}) {
    INFO(file);
    CHECK(fs::exists(out.path() / file));
    CHECK(exported.out.find((out.path() / file).string()) != std::string::npos);
  }
  CHECK_FALSE(fs::exists(out.path() / "secret-everything-hf.yaml"));
  CommandOutput validated = Validate("kubernetes", {out.path().string()},
                                     {.knative_features = KnativeFeatures(exported.err)});
  INFO(validated.out << validated.err);
  CHECK(validated.exit_code == 0);

  // The manifests pull each image by the digest the registry has.
  std::smatch reference;
  std::string api = Read(out.path() / "service-everything-api.yaml");
  REQUIRE(std::regex_search(
      api, reference,
      std::regex("image: (" + registry->domain() + "/team/web)@(sha256:[0-9a-f]{64})")));
  CommandOutput inspected =
      RunProcess({"skopeo", "inspect", "--tls-verify=false", "--format", "{{.Digest}}",
                  "docker://" + reference[1].str() + "@" + reference[2].str()});
  INFO(inspected.err);
  REQUIRE(inspected.exit_code == 0);
  CHECK(inspected.out == reference[2].str() + "\n");
  CHECK(api.find("namespace: ml") != std::string::npos);
}

TEST_CASE("gantry export kubernetes --autoscaler hpa writes a stream and warns what HPA loses") {
  TempDir home, out;
  CommandOutput exported = RunGantry({"export", "kubernetes", kEverything, "--autoscaler", "hpa",
                                      "--no-push", "--registry", "127.0.0.1:1/team", "-q"},
                                     {"GANTRY_HOME=" + home.path().string()});
  INFO(exported.err);
  REQUIRE(exported.exit_code == 0);
  CHECK(exported.err.find("warning: functions.api.max_inputs: 16 is not exported with "
                          "--autoscaler hpa") != std::string::npos);
  CHECK(exported.out.find("kind: HorizontalPodAutoscaler\n") != std::string::npos);
  CHECK(exported.out.find("\n---\n") != std::string::npos);
  CHECK(exported.out.find("image: 127.0.0.1:1/team/web@sha256:") != std::string::npos);
  std::ofstream(out.path() / "stream.yaml") << exported.out;
  CommandOutput validated = Validate("kubernetes", {(out.path() / "stream.yaml").string()});
  INFO(validated.out << validated.err);
  CHECK(validated.exit_code == 0);
  // api: Deployment, Service, HPA; nightly and poll: CronJobs; batch: a Job; two claims.
  CHECK(validated.out.find("kubernetes: 8 valid, 0 invalid") != std::string::npos);
}

TEST_CASE(
    "secret values go into Secrets only with --include-secret-values, base64, never in logs") {
  TempDir home, out;
  std::vector<std::string> environment = kSecretEnvironment;
  environment.push_back("GANTRY_HOME=" + home.path().string());
  CommandOutput exported =
      RunGantry({"export", "kubernetes", kEverything, "--no-push", "--registry", "127.0.0.1:1/team",
                 "--include-secret-values", "--out", out.path().string(), "-q"},
                environment);
  INFO(exported.err);
  REQUIRE(exported.exit_code == 0);
  std::string hf = Read(out.path() / "secret-everything-hf.yaml");
  CHECK(hf.find("HF_TOKEN: " + core::Base64Encode("hf_very_secret_token")) != std::string::npos);
  CHECK(hf.find("hf_very_secret_token") == std::string::npos);
  std::string db = Read(out.path() / "secret-everything-db.yaml");
  CHECK(db.find("DB_PASSWORD: " + core::Base64Encode("s3cr3t-$pass")) != std::string::npos);
  CHECK((fs::status(out.path() / "secret-everything-db.yaml").permissions() &
         fs::perms::others_read) == fs::perms::none);
  for (const char* value : {"hf_very_secret_token", "ana_the_user", "s3cr3t"}) {
    CHECK(exported.err.find(value) == std::string::npos);
    CHECK(exported.out.find(value) == std::string::npos);
  }
  CommandOutput validated = Validate("kubernetes", {out.path().string()},
                                     {.knative_features = KnativeFeatures(exported.err)});
  INFO(validated.out << validated.err);
  CHECK(validated.exit_code == 0);

  // An unset variable is one error line naming it, and nothing is written.
  TempDir empty;
  CommandOutput unset =
      RunGantry({"export", "kubernetes", kEverything, "--no-push", "--registry", "127.0.0.1:1/team",
                 "--include-secret-values", "--out", empty.path().string(), "-q"},
                {"GANTRY_HOME=" + home.path().string()});
  CHECK(unset.exit_code == 1);
  CHECK(fs::is_empty(empty.path()));
}

TEST_CASE("exporting again into the same folder removes the app's objects it no longer has") {
  TempDir home, out;
  std::vector<std::string> export_args = {"export",    "kubernetes",        kEverything,
                                          "--no-push", "--registry",        "127.0.0.1:1/team",
                                          "--out",     out.path().string(), "-q"};
  std::vector<std::string> environment = {"GANTRY_HOME=" + home.path().string()};
  REQUIRE(RunGantry(export_args, environment).exit_code == 0);
  // What an earlier export wrote for a function removed since, another app's
  // manifest and a file of the user's.
  std::string batch = Read(out.path() / "job-everything-batch.yaml");
  std::string gone = std::regex_replace(batch, std::regex("everything-batch"), "everything-old");
  std::ofstream(out.path() / "job-everything-old.yaml") << gone;
  std::string other = std::regex_replace(batch, std::regex("everything"), "other");
  std::ofstream(out.path() / "job-other-batch.yaml") << other;
  std::ofstream(out.path() / "notes.yaml") << "owner: ana\n";

  CommandOutput again = RunGantry(export_args, environment);
  INFO(again.err);
  REQUIRE(again.exit_code == 0);
  CHECK_FALSE(fs::exists(out.path() / "job-everything-old.yaml"));
  CHECK(again.err.find("removed " + (out.path() / "job-everything-old.yaml").string() +
                       ": app everything no longer has this object") != std::string::npos);
  CHECK(Read(out.path() / "job-other-batch.yaml") == other);
  CHECK(Read(out.path() / "notes.yaml") == "owner: ana\n");
  CHECK(Read(out.path() / "job-everything-batch.yaml") == batch);
}

TEST_CASE("gantry export compose writes a compose.yaml that docker-compose config accepts") {
  TempDir home, out;
  CommandOutput exported = RunGantry({"export", "compose", kEverything, "--no-push", "--registry",
                                      "127.0.0.1:1/team", "--out", out.path().string(), "-q"},
                                     {"GANTRY_HOME=" + home.path().string()});
  INFO(exported.err);
  REQUIRE(exported.exit_code == 0);
  CHECK(exported.err.find("warning: functions.nightly.schedule: \"0 3 * * 1-7\" in Europe/Paris") !=
        std::string::npos);
  fs::path compose = out.path() / "compose.yaml";
  REQUIRE(fs::exists(compose));
  CommandOutput validated = Validate("compose", {compose.string()});
  INFO(validated.out << validated.err);
  CHECK(validated.exit_code == 0);
  // config reads the env_file from the spec's folder, relative to compose.yaml.
  CommandOutput config = RunProcess({"docker-compose", "-f", compose.string(), "config"},
                                    out.path(), kSecretEnvironment);
  INFO(config.err);
  REQUIRE(config.exit_code == 0);
  CHECK(config.out.find("DB_PASSWORD: s3cr3t-") != std::string::npos);
  CHECK(config.out.find("HF_TOKEN: hf_very_secret_token") != std::string::npos);
  CHECK(config.out.find("driver: nvidia") != std::string::npos);
  // Without the secret's variable, compose refuses to start rather than run without it.
  CommandOutput missing =
      RunProcess({"docker-compose", "-f", compose.string(), "config"}, out.path(), {"DB_USER=ana"});
  CHECK(missing.exit_code != 0);
  CHECK(missing.err.find("secret hf needs HF_TOKEN set") != std::string::npos);
}

// The README's path to a cluster. It needs a cluster, which no Debian package
// provides, so it runs where kubectl reaches one (KUBECONFIG) and is skipped
// elsewhere. Without Knative's CRDs in the cluster it checks the HPA export.
TEST_CASE("where kubectl reaches a cluster, it accepts the export with apply --dry-run=server") {
  CommandOutput version = RunProcess({"kubectl", "version", "--request-timeout=5s"});
  if (version.exit_code != 0) {
    WARN("kubectl does not reach a cluster (kubectl version exited " << version.exit_code
                                                                     << "): skipped");
    return;
  }
  CommandOutput knative =
      RunProcess({"kubectl", "api-resources", "--api-group=serving.knative.dev", "-o", "name"});
  const bool has_knative = knative.out.find("services.serving.knative.dev") != std::string::npos;
  TempDir home, out;
  std::vector<std::string> args = {"export",     "kubernetes",       kEverything, "--no-push",
                                   "--registry", "127.0.0.1:1/team", "-q"};
  if (!has_knative) args.insert(args.end(), {"--autoscaler", "hpa"});
  CommandOutput exported = RunGantry(args, {"GANTRY_HOME=" + home.path().string()});
  INFO(exported.err);
  REQUIRE(exported.exit_code == 0);
  std::ofstream(out.path() / "app.yaml") << exported.out;
  CommandOutput applied = RunProcess(
      {"kubectl", "apply", "--dry-run=server", "-f", (out.path() / "app.yaml").string()});
  INFO(applied.out << applied.err);
  CHECK(applied.exit_code == 0);
  CHECK(applied.out.find("cronjob.batch/everything-nightly created (server dry run)") !=
        std::string::npos);
}
