// build_bench: the figures of builder/README.md, "Performance", side by side
// with their reference.
//
//  1. Packing: a generated tree (GANTRY_BENCH_BYTES, default 1 GiB, in
//     GANTRY_BENCH_FILES files, default 10,000; half random bytes, half
//     text) packed into a layer by WriteLayer (gzip, and zstd), against
//     `tar -cf - TREE | gzip -6 > /dev/null` on the same tree. Median of
//     GANTRY_BENCH_RUNS runs (default 3), runs interleaved.
//  2. No-op rebuild of examples/hello/app.yaml: in process through
//     builder::ImageBuilder, and through the `gantry build` binary, start-up
//     included. Median of 20 after one build that fills the cache.
//
// Run it with `ctest --test-dir build -L bench --output-on-failure`, or
// `build/bench/build_bench` directly. It is not a test: it fails only when
// something it runs fails, never on a figure.

#include <fcntl.h>
#include <sched.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/latency_sample.h"
#include "bench/machine_load.h"
#include "builder/content_store.h"
#include "builder/image_builder.h"
#include "builder/layer_writer.h"
#include "core/cpus.h"
#include "spec/loader.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr double kMiB = 1024.0 * 1024.0;
constexpr double kNoopGoalSeconds = 0.100;
constexpr double kPackingGoalRatio = 1.5;
constexpr int kRebuilds = 20;

// The temporary folders alive now: Die removes them too, since exit()
// runs no destructors and a tree is a GiB.
std::vector<fs::path>& LiveTempDirs() {
  static std::vector<fs::path> paths;
  return paths;
}

/// A folder of the benchmark's own under $TMPDIR, removed with all it holds.
class TempDir {
 public:
  explicit TempDir(const std::string& name) {
    std::error_code error;
    fs::path temp = fs::temp_directory_path(error);
    std::string pattern = (temp / (name + "-XXXXXX")).string();
    if (error || mkdtemp(pattern.data()) == nullptr) {
      std::fprintf(stderr, "build_bench: cannot make a temporary folder %s\n", pattern.c_str());
      std::exit(1);
    }
    path_ = pattern;
    LiveTempDirs().push_back(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
    std::erase(LiveTempDirs(), path_);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "build_bench: %s\n", message.c_str());
  for (const fs::path& path : LiveTempDirs()) {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  std::exit(1);
}

double Seconds(const std::function<void()>& work) {
  auto started = Clock::now();
  work();
  return std::chrono::duration<double>(Clock::now() - started).count();
}

/// Runs a program, its stdout to /dev/null, and dies unless it exits 0.
void Run(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  int spawned = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) Die("cannot start " + argv[0] + ": " + std::strerror(spawned));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) Die("cannot wait for " + argv[0]);
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string command;
    for (const std::string& arg : argv) command += (command.empty() ? "" : " ") + arg;
    Die("failed: " + command);
  }
}

// --- The tree ---------------------------------------------------------------

constexpr const char* kWords[] = {
    "the",    "layer",   "image", "build",   "gantry", "agent",  "plan",    "spec",
    "return", "struct",  "const", "string",  "vector", "error",  "result",  "digest",
    "sha256", "content", "store", "blob",    "tar",    "gzip",   "member",  "thread",
    "int",    "void",    "if",    "else",    "for",    "while",  "include", "namespace",
    "{",      "}",       "(",     ")",       ";",      "=",      "==",      "+",
    "0",      "1",       "42",    "1024",    "path",   "file",   "folder",  "mode",
    "uid",    "gid",     "mtime", "options", "entry",  "source", "target",  "link",
    "data",   "size",    "count", "buffer",  "write",  "read",   "open",    "close"};

/// `size` bytes of text from a small vocabulary: compresses about 3:1,
/// like source code and configuration.
void AppendText(std::mt19937_64& random, std::size_t size, std::string* out) {
  std::size_t end = out->size() + size;
  while (out->size() < end) {
    std::uint64_t bits = random();
    for (int i = 0; i < 8 && out->size() < end; ++i, bits >>= 8) {
      *out += kWords[(bits & 0xff) % std::size(kWords)];
      *out += (bits & 0xff) >= 240 ? '\n' : ' ';
    }
  }
  out->resize(end);
}

void AppendRandom(std::mt19937_64& random, std::size_t size, std::string* out) {
  std::size_t start = out->size();
  out->resize(start + size);
  for (std::size_t i = start; i < out->size(); i += 8) {
    std::uint64_t bits = random();
    std::memcpy(out->data() + i, &bits, std::min<std::size_t>(8, out->size() - i));
  }
}

struct TreeStats {
  std::uint64_t bytes = 0;
  std::uint64_t files = 0;
  std::uint64_t random_bytes = 0;
};

