#include "spec/decoder.h"

#include <catch2/catch.hpp>

#include "spec/spec_test_support.h"

using spec::testing::ErrorText;
using spec::testing::LoadLua;
using spec::testing::LoadYaml;
using spec::testing::TempDir;

namespace {

// Lines 1-11 of every function case; the case's own lines start at line 12.
const std::string kPrelude = R"(app: demo
images:
  base:
    from: scratch
secrets:
  hf: {from_env: [HF_TOKEN]}
volumes:
  models: {}
functions:
  job:
    image: base
)";

struct Case {
  std::string lines;     // YAML appended after the prelude (function fields at 4 spaces)
  const char* expected;  // a substring of the error
  int line;              // the line it must point at
};

// Loads `text` and checks that it fails with `expected` in its errors, at `line`.
void ExpectError(const std::string& text, const TempDir& dir, const std::string& expected,
                 int line) {
  INFO(text);
  auto result = LoadYaml(text, dir);
  REQUIRE_FALSE(result.ok());
  std::string errors = ErrorText(result);
  INFO(errors);
  CHECK(errors.find(expected) != std::string::npos);
  CHECK(errors.find("app.yaml:" + std::to_string(line) + ":") != std::string::npos);
}

void CheckCases(const std::vector<Case>& cases) {
  TempDir dir;
  for (const Case& item : cases) ExpectError(kPrelude + item.lines, dir, item.expected, item.line);
}

}  // namespace

TEST_CASE("the prelude of the rule cases is itself valid") {
  TempDir dir;
  auto result = LoadYaml(kPrelude, dir);
  INFO(ErrorText(result));
  REQUIRE(result.ok());
  const spec::Function& job = result->functions.at("job");
  CHECK(job.cpu == 0.125);
  CHECK(job.memory == 128u << 20);
  CHECK(job.timeout == std::chrono::seconds(300));
  CHECK(job.max_containers == 10);
  CHECK(job.max_inputs == 1);
  CHECK(job.scaledown_window == std::chrono::seconds(60));
  CHECK_FALSE(job.web.has_value());
}

TEST_CASE("function fields: types, ranges and units") {
  CheckCases({
      {"    cpu: 0\n", "functions.job.cpu: must be greater than 0 and at most 256, got 0", 12},
      {"    cpu: \"1.5\"\n", "functions.job.cpu: must be a number, got a string \"1.5\"", 12},
      {"    cpu: 300\n", "at most 256", 12},
      {"    memory: 2048\n", "did you mean 2048Mi?", 12},
      {"    memory: 2GB\n", "unknown unit \"GB\"", 12},
      {"    memory: 8Ti\n", "must be between 4Mi and 4Ti", 12},
      {"    timeout: 2 days\n", "functions.job.timeout: invalid duration", 12},
      {"    timeout: 25h\n", "must be between 1s and 24h, got 25h", 12},
      {"    timeout: [1]\n", "must be a duration", 12},
      {"    min_containers: -1\n",
       "functions.job.min_containers: must be between 0 and 1000, got -1", 12},
      {"    max_containers: 0\n", "must be between 1 and 1000", 12},
      {"    max_containers: 1.5\n", "must be a whole number", 12},
      {"    max_inputs: 5000\n", "functions.job.max_inputs: must be between 1 and 1000", 12},
      {"    max_containers: 2\n    min_containers: 3\n",
       "min_containers (3) is more than max_containers (2)", 13},
      {"    max_containers: 2\n    buffer_containers: 3\n",
       "buffer_containers (3) is more than max_containers (2)", 13},
      {"    scaledown_window: 1s\n", "must be between 2s and 20m", 12},
      {"    target_inputs: 0\n", "functions.job.target_inputs: must be between 1 and 1000", 12},
      {"    target_inputs: 1\n",
       "functions.job.target_inputs: only a web function has an autoscaler to aim at it", 12},
      {"    web: true\n    max_inputs: 2\n    target_inputs: 3\n",
       "functions.job.target_inputs: target_inputs (3) is more than max_inputs (2)", 14},
      {"    retries: 11\n", "functions.job.retries: must be between 0 and 10", 12},
      {"    retries: {max: 2, backof: 1s}\n", "unknown field \"backof\"; did you mean \"backoff\"?",
       12},
      {"    retries: {backoff: 11m}\n", "functions.job.retries.backoff: must be between 0s and 10m",
       12},
      {"    command: \"python app.py\"\n", "functions.job.command: must be a list of strings", 12},
      {"    command: [python, 3]\n",
       "functions.job.command[1]: must be a string, got an integer \"3\"", 12},
      {"    env: {1X: a}\n", "invalid environment variable name \"1X\"", 12},
      {"    env: {X: [a]}\n", "functions.job.env.X: must be a string, number or boolean", 12},
      {"    imgae: base\n", "unknown field \"imgae\"; did you mean \"image\"?", 12},
  });
}

