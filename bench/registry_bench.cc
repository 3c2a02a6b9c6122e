// registry_bench: push and pull throughput of gantry against skopeo copy,
// the same image, the same loopback registry, in one run.
//
// The image: GANTRY_BENCH_BYTES (500 MiB) of random bytes in
// GANTRY_BENCH_LAYERS (4) layers, each a valid gzip stream (stored blocks:
// nothing to gain from compressing random bytes, and neither tool
// recompresses), written into an OCI layout with its config and manifest.
// Each round, in this order:
//   push: `gantry push --no-build` and `skopeo copy oci:STORE:big docker://…`,
//         each into a fresh docker-registry (so neither finds a blob there);
//   pull: `gantry pull` and `skopeo copy docker://… oci:DIR:big` of the image
//         gantry pushed, each into a fresh, empty folder.
// GANTRY_BENCH_ROUNDS (3) rounds; the medians are printed. Both sides are
// processes started the same way; both verify digests as they go.

#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "bench/latency_sample.h"
#include "bench/machine_load.h"
#include "builder/content_store.h"
#include "builder/descriptor.h"
#include "core/sha256.h"
#include "core/subprocess.h"
#include "tests/docker_registry.h"
#include "tests/temp_dir.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "registry_bench: %s\n", message.c_str());
  std::exit(1);
}

// Runs a program with this environment; its stdout, or death with its stderr.
std::string Run(const std::vector<std::string>& argv) {
  core::SubprocessOptions options;
  options.argv = argv;
  for (char** variable = environ; *variable != nullptr; ++variable)
    options.env.push_back(*variable);
  options.stdout_to = core::Output::Capture();
  options.stderr_to = core::Output::Capture();
  auto result = core::RunSubprocess(std::move(options));
  if (!result) Die(result.error().message);
  if (result->exit.code != 0) {
    Die(argv[0] + " " + argv[1] + " exited with code " + std::to_string(result->exit.code) + ": " +
        result->stderr_text);
  }
  return result->stdout_text;
}

double Seconds(const std::function<void()>& work) {
  auto started = Clock::now();
  work();
  return std::chrono::duration<double>(Clock::now() - started).count();
}

