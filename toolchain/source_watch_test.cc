#include "toolchain/source_watch.h"

#include <catch2/catch.hpp>
#include <filesystem>

#include "core/atomic_file.h"
#include "tests/temp_dir.h"

namespace fs = std::filesystem;

TEST_CASE("SourceWatch sees an edit, an added and a removed file", "[source_watch]") {
  tests::TempDir dir("source-watch");
  REQUIRE(core::WriteFileAtomically(dir.path() / "app.yaml", "app: a\n").ok());
  toolchain::SourceWatch watch(dir.path(), {});
  CHECK_FALSE(watch.Changed());
  REQUIRE(core::WriteFileAtomically(dir.path() / "app.yaml", "app: b, longer\n").ok());
  CHECK(watch.Changed());
  CHECK_FALSE(watch.Changed());
  fs::create_directories(dir.path() / "www");
  REQUIRE(core::WriteFileAtomically(dir.path() / "www" / "index.html", "<p>hi</p>\n").ok());
  CHECK(watch.Changed());
  fs::remove(dir.path() / "www" / "index.html");
  CHECK(watch.Changed());
}

TEST_CASE("SourceWatch leaves out the folders gantry writes to inside the spec's folder",
          "[source_watch]") {
  tests::TempDir dir("source-watch-ignored");
  fs::create_directories(dir.path() / "store" / "blobs");
  fs::create_directories(dir.path() / "local" / "logs");
  fs::create_directories(dir.path() / ".gantry" / "state");
  // Given as the user may write them: relative, with a trailing separator.
  fs::path store = dir.path() / "sub" / ".." / "store" / "";
  toolchain::SourceWatch watch(dir.path(), {store, dir.path() / "local"});
  REQUIRE(core::WriteFileAtomically(dir.path() / "store" / "blobs" / "new", "layer").ok());
  REQUIRE(core::WriteFileAtomically(dir.path() / "local" / "logs" / "site.log", "line\n").ok());
  REQUIRE(core::WriteFileAtomically(dir.path() / ".gantry" / "state" / "a.json", "{}").ok());
  CHECK_FALSE(watch.Changed());
  // A file beside them, named like them, still counts.
  REQUIRE(core::WriteFileAtomically(dir.path() / "storefront.txt", "x").ok());
  CHECK(watch.Changed());
}