TEST_CASE("function references: image, secrets, volumes") {
  CheckCases({
      {"  other:\n    image: bsae\n",
       "functions.other.image: no image named \"bsae\" in images: did you mean \"base\"?", 13},
      {"  other:\n    command: [a]\n", "functions.other: missing required field \"image\"", 13},
      {"    secrets: [hf, hf]\n", "secret \"hf\" listed twice", 12},
      {"    secrets: [openai]\n", "functions.job.secrets[0]: no secret named \"openai\"", 12},
      {"    volumes: {/weights: model}\n",
       "no volume named \"model\" in volumes: did you mean \"models\"?", 12},
      {"    volumes: {weights: models}\n", "mount path \"weights\" must be an absolute path", 12},
      {"    volumes: {/: models}\n", "must be an absolute path other than /", 12},
      {"    volumes: {/dev/shm: models}\n", "mount path \"/dev/shm\" is reserved", 12},
      {"    volumes: [models]\n", "must be a map of mount paths to volume names", 12},
      {"    volumes: {/x/: models, /x: models}\n", "mount path \"/x\" is \"/x\" again", 12},
      {"    volumes: {///: models}\n", "must be an absolute path other than /", 12},
      {"    timeout:\n", "functions.job.timeout: must be a duration", 12},
      {"    timeout: \"99999999999999999999\"\n", "is too long", 12},
      {"    schedule: {cron: \"@daily\", timezone: \"" + std::string(100000, 'x') + "\"}\n",
       "(100000 characters)", 12},
  });
}

TEST_CASE("gpu: types, counts, fallbacks") {
  CheckCases({
      {"    gpu: H10\n", "unknown GPU type \"H10\"; did you mean \"H100\"?", 12},
      {"    gpu: \"H100:9\"\n", "GPU count in \"H100:9\" must be 1 to 8", 12},
      {"    gpu: \"H100:0\"\n", "must be 1 to 8", 12},
      {"    gpu: \"H100:x\"\n", "must be 1 to 8", 12},
      {"    gpu: [H100, A100, h100]\n", "\"h100\" is already in the list", 12},
      {"    gpu: {type: H100}\n", "functions.job.gpu: must be a GPU", 12},
  });
  TempDir dir;
  auto result = LoadYaml(kPrelude + "    gpu: [h100, \"a100-80gb:2\", any]\n", dir);
  INFO(ErrorText(result));
  REQUIRE(result.ok());
  const auto& gpu = result->functions.at("job").gpu;
  REQUIRE(gpu.size() == 3);
  CHECK(gpu[0].type == "H100");
  CHECK(gpu[0].count == 1);
  CHECK(gpu[1].type == "A100-80GB");
  CHECK(gpu[1].count == 2);
  CHECK(gpu[2].type == "any");
}