// A layer of `bytes` random bytes as one gzip stream of stored blocks,
// written straight into the store; its descriptor and DiffID.
std::pair<builder::Descriptor, std::string> RandomLayer(builder::ContentStore& store,
                                                        std::uint64_t bytes, std::uint64_t seed) {
  fs::path temp = store.TempPath("bench-layer");
  std::ofstream out(temp, std::ios::binary);
  z_stream stream{};
  if (deflateInit2(&stream, 0, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    Die("deflateInit2 failed");
  std::mt19937_64 random(seed);
  std::vector<std::uint64_t> input(1 << 17);  // 1 MiB
  std::vector<unsigned char> output(2 << 20);
  core::Sha256 diff_id, digest;
  std::uint64_t size = 0;
  for (std::uint64_t done = 0; done < bytes || stream.avail_in > 0;) {
    int flush = Z_NO_FLUSH;
    if (stream.avail_in == 0) {
      std::size_t length = std::min<std::uint64_t>(input.size() * 8, bytes - done);
      for (auto& word : input) word = random();
      diff_id.Update(input.data(), length);
      stream.next_in = reinterpret_cast<unsigned char*>(input.data());
      stream.avail_in = static_cast<uInt>(length);
      done += length;
    }
    if (done >= bytes) flush = Z_FINISH;
    int status = Z_OK;
    do {
      stream.next_out = output.data();
      stream.avail_out = static_cast<uInt>(output.size());
      status = deflate(&stream, flush);
      std::size_t produced = output.size() - stream.avail_out;
      digest.Update(output.data(), produced);
      out.write(reinterpret_cast<const char*>(output.data()),
                static_cast<std::streamsize>(produced));
      size += produced;
    } while (stream.avail_out == 0 || (flush == Z_FINISH && status != Z_STREAM_END));
    if (flush == Z_FINISH) break;
  }
  deflateEnd(&stream);
  out.close();
  builder::Descriptor descriptor{builder::kOciLayerGzipMediaType, digest.Finish(), size, {}};
  auto adopted = store.AdoptBlob(temp, descriptor.digest);
  if (!adopted) Die(adopted.error().message);
  return {descriptor, diff_id.Finish()};
}

// The bench image, tagged `big` in `store`; its manifest digest.
std::string MakeImage(builder::ContentStore& store, std::uint64_t bytes, std::uint64_t layers) {
  nlohmann::json diff_ids = nlohmann::json::array(), descriptors = nlohmann::json::array();
  for (std::uint64_t i = 0; i < layers; ++i) {
    auto [layer, diff_id] = RandomLayer(store, bytes / layers, i + 1);
    descriptors.push_back(layer.ToJson());
    diff_ids.push_back(diff_id);
  }
  nlohmann::json config = {{"architecture", "amd64"},
                           {"os", "linux"},
                           {"config", nlohmann::json::object()},
                           {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}};
  auto config_descriptor = store.PutBlob(config.dump(), builder::kOciConfigMediaType);
  if (!config_descriptor) Die(config_descriptor.error().message);
  nlohmann::json manifest = {{"schemaVersion", 2},
                             {"mediaType", builder::kOciManifestMediaType},
                             {"config", config_descriptor->ToJson()},
                             {"layers", descriptors}};
  auto manifest_descriptor = store.PutBlob(manifest.dump(), builder::kOciManifestMediaType);
  if (!manifest_descriptor) Die(manifest_descriptor.error().message);
  auto tagged = store.Tag("big", *manifest_descriptor);
  if (!tagged) Die(tagged.error().message);
  return manifest_descriptor->digest;
}

std::unique_ptr<tests::DockerRegistry> StartRegistry(const fs::path& dir) {
  auto registry = tests::DockerRegistry::Start(dir);
  if (!registry) Die(registry.error().message);
  return std::move(registry).value();
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (!tests::HasDockerRegistry())
    Die("needs /usr/bin/docker-registry (apt-get install docker-registry)");
  const std::uint64_t bytes = bench::EnvNumber("GANTRY_BENCH_BYTES", std::uint64_t{500} << 20);
  const std::uint64_t layers = bench::EnvNumber("GANTRY_BENCH_LAYERS", 4);
  const std::uint64_t rounds = bench::EnvNumber("GANTRY_BENCH_ROUNDS", 3);
  const double mib = static_cast<double>(bytes) / (1 << 20);

  tests::TempDir work("gantry-registry-bench");
  fs::path store_path = work.path() / "store";
  auto store = builder::ContentStore::Open(store_path);
  if (!store) Die(store.error().message);
  std::printf("making a %.0f MiB image in %llu layers...\n", mib,
              static_cast<unsigned long long>(layers));
  std::string digest = MakeImage(*store, bytes, layers);
  std::ofstream(work.path() / "app.yaml") << "app: bench\nimages:\n  big:\n    from: scratch\n";

  std::printf("load average before: %s\n", bench::LoadAverage().c_str());
  std::vector<double> gantry_push, skopeo_push, gantry_pull, skopeo_pull;
  for (std::uint64_t round = 0; round < rounds; ++round) {
    tests::TempDir for_gantry("gantry-bench-registry"), for_skopeo("gantry-bench-registry");
    auto gantry_registry = StartRegistry(for_gantry.path());
    auto skopeo_registry = StartRegistry(for_skopeo.path());
    gantry_push.push_back(Seconds([&] {
      std::string out = Run({GANTRY_BINARY, "push", (work.path() / "app.yaml").string(), "--to",
                             gantry_registry->domain() + "/bench", "--store", store_path.string(),
                             "--no-build", "-q"});
      if (out.find(digest) == std::string::npos) Die("gantry pushed another digest: " + out);
    }));
    skopeo_push.push_back(Seconds([&] {
      Run({"skopeo", "copy", "-q", "--dest-tls-verify=false", "oci:" + store_path.string() + ":big",
           "docker://" + skopeo_registry->domain() + "/bench/big:latest"});
    }));
    const std::string reference = gantry_registry->domain() + "/bench/big:latest";
    tests::TempDir gantry_store("gantry-bench-pull"), skopeo_layout("gantry-bench-pull");
    gantry_pull.push_back(Seconds([&] {
      std::string out =
          Run({GANTRY_BINARY, "pull", reference, "--store", gantry_store.path().string(), "-q"});
      if (out.find(digest) == std::string::npos) Die("gantry pulled another digest: " + out);
    }));
    skopeo_pull.push_back(Seconds([&] {
      Run({"skopeo", "copy", "-q", "--src-tls-verify=false", "docker://" + reference,
           "oci:" + skopeo_layout.path().string() + ":big"});
    }));
    std::printf(
        "round %llu: push gantry %.2f s, skopeo %.2f s; pull gantry %.2f s, skopeo %.2f s\n",
        static_cast<unsigned long long>(round + 1), gantry_push.back(), skopeo_push.back(),
        gantry_pull.back(), skopeo_pull.back());
  }
  std::printf("load average after: %s\n\n", bench::LoadAverage().c_str());

  std::printf(
      "Push and pull of a %.0f MiB image (%llu layers) through docker-registry on "
      "127.0.0.1, median of %llu\n",
      mib, static_cast<unsigned long long>(layers), static_cast<unsigned long long>(rounds));
  std::printf("  %-34s %8s %9s %10s\n", "", "wall s", "MiB/s", "vs skopeo");
  auto row = [&](const char* name, double seconds, double reference) {
    std::printf("  %-34s %8.2f %9.1f %9.2fx\n", name, seconds, mib / seconds, reference / seconds);
  };
  double push_reference = bench::Median(skopeo_push), pull_reference = bench::Median(skopeo_pull);
  row("push: skopeo copy oci: docker://", push_reference, push_reference);
  row("push: gantry push --no-build", bench::Median(gantry_push), push_reference);
  row("pull: skopeo copy docker:// oci:", pull_reference, pull_reference);
  row("pull: gantry pull", bench::Median(gantry_pull), pull_reference);
  std::printf("Goal: at least as fast as skopeo (1.00x or more) both ways.\n");
  return 0;
}
