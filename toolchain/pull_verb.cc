#include <unistd.h>

#include <cstdio>
#include <memory>

#include "builder/content_store.h"
#include "builder/image_index.h"
#include "builder/registry_client.h"
#include "core/gantry_home.h"
#include "core/image_reference.h"
#include "core/quantity.h"
#include "toolchain/exit_code.h"
#include "toolchain/reporter.h"
#include "toolchain/transfer_progress.h"
#include "toolchain/verbs.h"

namespace toolchain {
namespace {

struct PullOptions {
  std::string reference;
  std::string platform;
  std::string store;
  bool insecure = false;
  bool quiet = false;
};

void Pull(const PullOptions& options, int* exit_code) {
  *exit_code = kExitUserError;
  auto reference = core::ParseImageReference(options.reference);
  if (!reference) {
    ReportErrors({reference.error()});
    return;
  }
  builder::Platform platform = builder::HostPlatform();
  if (!options.platform.empty()) {
    auto parsed = builder::ParsePlatform(options.platform);
    if (!parsed) {
      ReportErrors({parsed.error()});
      return;
    }
    platform = *parsed;
  }
  std::filesystem::path store_path = core::StoreOrDefault(options.store);
  auto store = builder::ContentStore::Open(store_path);
  if (!store) {
    ReportErrors({store.error()});
    return;
  }
  builder::RegistryOptions registry_options;
  registry_options.insecure = options.insecure || builder::IsInsecureRegistry(reference->domain);
  builder::RegistryClient client(reference->domain, registry_options);
  std::string name = reference->ToString();
  auto progress = std::make_shared<TransferProgress>(isatty(STDERR_FILENO) == 1 && !options.quiet,
                                                     reference->repository);
  auto pulled =
      client.Pull(*reference, platform, *store, name,
                  [progress](const builder::TransferProgress& done) { progress->Report(done); });
  progress.reset();
  if (!pulled) {
    ReportErrors({pulled.error()});
    return;
  }
  if (!options.quiet) {
    std::fprintf(stderr, "pulled %s: %zu %s downloaded (%s), %zu already stored\n", name.c_str(),
                 pulled->blobs_downloaded, pulled->blobs_downloaded == 1 ? "blob" : "blobs",
                 core::FormatSizeForPeople(pulled->bytes_downloaded).c_str(),
                 pulled->blobs_present);
  }
  std::printf("%s %s\n", name.c_str(), pulled->manifest.digest.c_str());
  *exit_code = kExitOk;
}

}  // namespace

void AddPullVerb(CLI::App& gantry, int* exit_code) {
  auto* verb = gantry.add_subcommand(
      "pull", "Pull an image from a registry into the store, tagged by its reference");
  auto options = std::make_shared<PullOptions>();
  verb->add_option("REF", options->reference,
                   "Image reference, such as debian:bookworm or 127.0.0.1:5000/team/app:v1")
      ->required();
  verb->add_option("--platform", options->platform,
                   "OS/ARCH[/VARIANT] to take from a multi-platform image (default: this "
                   "machine's, linux/" +
                       builder::HostPlatform().architecture + ")");
  verb->add_option("--store", options->store,
                   "The store to pull into (default: $GANTRY_HOME/store)");
  verb->add_flag("--insecure", options->insecure,
                 "Speak plain HTTP to the registry (always so for loopback registries and those "
                 "in GANTRY_INSECURE_REGISTRIES)");
  verb->add_flag("-q,--quiet", options->quiet, "Print only the name and manifest digest");
  verb->callback([options, exit_code] { Pull(*options, exit_code); });
}

}  // namespace toolchain