TEST_CASE("web and schedule") {
  CheckCases({
      {"    web: {auth: open}\n",
       "functions.job.web.auth: must be public, token or key, got \"open\"", 12},
      {"    web: {health_path: healthz}\n", "must start with /", 12},
      {"    web: {port_env: 8080}\n", "functions.job.web.port_env: must be a string", 12},
      {"    web: {port: 8080}\n",
       "unknown field \"port\" (expected one of: port_env, health_path, auth, queue_timeout, "
       "max_queued, startup_timeout)",
       12},
      {"    web: {queue_timeout: 11m}\n",
       "functions.job.web.queue_timeout: must be between 1s and 10m, got 11m", 12},
      {"    web: {queue_timeout: 0.5}\n",
       "functions.job.web.queue_timeout: must be between 1s and 10m, got 500ms", 12},
      {"    web: {queue_timeout: [30s]}\n", "functions.job.web.queue_timeout: must be a duration",
       12},
      {"    web: {max_queued: -1}\n",
       "functions.job.web.max_queued: must be between 0 and 100000, got -1", 12},
      {"    web: {max_queued: 100001}\n",
       "functions.job.web.max_queued: must be between 0 and 100000, got 100001", 12},
      {"    web: {max_queued: 2.5}\n", "functions.job.web.max_queued: must be a whole number", 12},
      {"    web: {max_queued: \"10\"}\n",
       "functions.job.web.max_queued: must be a whole number, got a string \"10\"", 12},
      {"    web: {startup_timeout: 31m}\n",
       "functions.job.web.startup_timeout: must be between 1s and 30m, got 31m", 12},
      {"    web: {startup_timeout: 0}\n",
       "functions.job.web.startup_timeout: must be between 1s and 30m", 12},
      {"    web: {startup_timeout: true}\n",
       "functions.job.web.startup_timeout: must be a duration", 12},
      {"    web: true\n    schedule: {every: 1h}\n", "a function with web: cannot have one", 13},
      {"    schedule: {cron: \"0 9 * * 1-5\", every: 1h}\n", "needs exactly one of cron", 12},
      {"    schedule: {timezone: UTC}\n", "needs exactly one of cron", 12},
      {"    schedule: {cron: \"0 25 * * *\"}\n",
       "functions.job.schedule.cron: hour 25 is out of range 0-23", 12},
      {"    schedule: {cron: \"0 9 * *\"}\n", "needs 5 fields", 12},
      {"    schedule: {cron: \"@every 5m\"}\n", "unknown macro", 12},
      {"    schedule: {cron: \"0 0 30 feb *\"}\n",
       "functions.job.schedule.cron: cron expression never fires: no month in \"feb\" has a day "
       "\"30\"",
       12},
      {"    schedule: {cron: \"0 9 * * 1\", timezone: Europe/Pariss}\n",
       "unknown timezone \"Europe/Pariss\" (an IANA name such as Europe/Paris or UTC); did you "
       "mean \"Europe/Paris\"?",
       12},
      {"    schedule: {every: 1h, timezone: UTC}\n", "a timezone applies to cron schedules only",
       12},
      {"    schedule: {every: 0s}\n", "functions.job.schedule.every: must be between 1s", 12},
      {"    schedule: {cron: \"@daily\", overlap: queue}\n", "must be skip, allow or replace", 12},
      {"    schedule: {every: 1h, catch_up: -1}\n",
       "functions.job.schedule.catch_up: must be between 0 and 2147483647, got -1", 12},
      {"    schedule: {every: 1h, catch_up: 2147483648}\n",
       "functions.job.schedule.catch_up: must be between 0 and 2147483647, got 2147483648", 12},
      {"    schedule: {every: 1h, catch_up: 1.5}\n",
       "functions.job.schedule.catch_up: must be a whole number", 12},
      {"    schedule: {every: 1h, catch_up: all}\n",
       "functions.job.schedule.catch_up: must be a whole number, got a string \"all\"", 12},
  });
  TempDir dir;
  auto result = LoadYaml(
      kPrelude + "    schedule: {cron: \" 0  9 * *   mon-fri \", timezone: Asia/Tokyo}\n", dir);
  INFO(ErrorText(result));
  REQUIRE(result.ok());
  CHECK(result->functions.at("job").schedule->cron == "0 9 * * mon-fri");
  CHECK(result->functions.at("job").schedule->timezone == "Asia/Tokyo");
}

