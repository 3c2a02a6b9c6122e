#include "tests/busybox_image.h"

#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <system_error>

#include "core/atomic_file.h"
#include "core/subprocess.h"

extern char** environ;

namespace tests {
namespace {

namespace fs = std::filesystem;

constexpr char kAppYaml[] = R"(app: agenttest
images:
  box:
    from: scratch
    compression: COMPRESSION
    steps:
      - copy: {src: ./bin, dst: /bin}
      - run: /bin/busybox --install -s /bin
functions:
  echo: {image: box}
)";

core::Error IoError(const std::string& message) {
  return core::Error{core::ErrorCode::kIo, message, {}};
}

}  // namespace

bool CanRunContainers() {
  return geteuid() == 0 && fs::exists("/usr/sbin/runc") && fs::exists("/bin/busybox");
}

core::Result<std::string> BuildBusyboxImage(const fs::path& gantry_binary, const fs::path& work_dir,
                                            const fs::path& store, const std::string& compression) {
  const fs::path context = work_dir / "context";
  std::error_code error;
  fs::create_directories(context / "bin", error);
  if (!error) fs::copy_file("/bin/busybox", context / "bin/busybox", error);
  if (!error) fs::create_symlink("busybox", context / "bin/sh", error);
  if (error)
    return IoError("cannot make the busybox context in " + context.string() + ": " +
                   error.message());
  std::string app = kAppYaml;
  const std::string_view placeholder = "COMPRESSION";
  app.replace(app.find(placeholder), placeholder.size(), compression);
  std::ofstream(context / "app.yaml", std::ios::binary) << app;

  core::SubprocessOptions options;
  options.argv = {gantry_binary.string(), "build", (context / "app.yaml").string(), "--output",
                  store.string(),         "-q"};
  for (char** variable = environ; *variable != nullptr; ++variable)
    options.env.push_back(*variable);
  options.stdout_to = core::Output::Capture();
  options.stderr_to = core::Output::Capture();
  auto built = core::RunSubprocess(std::move(options));
  if (!built) return built.error();
  if (built->exit.code != 0) {
    return IoError("gantry build exited with code " + std::to_string(built->exit.code) + ": " +
                   built->stderr_text);
  }

  auto index = core::ReadFile(store / "index.json");
  if (!index) return index.error();
  nlohmann::json parsed = nlohmann::json::parse(*index, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object() && parsed["manifests"].is_array()) {
    for (const nlohmann::json& manifest : parsed["manifests"]) {
      if (!manifest.is_object() || !manifest.contains("annotations") ||
          !manifest["annotations"].is_object())
        continue;
      if (manifest["annotations"].value("org.opencontainers.image.ref.name", "") == "box")
        return manifest.value("digest", "");
    }
  }
  return core::Error{core::ErrorCode::kNotFound, "no image box in " + store.string(), {}};
}

}  // namespace tests
