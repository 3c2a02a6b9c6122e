#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "builder/content_store.h"
#include "builder/descriptor.h"
#include "core/result.h"
#include "spec/app.h"

namespace builder {

/// One entry of a layer: a file, folder or link as it will stand in the
/// image. Whiteouts (`.wh.NAME`, `.wh..wh..opq`) are empty files by name.
struct LayerEntry {
  enum class Type { kFile, kDirectory, kSymlink, kHardlink };

  std::string path;  // relative to the image root, '/'-separated: "usr/bin/env"
  Type type = Type::kFile;
  std::uint32_t mode = 0644;  // permission bits, 07777
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::int64_t mtime = 0;        // seconds; clamped to LayerOptions::source_date_epoch
  std::filesystem::path source;  // kFile: where the content is read from; "" is an empty file
  std::string link_target;       // kSymlink: the target; kHardlink: the path linked to
  std::map<std::string, std::string>
      xattrs;  // kFile, kDirectory: name -> value, IsLayerXattr names
};

/// Whether layers carry the extended attribute `name`, the ones meaningful
/// in an image: file capabilities (`security.capability`, what `setcap`
/// sets) and `user.*`. Never `security.selinux` or other LSM labels (the
/// building host's policy), `trusted.*` (overlayfs's own markers: a layer
/// that set them could rewrite how the agent's overlay reads it) nor
/// `system.*` (POSIX ACLs, which images do not rely on and whose numeric
/// ids are the build host's). Written as PAX `SCHILY.xattr.NAME` records;
/// UnpackLayer applies these names only.
bool IsLayerXattr(std::string_view name);

/// The tar stream of a layer is cut into pieces of this many bytes, each
/// compressed as its own gzip member (or zstd frame); the members,
/// concatenated in order, are the blob (RFC 1952 allows a gzip file of
/// several members, RFC 8878 a zstd file of several frames, and gzip, zstd,
/// zlib-based readers, libarchive and Go's readers read them all).
/// Independent members are what lets the pieces be compressed in parallel;
/// fixing their size here, and not by the number of threads, is what keeps
/// the bytes the same on every machine. Changing it changes every blob digest.
inline constexpr std::size_t kLayerMemberBytes = std::size_t{1} << 20;

/// What makes a layer's bytes: fixed so that the same entries give the same
/// digest on any machine. `threads` only decides how fast they are made.
struct LayerOptions {
  std::int64_t source_date_epoch = 0;  // no mtime in a layer is later than this
  spec::Compression compression = spec::Compression::kGzip;
  int gzip_level = 6;
  int zstd_level = 3;
  int threads = 0;  // compressing threads; 0: one per usable hardware thread; 1: the caller's only
};

/// A layer in the store: its DiffID (sha256 of the uncompressed tar, what the
/// image config lists) and the descriptor of its compressed blob.
struct Layer {
  std::string diff_id;
  Descriptor blob;
};

/// The SOURCE_DATE_EPOCH of the environment, or 0 (1970-01-01) when unset.
std::int64_t SourceDateEpoch();

/// Writes `entries` as a reproducible layer into `store`, in one pass: a PAX
/// tar with entries sorted by path, numeric owners and no user or group
/// names, mtimes clamped, no atime or ctime, xattrs as SCHILY.xattr records
/// in name order, padded to a 10240-byte record;
/// gzip at a pinned level, one member per kLayerMemberBytes of tar, each
/// with mtime 0, no name and OS byte 3 (Unix); or, with
/// spec::Compression::kZstd, one zstd frame per kLayerMemberBytes at a
/// pinned level, single-threaded each, with the content size and checksum
/// and no dictionary ID (media type ...tar+zstd); the DiffID and the blob
/// digest hashed while the bytes are written. Members are compressed by
/// `options.threads` threads, at most two per thread in memory at a time,
/// and written in order; the blob is the same whatever the thread count.
/// On failure nothing is left in the store: no blob, no temporary file.
core::Result<Layer> WriteLayer(std::vector<LayerEntry> entries, ContentStore& store,
                               const LayerOptions& options);

}  // namespace builder
