#include "builder/debootstrap_base.h"

#include <stdlib.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "builder/image_builder.h"
#include "builder/layer_cache.h"
#include "builder/rootfs.h"
#include "tests/skip.h"
#include "tests/temp_dir.h"

namespace builder {
namespace {

namespace fs = std::filesystem;

using tests::TempDir;

// Whether this machine can run debootstrap at all: root, with the package.
bool CanDebootstrap() {
  return geteuid() == 0 &&
         (access("/usr/sbin/debootstrap", X_OK) == 0 || access("/sbin/debootstrap", X_OK) == 0);
}

// The deb822 file of a Debian 12 container, as on this project's CI hosts.
constexpr char kDebianSources[] = R"(Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
# http://snapshot.debian.org/archive/debian-security/20250520T000000Z
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
)";

TEST_CASE("the mirror of a deb822 sources file", "[debootstrap]") {
  TempDir dir;
  SECTION("the release's stanza, not the security pocket's") {
    fs::path file = dir.Write("debian.sources", kDebianSources);
    CHECK(HostDebianMirror(file, dir.path() / "none") == "http://deb.debian.org/debian");
  }
  SECTION("also when the security stanza comes first") {
    fs::path file = dir.Write("debian.sources",
                              "Types: deb\n"
                              "URIs: http://security.debian.org/debian-security\n"
                              "Suites: trixie-security\n"
                              "Components: main\n"
                              "\n"
                              "Types: deb\n"
                              "URIs: https://mirror.example.org/debian/\n"
                              "Suites: trixie trixie-updates\n"
                              "Components: main\n");
    CHECK(HostDebianMirror(file, dir.path() / "none") == "https://mirror.example.org/debian");
  }
  SECTION("disabled, source-only and unfetchable stanzas are passed over") {
    fs::path file = dir.Write("debian.sources",
                              "Types: deb\n"
                              "URIs: http://disabled.example.org/debian\n"
                              "Suites: bookworm\n"
                              "Enabled: no\n"
                              "\n"
                              "Types: deb-src\n"
                              "URIs: http://sources.example.org/debian\n"
                              "Suites: bookworm\n"
                              "\n"
                              "types: deb deb-src\n"
                              "uris: cdrom:[Debian 12]/\n"
                              "  http://continued.example.org/debian\n"
                              "suites: bookworm\n");
    CHECK(HostDebianMirror(file, dir.path() / "none") == "http://continued.example.org/debian");
  }
  SECTION("a file that names no mirror falls through to sources.list") {
    fs::path file = dir.Write("debian.sources", "# nothing here\n");
    fs::path list = dir.Write("sources.list", "deb http://list.example.org/debian bookworm main\n");
    CHECK(HostDebianMirror(file, list) == "http://list.example.org/debian");
  }
}

TEST_CASE("the mirror of a one-line sources.list", "[debootstrap]") {
  TempDir dir;
  fs::path none = dir.path() / "no-such-file";
  SECTION("the first deb line of a release, options and comments skipped") {
    fs::path list =
        dir.Write("sources.list",
                  "# deb http://commented.example.org/debian bookworm main\n"
                  "deb-src http://sources.example.org/debian bookworm main\n"
                  "deb http://security.debian.org/debian-security bookworm-security main\n"
                  "deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
                  "http://ftp.example.org/debian/ bookworm main contrib  # the main archive\n"
                  "deb http://second.example.org/debian bookworm main\n");
    CHECK(HostDebianMirror(none, list) == "http://ftp.example.org/debian");
  }
  SECTION("only pockets: the first of them") {
    fs::path list = dir.Write(
        "sources.list", "deb http://security.debian.org/debian-security bookworm-security main\n");
    CHECK(HostDebianMirror(none, list) == "http://security.debian.org/debian-security");
  }
  SECTION("no usable line, or no file at all: deb.debian.org") {
    fs::path list = dir.Write("sources.list", "deb cdrom:[Debian 12]/ bookworm main\n");
    CHECK(HostDebianMirror(none, list) == kDefaultDebianMirror);
    CHECK(HostDebianMirror(none, none) == kDefaultDebianMirror);
  }
  SECTION("file: mirrors count") {
    CHECK(MirrorFromSourcesList("deb file:/srv/mirror/debian bookworm main") ==
          "file:/srv/mirror/debian");
  }
}

TEST_CASE("a debootstrap base's cache key is its inputs", "[debootstrap]") {
  DebootstrapRecipe recipe{"bookworm", "http://deb.debian.org/debian", "minbase", "amd64"};
  const std::string key = recipe.CacheKey();
  CHECK(key.rfind("sha256:", 0) == 0);
  CHECK(key == DebootstrapRecipe(recipe).CacheKey());
  for (auto change : {+[](DebootstrapRecipe& r) { r.suite = "trixie"; },
                      +[](DebootstrapRecipe& r) { r.mirror = "http://other.example.org/debian"; },
                      +[](DebootstrapRecipe& r) { r.variant = "buildd"; },
                      +[](DebootstrapRecipe& r) { r.arch = "arm64"; }}) {
    DebootstrapRecipe changed = recipe;
    change(changed);
    CHECK(changed.CacheKey() != key);
  }
  DebootstrapRecipe host = DebootstrapRecipe::ForHost("bookworm");
  CHECK(host.variant == "minbase");
  CHECK((host.arch == "amd64" || host.arch == "arm64"));
  CHECK(host.mirror == HostDebianMirror());
}

TEST_CASE("a debootstrap failure says why, with the end of its log", "[debootstrap]") {
  if (!CanDebootstrap()) {
    tests::Skip("needs root and debootstrap (apt-get install debootstrap)");
    return;
  }
  TempDir dir;
  auto store = ContentStore::Open(dir.path() / "store");
  REQUIRE(store.ok());
  SECTION("an unknown suite") {
    DebootstrapRecipe recipe = DebootstrapRecipe::ForHost("nosuchsuite");
    recipe.mirror = "http://127.0.0.1:9/debian";
    auto layer = BuildDebootstrapBase(recipe, *store, LayerOptions{});
    REQUIRE_FALSE(layer.ok());
    CHECK_THAT(layer.error().message,
               Catch::Contains("debootstrap nosuchsuite") && Catch::Contains("No such script"));
  }
  SECTION("a mirror that does not answer") {
    // Port 9 (discard) on loopback: refused at once, no network needed.
    DebootstrapRecipe recipe = DebootstrapRecipe::ForHost("bookworm");
    recipe.mirror = "http://127.0.0.1:9/debian";
    auto layer = BuildDebootstrapBase(recipe, *store, LayerOptions{});
    REQUIRE_FALSE(layer.ok());
    CHECK_THAT(layer.error().message, Catch::Contains("Failed getting release file") &&
                                          Catch::Contains("debootstrap.log") &&
                                          Catch::Contains("Connection refused"));
  }
  // Nothing is left behind: no scratch root, no blob.
  CHECK(fs::is_empty(dir.path() / "store" / ".gantry" / "tmp"));
  CHECK(fs::is_empty(dir.path() / "store" / "blobs" / "sha256"));
}

// Builds a real Debian root from the host's mirror: minutes, and the network.
// Hidden from the default run by the [.slow] tag; run it with
//   build/builder/builder_test '[debootstrap][.slow]' -s
// (as root, with debootstrap installed; GANTRY_TEST_SUITE picks the suite,
// bookworm by default). It prints the figures it measured.
TEST_CASE("a debootstrap base builds, caches and rebuilds bit for bit", "[debootstrap][.slow]") {
  REQUIRE(CanDebootstrap());
  const char* suite_variable = std::getenv("GANTRY_TEST_SUITE");
  const std::string suite = suite_variable != nullptr ? suite_variable : "bookworm";
  TempDir dir;
  auto first_store = ContentStore::Open(dir.path() / "first");
  REQUIRE(first_store.ok());

  spec::App app;
  app.name = "debootstrap-test";
  app.context = dir.path();
  spec::Image image;
  image.name = "debian";
  image.base = spec::DebootstrapBase{suite};
  // The base works as an image: a run step finds apt and dpkg's database in
  // it, and no trace of the host's identity or of the download.
  image.steps.push_back(
      spec::RunStep{"test -x /usr/bin/apt-get && dpkg-query -W base-files >/dev/null && "
                    "test ! -e /etc/hostname && test ! -e /etc/resolv.conf && "
                    "test -z \"$(ls /var/lib/apt/lists)\" && test -z \"$(ls "
                    "/var/cache/apt/archives/*.deb 2>/dev/null)\" && "
                    "echo ok > /built",
                    false});
  BuildOptions options;
  options.layer.source_date_epoch = 1700000000;
  ImageBuilder builder(*first_store, options);

  auto started = std::chrono::steady_clock::now();
  auto built = builder.Build(app, image);
  REQUIRE(built.ok());
  const double first_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  DebootstrapRecipe recipe = DebootstrapRecipe::ForHost(suite);
  auto cached = LayerCache(*first_store).Lookup(recipe.CacheKey());
  REQUIRE(cached.has_value());

  // Built again: the base comes from the cache, the image is the same.
  started = std::chrono::steady_clock::now();
  auto rebuilt = builder.Build(app, image);
  REQUIRE(rebuilt.ok());
  const double cached_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  CHECK(rebuilt->manifest.digest == built->manifest.digest);

  // debootstrap run again from nothing gives the same bytes.
  auto second_store = ContentStore::Open(dir.path() / "second");
  REQUIRE(second_store.ok());
  started = std::chrono::steady_clock::now();
  auto again = BuildDebootstrapBase(recipe, *second_store, options.layer);
  REQUIRE(again.ok());
  const double second_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  CHECK(again->blob.digest == cached->blob.digest);
  CHECK(again->diff_id == cached->diff_id);

  // The layer unpacks to a Debian root.
  fs::path root = dir.path() / "root";
  fs::create_directories(root);
  REQUIRE(UnpackLayer(second_store->BlobPath(again->blob.digest), root).ok());
  CHECK(fs::exists(root / "etc" / "debian_version"));
  CHECK(fs::is_empty(root / "var" / "lib" / "apt" / "lists"));
  std::uintmax_t unpacked = 0;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (entry.is_regular_file() && !entry.is_symlink()) unpacked += entry.file_size();
  }

  std::printf(
      "debootstrap %s from %s (%s): first build %.1fs, cached rebuild %.2fs, second debootstrap "
      "%.1fs; layer %llu bytes gzip'd, %llu bytes of files; %s %s\n",
      suite.c_str(), recipe.mirror.c_str(), recipe.arch.c_str(), first_seconds, cached_seconds,
      second_seconds, static_cast<unsigned long long>(cached->blob.size),
      static_cast<unsigned long long>(unpacked), cached->blob.digest.c_str(),
      again->blob.digest == cached->blob.digest ? "(same digest twice)" : "(DIGESTS DIFFER)");
}

}  // namespace
}  // namespace builder
