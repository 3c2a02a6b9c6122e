#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "builder/content_store.h"
#include "builder/descriptor.h"
#include "core/result.h"

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
  std::int64_t mtime = 0;         // seconds; clamped to LayerOptions::source_date_epoch
  std::filesystem::path source;   // kFile: where the content is read from; "" is an empty file
  std::string link_target;        // kSymlink: the target; kHardlink: the path linked to
};

/// What makes a layer's bytes: fixed so that the same entries give the same
/// digest on any machine.
struct LayerOptions {
  std::int64_t source_date_epoch = 0;  // no mtime in a layer is later than this
  int gzip_level = 6;
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
/// names, mtimes clamped, no atime or ctime; gzip without a name or a
/// timestamp at a pinned level; the DiffID and the blob digest hashed while
/// the bytes are written.
core::Result<Layer> WriteLayer(std::vector<LayerEntry> entries, ContentStore& store, const LayerOptions& options);

}  // namespace builder