TEST_CASE("web and schedule settings the agent applies: defaults, values and where errors point") {
  TempDir dir;
  SECTION("defaults are the agent's") {
    auto result = LoadYaml(
        kPrelude + "    web: true\n  nightly:\n    image: base\n" + "    schedule: {every: 1h}\n",
        dir);
    INFO(ErrorText(result));
    REQUIRE(result.ok());
    const spec::Web& web = *result->functions.at("job").web;
    CHECK(web.queue_timeout == std::chrono::seconds(30));
    CHECK(web.max_queued == 1000);
    CHECK(web.startup_timeout == std::chrono::seconds(60));
    CHECK(result->functions.at("nightly").schedule->catch_up == 1);
  }
  SECTION("set values read back, at the edges of their ranges too") {
    auto result = LoadYaml(kPrelude +
                               "    web: {queue_timeout: 10m, max_queued: 0, startup_timeout: 1}\n"
                               "  nightly:\n    image: base\n"
                               "    schedule: {cron: \"@hourly\", catch_up: 0}\n"
                               "  edge:\n    image: base\n"
                               "    web: {queue_timeout: 1.5, max_queued: 100000, "
                               "startup_timeout: 30m}\n"
                               "  weekly:\n    image: base\n"
                               "    schedule: {every: 7d, catch_up: 2147483647}\n",
                           dir);
    INFO(ErrorText(result));
    REQUIRE(result.ok());
    const spec::Web& web = *result->functions.at("job").web;
    CHECK(web.queue_timeout == std::chrono::minutes(10));
    CHECK(web.max_queued == 0);
    CHECK(web.startup_timeout == std::chrono::seconds(1));
    const spec::Web& edge = *result->functions.at("edge").web;
    CHECK(edge.queue_timeout == std::chrono::milliseconds(1500));
    CHECK(edge.max_queued == 100000);
    CHECK(edge.startup_timeout == std::chrono::minutes(30));
    CHECK(result->functions.at("nightly").schedule->catch_up == 0);
    CHECK(result->functions.at("weekly").schedule->catch_up == 2147483647);
  }
  SECTION("from Lua too") {
    auto result = LoadLua(R"(return {
  app = "demo",
  images = { base = { from = "scratch" } },
  functions = {
    api = { image = "base", web = { queue_timeout = "2m", max_queued = 10 * 5,
                                    startup_timeout = 90 } },
    nightly = { image = "base", schedule = { every = "1h", catch_up = 6 / 2 } },
  },
})",
                          dir);
    INFO(ErrorText(result));
    REQUIRE(result.ok());
    const spec::Web& web = *result->functions.at("api").web;
    CHECK(web.queue_timeout == std::chrono::minutes(2));
    CHECK(web.max_queued == 50);
    CHECK(web.startup_timeout == std::chrono::seconds(90));
    CHECK(result->functions.at("nightly").schedule->catch_up == 3);
  }
  SECTION("an error names the field at its line and column") {
    auto result = LoadYaml(kPrelude +
                               "    web:\n"
                               "      queue_timeout: 20m\n"
                               "      max_queued: 200000\n"
                               "      startup_timeout: 0s\n"
                               "  nightly:\n    image: base\n"
                               "    schedule:\n"
                               "      every: 1h\n"
                               "      catch_up: -2\n",
                           dir);
    REQUIRE_FALSE(result.ok());
    std::string errors = ErrorText(result);
    INFO(errors);
    CHECK(errors.find("app.yaml:13:22: functions.job.web.queue_timeout: must be between 1s and "
                      "10m, got 20m") != std::string::npos);
    CHECK(errors.find("app.yaml:14:19: functions.job.web.max_queued: must be between 0 and "
                      "100000, got 200000") != std::string::npos);
    CHECK(errors.find("app.yaml:15:24: functions.job.web.startup_timeout: must be between 1s and "
                      "30m, got 0s") != std::string::npos);
    CHECK(errors.find("app.yaml:20:17: functions.nightly.schedule.catch_up: must be between 0 and "
                      "2147483647, got -2") != std::string::npos);
  }
}