/// `files` files of `bytes` in all under `root`, 100 to a folder: even ones
/// random bytes, odd ones text; sizes vary from half to one and a half times
/// the mean, in pairs that keep the total exact (the last file takes what
/// rounding leaves). The same seed, the same tree.
TreeStats GenerateTree(const fs::path& root, std::uint64_t bytes, std::uint64_t files) {
  std::mt19937_64 random(20240601);
  TreeStats stats;
  std::uint64_t mean = bytes / files;
  std::string content;
  std::int64_t delta = 0;
  for (std::uint64_t i = 0; i < files; ++i) {
    // Which of a pair is the larger alternates, so random bytes stay half.
    if (i % 2 == 0) {
      delta = static_cast<std::int64_t>(random() % (mean / 2 + 1));
      if ((i / 2) % 2 == 1) delta = -delta;
    }
    std::uint64_t size =
        static_cast<std::uint64_t>(static_cast<std::int64_t>(mean) + (i % 2 == 0 ? delta : -delta));
    if (i == files - 1) size = bytes - stats.bytes;  // the rest: an unpaired file, rounding
    bool is_random = i % 2 == 0;
    content.clear();
    if (is_random) {
      AppendRandom(random, size, &content);
      stats.random_bytes += size;
    } else {
      AppendText(random, size, &content);
    }
    char folder[32];
    char name[32];
    std::snprintf(folder, sizeof folder, "d%03llu", static_cast<unsigned long long>(i / 100));
    std::snprintf(name, sizeof name, "f%05llu.%s", static_cast<unsigned long long>(i),
                  is_random ? "bin" : "txt");
    fs::create_directories(root / folder);
    std::FILE* file = std::fopen((root / folder / name).c_str(), "wb");
    if (file == nullptr || std::fwrite(content.data(), 1, content.size(), file) != content.size() ||
        std::fclose(file) != 0) {
      Die("cannot write " + (root / folder / name).string());
    }
    stats.bytes += size;
    stats.files += 1;
  }
  return stats;
}

/// The layer entries of everything under `root`, as a caller of WriteLayer
/// lists them: one lstat per path.
std::vector<builder::LayerEntry> ListTree(const fs::path& root) {
  std::vector<builder::LayerEntry> entries;
  for (const fs::directory_entry& item : fs::recursive_directory_iterator(root)) {
    struct stat info {};
    if (lstat(item.path().c_str(), &info) != 0) Die("cannot stat " + item.path().string());
    builder::LayerEntry entry;
    entry.path = "tree/" + item.path().lexically_relative(root).generic_string();
    entry.mode = info.st_mode & 07777;
    entry.mtime = info.st_mtime;
    if (S_ISDIR(info.st_mode)) {
      entry.type = builder::LayerEntry::Type::kDirectory;
    } else {
      entry.source = item.path();
    }
    entries.push_back(std::move(entry));
  }
  return entries;
}

// --- Packing ----------------------------------------------------------------

