#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "builder/content_store.h"
#include "builder/layer_writer.h"
#include "core/result.h"

namespace builder {

/// Where a host's apt sources live, in the two formats apt reads.
inline constexpr char kDeb822SourcesPath[] = "/etc/apt/sources.list.d/debian.sources";
inline constexpr char kSourcesListPath[] = "/etc/apt/sources.list";
/// The mirror used when the host names none (or is not Debian).
inline constexpr char kDefaultDebianMirror[] = "http://deb.debian.org/debian";

/// Everything that decides what debootstrap installs for a `from:
/// {debootstrap: SUITE}` base. It is the base's identity:
/// 1) CacheKey() finds the base's layer in the layer cache, so that a
///    rebuild does not run debootstrap again;
/// 2) it starts the image's chain of step keys, so that another suite,
///    mirror or architecture rebuilds every step above it.
/// What the mirror serves on a later day is not in it: a cached base stays as
/// it was built until `gantry build --no-cache` (point the mirror at
/// snapshot.debian.org to pin it).
struct DebootstrapRecipe {
  std::string suite;                // bookworm, trixie, stable...
  std::string mirror;               // http://deb.debian.org/debian, no trailing '/'
  std::string variant = "minbase";  // debootstrap --variant
  std::string arch;                 // dpkg's name: amd64, arm64

  /// `suite` as this machine builds it: HostDebianMirror() and the
  /// architecture gantry was compiled for (that of the images it writes).
  static DebootstrapRecipe ForHost(const std::string& suite);

  /// sha256 of "gantry base: debootstrap", suite, mirror, variant and arch,
  /// one per line.
  std::string CacheKey() const;
};

/// The Debian mirror of a deb822 sources file (`URIs:` of the first enabled
/// `Types: deb` stanza whose suites include a release, not only its
/// -security or -updates pockets), or of a one-line sources.list (the first
/// `deb` line, by the same preference). Only http, https and file mirrors
/// count, as debootstrap fetches nothing else; a trailing '/' is dropped.
std::optional<std::string> MirrorFromDeb822(std::string_view text);
std::optional<std::string> MirrorFromSourcesList(std::string_view text);

/// The mirror the host's apt uses: from `deb822_path`, else from
/// `sources_list_path`, else kDefaultDebianMirror. Files that are missing or
/// unreadable count as naming nothing.
std::string HostDebianMirror(const std::filesystem::path& deb822_path = kDeb822SourcesPath,
                             const std::filesystem::path& sources_list_path = kSourcesListPath);

/// Builds a Debian root with `debootstrap --variant=VARIANT --arch=ARCH SUITE
/// ROOT MIRROR` into a scratch folder of `store` and writes the whole tree as
/// one layer with `options`. Always runs debootstrap: callers look the
/// recipe's CacheKey() up in the LayerCache first.
///
/// Before layering, what varies from run to run or leaks the host is made
/// fixed: apt's package caches, downloaded .debs and lists are removed, the
/// files under /var/log emptied, ldconfig's aux-cache removed, /etc/machine-id
/// emptied, the host's /etc/hostname and /etc/resolv.conf (which debootstrap
/// copies in) removed, and the day of the last password change in
/// /etc/shadow set to that of options.source_date_epoch (left empty at 0).
/// Device nodes in /dev are left out, as in every layer; runtimes make /dev.
///
/// debootstrap runs in a mount namespace of its own, so that the /proc and
/// /sys it mounts in the root go when it exits, also when it fails. It needs
/// root and the `debootstrap` package; without either, or when debootstrap
/// fails, the error says what to do, with the end of debootstrap's log.
core::Result<Layer> BuildDebootstrapBase(const DebootstrapRecipe& recipe, ContentStore& store,
                                         const LayerOptions& options);

}  // namespace builder