TEST_CASE("images: bases and steps") {
  TempDir dir;
  dir.Write("rootfs/bin/sh", "");
  dir.Write(".gantryignore", "*.pyc\n");
  auto image_case = [&](const std::string& image, const char* expected, int line) {
    ExpectError("app: demo\nimages:\n  base:\n" + image, dir, expected,
                line);  // image lines start at line 4
  };
  image_case("    steps: []\n", "images.base: missing required field \"from\"", 4);
  image_case("    form: scratch\n", "unknown field \"form\"; did you mean \"from\"?", 4);
  image_case("    from: Debian\n", "images.base.from: invalid image reference \"Debian\"", 4);
  image_case("    from: oci:./nowhere\n", "no OCI layout at \"./nowhere\"", 4);
  image_case("    from: \"oci:./rootfs:\"\n", "empty tag", 4);
  image_case("    from: {debootstrap: Bookworm}\n", "invalid Debian suite \"Bookworm\"", 4);
  image_case("    from: {debootstrap: bookworm, mirror: x}\n", "unknown field \"mirror\"", 4);
  image_case("    from: scratch\n    steps: {run: ls}\n",
             "images.base.steps: must be a list of steps", 5);
  image_case("    from: scratch\n    steps:\n      - {run: ls, env: {A: b}}\n",
             "a step has exactly one kind, found run and env", 6);
  image_case("    from: scratch\n    steps:\n      - {}\n", "a step needs one of", 6);
  image_case("    from: scratch\n    steps:\n      - rnu: ls\n",
             "unknown field \"rnu\"; did you mean \"run\"?", 6);
  image_case("    from: scratch\n    steps:\n      - copy: {src: ../secrets, dst: /x}\n",
             "images.base.steps[0].copy.src: \"../secrets\" is outside the build context", 6);
  image_case("    from: scratch\n    steps:\n      - copy: {src: /etc, dst: /x}\n",
             "is outside the build context", 6);
  image_case("    from: scratch\n    steps:\n      - copy: {src: ./missing, dst: /x}\n",
             "\"./missing\" does not exist in the build context", 6);
  image_case("    from: scratch\n    steps:\n      - copy: {src: ./rootfs, dst: srv}\n",
             "copy.dst: must be an absolute path", 6);
  image_case("    from: scratch\n    steps:\n      - copy: {dst: /srv}\n",
             "copy: missing required field \"src\"", 6);
  image_case("    from: scratch\n    steps:\n      - run: \"\"\n",
             "images.base.steps[0].run: must not be empty", 6);
  image_case("    from: scratch\n    steps:\n      - run: {command: ls, network: host}\n",
             "must be \"default\" or \"none\", got \"host\"", 6);
  image_case("    from: scratch\n    steps:\n      - workdir: srv\n",
             "workdir: must be an absolute path", 6);
  image_case("    from: scratch\n    steps:\n      - user: \"root; rm\"\n",
             "must be NAME, UID or UID:GID", 6);
  image_case("    from: scratch\n    steps:\n      - apt_install: []\n",
             "apt_install: must not be empty", 6);
  image_case("    from: scratch\n    steps:\n      - apt_install: [\"python3 && rm -rf /\"]\n",
             "invalid Debian package name", 6);
  image_case("    from: scratch\n    steps:\n      - pip_install: [\"--index-url=http://x\"]\n",
             "no pip options", 6);
  image_case("    from: scratch\n    entrypoint: /bin/sh\n",
             "images.base.entrypoint: must be a list of strings", 5);
  image_case("    from: scratch\n    labels: [a]\n", "images.base.labels: must be a map of labels",
             5);
  image_case("    from: scratch\n    compression: xz\n",
             "images.base.compression: must be \"gzip\" or \"zstd\", got \"xz\"", 5);
  image_case("    from: scratch\n    compression: [zstd]\n", "images.base.compression: must be", 5);

  auto good = LoadYaml(R"(app: demo
images:
  base:
    from: busybox:1.36
    steps:
      - copy: {src: ./rootfs, dst: /, ignore: .gantryignore}
      - run: {command: "apt-get update", network: none}
      - run: echo hi
    env: {A: 1}
    cmd: [sh]
  local:
    from: oci:./rootfs
  deb:
    from: {debootstrap: bookworm}
)",
                       dir);
  dir.Write("rootfs/oci-layout", "{}");
  INFO(ErrorText(good));
  // The oci: base was checked before its layout file existed.
  REQUIRE_FALSE(good.ok());
  CHECK(ErrorText(good).find("no OCI layout at \"./rootfs\"") != std::string::npos);
}