// CPU seconds (user + system) of this process's threads, or of its children
// that have been waited for.
double CpuSeconds(int who) {
  struct rusage usage {};
  getrusage(who, &usage);
  auto seconds = [](const timeval& time) { return time.tv_sec + time.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

/// One run: wall time, and the CPU time it took on all cores together.
/// On a busy machine the wall time moves with the load; the CPU time much less.
struct Timing {
  double wall = 0;
  double cpu = 0;
};

struct PackingRow {
  std::string name;
  std::vector<Timing> runs;
  std::uint64_t output_bytes = 0;

  double MedianWall() const {
    std::vector<double> values;
    for (const Timing& run : runs) values.push_back(run.wall);
    return bench::Median(values);
  }
  double MedianCpu() const {
    std::vector<double> values;
    for (const Timing& run : runs) values.push_back(run.cpu);
    return bench::Median(values);
  }
};

// Lists the tree and writes it as a layer into a fresh store: what a copy
// step does once its inputs are known, fsync of the blob included.
Timing PackWithWriteLayer(const fs::path& tree, const fs::path& scratch, int threads,
                          spec::Compression compression, std::uint64_t* output_bytes) {
  fs::path store_path = scratch / "store";
  double cpu_before = CpuSeconds(RUSAGE_SELF);
  Timing timing;
  timing.wall = Seconds([&] {
    auto store = builder::ContentStore::Open(store_path);
    if (!store) Die(store.error().ToString());
    builder::LayerOptions options;
    options.threads = threads;
    options.compression = compression;
    auto layer = builder::WriteLayer(ListTree(tree), *store, options);
    if (!layer) Die(layer.error().ToString());
    *output_bytes = layer->blob.size;
  });
  timing.cpu = CpuSeconds(RUSAGE_SELF) - cpu_before;
  fs::remove_all(store_path);
  return timing;
}

// The reference, exactly as a user would type it.
Timing PackWithTarGzip(const fs::path& tree) {
  std::string command = "tar -cf - -C '" + tree.parent_path().string() + "' '" +
                        tree.filename().string() + "' | gzip -6 > /dev/null";
  double cpu_before = CpuSeconds(RUSAGE_CHILDREN);
  Timing timing;
  timing.wall = Seconds([&] { Run({"/bin/sh", "-c", command}); });
  timing.cpu = CpuSeconds(RUSAGE_CHILDREN) - cpu_before;
  return timing;
}

// The size of tar | gzip -6's output, from a run that is not timed.
std::uint64_t TarGzipBytes(const fs::path& tree) {
  fs::path count = tree.parent_path() / "tar-gzip-bytes";
  Run({"/bin/sh", "-c",
       "tar -cf - -C '" + tree.parent_path().string() + "' '" + tree.filename().string() +
           "' | gzip -6 | wc -c > '" + count.string() + "'"});
  std::FILE* file = std::fopen(count.c_str(), "r");
  unsigned long long bytes = 0;
  if (file == nullptr || std::fscanf(file, "%llu", &bytes) != 1) Die("cannot read tar's size");
  std::fclose(file);
  fs::remove(count);
  return bytes;
}

// --- No-op rebuild ----------------------------------------------------------

struct RebuildFigures {
  std::vector<double> in_process;
  std::vector<double> binary;
};

RebuildFigures TimeNoopRebuilds(const fs::path& scratch) {
  fs::path app_file = fs::path(GANTRY_SOURCE_DIR) / "examples" / "hello" / "app.yaml";
  auto app = spec::Load(app_file);
  if (!app) Die("cannot load " + app_file.string());
  fs::path store_path = scratch / "store";
  auto store = builder::ContentStore::Open(store_path);
  if (!store) Die(store.error().ToString());
  auto build_all = [&] {
    builder::BuildOptions options;
    options.layer.source_date_epoch = builder::SourceDateEpoch();
    builder::ImageBuilder image_builder(*store, options);
    for (const auto& [name, image] : app->images) {
      auto built = image_builder.Build(*app, image);
      if (!built) Die(built.error().ToString());
    }
  };
  RebuildFigures figures;
  build_all();  // fills the cache
  for (int i = 0; i < kRebuilds; ++i) figures.in_process.push_back(Seconds(build_all));

  std::vector<std::string> command = {GANTRY_BINARY,       "build",  app_file.string(), "--output",
                                      store_path.string(), "--quiet"};
  Run(command);  // warms the binary's pages
  for (int i = 0; i < kRebuilds; ++i) figures.binary.push_back(Seconds([&] { Run(command); }));
  return figures;
}

// --- Report -----------------------------------------------------------------

std::string Yes(bool met) {
  return met ? "MET" : "NOT MET";
}

}  // namespace

int Bench() {
  const std::uint64_t bytes = bench::EnvNumber("GANTRY_BENCH_BYTES", std::uint64_t{1} << 30);
  const std::uint64_t files = bench::EnvNumber("GANTRY_BENCH_FILES", 10000);
  const int runs = static_cast<int>(bench::EnvNumber("GANTRY_BENCH_RUNS", 3));
  const unsigned cores = static_cast<unsigned>(core::UsableCpus());

  std::printf("build_bench: %u usable hardware threads (of %u); WriteLayer's default: %u threads\n",
              cores, std::thread::hardware_concurrency(), cores);

  // No-op rebuild first: it needs no tree.
  RebuildFigures rebuild;
  {
    TempDir scratch("gantry-bench-rebuild");
    rebuild = TimeNoopRebuilds(scratch.path());
  }

  TempDir scratch("gantry-bench-pack");
  fs::path tree = scratch.path() / "tree";
  std::printf("generating %llu bytes in %llu files under %s ...\n",
              static_cast<unsigned long long>(bytes), static_cast<unsigned long long>(files),
              tree.c_str());
  TreeStats stats;
  double generate_seconds = Seconds([&] { stats = GenerateTree(tree, bytes, files); });
  std::printf("  %.1f MiB (%.0f%% random bytes) in %.1f s\n", stats.bytes / kMiB,
              100.0 * stats.random_bytes / std::max<std::uint64_t>(1, stats.bytes),
              generate_seconds);

  PackingRow reference{"tar -cf - | gzip -6", {}, 0};
  PackingRow parallel{"WriteLayer, " + std::to_string(cores) + " threads", {}, 0};
  PackingRow single{"WriteLayer, 1 thread", {}, 0};
  PackingRow zstd{"WriteLayer zstd, " + std::to_string(cores) + " threads", {}, 0};
  // Read once, untimed, so every timed run finds the tree in the page cache.
  reference.output_bytes = TarGzipBytes(tree);
  std::printf("load average before packing: %s\n", bench::LoadAverage().c_str());
  for (int run = 0; run < runs; ++run) {
    reference.runs.push_back(PackWithTarGzip(tree));
    parallel.runs.push_back(PackWithWriteLayer(tree, scratch.path(), 0, spec::Compression::kGzip,
                                               &parallel.output_bytes));
    single.runs.push_back(PackWithWriteLayer(tree, scratch.path(), 1, spec::Compression::kGzip,
                                             &single.output_bytes));
    zstd.runs.push_back(
        PackWithWriteLayer(tree, scratch.path(), 0, spec::Compression::kZstd, &zstd.output_bytes));
    std::printf(
        "  run %d/%d (wall/cpu s): tar|gzip %.2f/%.2f, WriteLayer %.2f/%.2f, "
        "WriteLayer 1 thread %.2f/%.2f, WriteLayer zstd %.2f/%.2f\n",
        run + 1, runs, reference.runs.back().wall, reference.runs.back().cpu,
        parallel.runs.back().wall, parallel.runs.back().cpu, single.runs.back().wall,
        single.runs.back().cpu, zstd.runs.back().wall, zstd.runs.back().cpu);
  }
  std::printf("load average after packing: %s\n", bench::LoadAverage().c_str());

  const double reference_median = reference.MedianWall();
  std::printf("\nPacking %.1f MiB in %llu files (median of %d runs)\n", stats.bytes / kMiB,
              static_cast<unsigned long long>(stats.files), runs);
  std::printf("  %-28s %8s %8s %9s %8s %10s %10s %10s\n", "", "wall s", "MiB/s", "vs tar|gz",
              "CPU s", "MiB/CPU s", "output MiB", "out/in");
  for (const PackingRow* row : {&reference, &parallel, &single, &zstd}) {
    double wall = row->MedianWall();
    double cpu = row->MedianCpu();
    std::printf("  %-28s %8.2f %8.1f %8.2fx %8.2f %10.1f %10.1f %10.3f\n", row->name.c_str(), wall,
                stats.bytes / kMiB / wall, reference_median / wall, cpu, stats.bytes / kMiB / cpu,
                row->output_bytes / kMiB,
                static_cast<double>(row->output_bytes) / std::max<std::uint64_t>(1, stats.bytes));
  }

  const double in_process = bench::Median(rebuild.in_process);
  const double binary = bench::Median(rebuild.binary);
  std::printf(
      "\nNo-op rebuild of examples/hello/app.yaml (median of %d, after one that fills the "
      "cache)\n",
      kRebuilds);
  std::printf("  %-40s %10.2f ms (max %.2f ms)\n", "builder::ImageBuilder::Build, in process",
              in_process * 1000,
              *std::max_element(rebuild.in_process.begin(), rebuild.in_process.end()) * 1000);
  std::printf("  %-40s %10.2f ms (max %.2f ms)\n", "gantry build, a process each", binary * 1000,
              *std::max_element(rebuild.binary.begin(), rebuild.binary.end()) * 1000);

  const double speedup = reference_median / parallel.MedianWall();
  std::printf("\nGoals\n");
  std::printf("  no-op rebuild under %.0f ms (gantry build, start-up included): %.2f ms  %s\n",
              kNoopGoalSeconds * 1000, binary * 1000, Yes(binary < kNoopGoalSeconds).c_str());
  std::printf("  packing at least %.1fx faster than tar | gzip -6 on %u cores:  %.2fx  %s\n",
              kPackingGoalRatio, cores, speedup, Yes(speedup >= kPackingGoalRatio).c_str());
  // How many cores WriteLayer actually had: CPU time over wall time. Well
  // under the thread count means other work held the cores, and the wall
  // times say more about the machine than about the code.
  const double parallelism = parallel.MedianCpu() / parallel.MedianWall();
  std::printf("  WriteLayer ran on %.2f cores on average (CPU s / wall s) of %u\n", parallelism,
              cores);
  if (cores > 1 && parallelism < 0.75 * cores) {
    std::printf(
        "  WARNING: the machine was busy (other processes held the cores); compare the CPU "
        "columns, or run again when it is idle\n");
  }
  return 0;
}

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress shows as it happens, also in a pipe
  try {
    return Bench();
  } catch (const std::exception& error) {  // std::filesystem's, mostly: say it, clean up
    Die(error.what());
  }
}