TEST_CASE("image-level settings become steps after the listed ones") {
  TempDir dir;
  auto result = LoadYaml(R"(app: demo
images:
  base:
    from: busybox
    cmd: [sh]
    steps:
      - run: echo hi
    env: {A: "1"}
    workdir: /srv
)",
                         dir);
  INFO(ErrorText(result));
  REQUIRE(result.ok());
  const spec::Image& image = result->images.at("base");
  REQUIRE(image.steps.size() == 4);
  CHECK(std::holds_alternative<spec::RunStep>(image.steps[0]));
  CHECK(std::holds_alternative<spec::EnvStep>(image.steps[1]));
  CHECK(std::holds_alternative<spec::WorkdirStep>(image.steps[2]));
  CHECK(std::holds_alternative<spec::CmdStep>(image.steps[3]));
  CHECK(std::get<spec::RegistryBase>(image.base).reference == "docker.io/library/busybox:latest");
}

TEST_CASE("an image's layers are gzip unless it asks for zstd") {
  TempDir dir;
  auto result = LoadYaml(R"(app: demo
images:
  plain:
    from: scratch
  gzip:
    from: scratch
    compression: gzip
  zstd:
    from: scratch
    compression: zstd
)",
                         dir);
  INFO(ErrorText(result));
  REQUIRE(result.ok());
  CHECK(result->images.at("plain").compression == spec::Compression::kGzip);
  CHECK(result->images.at("gzip").compression == spec::Compression::kGzip);
  CHECK(result->images.at("zstd").compression == spec::Compression::kZstd);
}

TEST_CASE("top level, names, secrets, volumes and budget") {
  TempDir dir;
  auto check = [&](const std::string& text, const char* expected, int line) {
    ExpectError(text, dir, expected, line);
  };
  check("- app\n", "the spec: must be a map, got a list", 1);
  check("images: {}\n", "the spec: missing required field \"app\"", 1);
  check("app: Hello_World\n", "app: invalid app name \"Hello_World\"", 1);
  check("app: demo\nfunctoins: {}\n", "unknown field \"functoins\"; did you mean \"functions\"?",
        2);
  check("app: demo\nimages: []\n", "images: must be a map of image names", 2);
  check("app: demo\nimages:\n  -bad-: {from: scratch}\n",
        "images.-bad-: invalid image name \"-bad-\"", 3);
  check("app: demo\nfunctions:\n  " + std::string(64, 'a') + ": {image: x}\n",
        "invalid function name", 3);
  check("app: demo\nsecrets:\n  hf: {}\n", "secrets.hf: needs from_env", 3);
  check("app: demo\nsecrets:\n  hf: {from_env: [hf-token]}\n",
        "invalid environment variable name \"hf-token\"", 3);
  check("app: demo\nsecrets:\n  hf: {from_env: []}\n", "secrets.hf.from_env: must not be empty", 3);
  check("app: demo\nsecrets:\n  hf: {value: abc}\n", "unknown field \"value\"", 3);
  check("app: demo\nvolumes:\n  models: {size: 1Gi}\n",
        "volumes.models: unknown field \"size\" (this map takes no fields)", 3);
  check("app: demo\nbudget: {on_exceed: stop}\n", "budget: needs daily_usd, monthly_usd or both",
        2);
  check("app: demo\nbudget: {monthly_usd: -5}\n", "budget.monthly_usd: must be greater than 0", 2);
  check("app: demo\nbudget: {daily_usd: 5, on_exceed: pause}\n",
        "must be stop or alert, got \"pause\"", 2);

  auto volumes = LoadYaml("app: demo\nvolumes:\n  models:\n  cache: {}\n", dir);
  INFO(ErrorText(volumes));
  REQUIRE(volumes.ok());
  CHECK(volumes->volumes.size() == 2);
}

TEST_CASE("every error of a file is reported, in file order") {
  TempDir dir;
  auto result = LoadYaml(R"(app: Demo
images:
  base:
    from: scratch
functions:
  api:
    image: nope
    cpu: -1
    gpu: X100
    timeout: forever
)",
                         dir);
  REQUIRE_FALSE(result.ok());
  const spec::Diagnostics& errors = result.error();
  REQUIRE(errors.size() == 5);
  for (std::size_t i = 1; i < errors.size(); ++i)
    CHECK(errors[i - 1].location.line <= errors[i].location.line);
  CHECK(errors[0].location.line == 1);
  CHECK(errors[4].location.line == 10);
  for (const core::Error& error : errors) CHECK(error.code == core::ErrorCode::kInvalidSpec);
}
