#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "builder/descriptor.h"
#include "core/result.h"

namespace builder {

/// A content-addressed store of blobs that is also an OCI image layout
/// (image-spec image-layout.md): `oci-layout`, `index.json` naming each image
/// by its `org.opencontainers.image.ref.name`, and `blobs/sha256/HEX`. It is
/// the local store under $GANTRY_HOME/store that builds write and agents on
/// the same machine read, and the `--output` of `gantry build`; umoci and
/// skopeo read it as `oci:DIR:NAME`.
///
/// gantry's own bookkeeping lives beside the layout in `.gantry/` (the layer
/// cache, temporary files, the lock). Blobs are written once, atomically
/// (temp file, fsync, rename); index.json is rewritten atomically under the
/// lock, so concurrent builds sharing a store never corrupt it.
class ContentStore {
 public:
  /// Opens the layout at `root`, creating an empty one if there is none.
  static core::Result<ContentStore> Open(const std::filesystem::path& root);
  /// Opens an existing layout (a `from: oci:PATH` base) to read; creates nothing.
  static core::Result<ContentStore> OpenExisting(const std::filesystem::path& root);

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path BlobPath(const std::string& digest) const;
  bool HasBlob(const std::string& digest) const;

  /// Stores `content` as a blob (a no-op when it is already there).
  core::Result<Descriptor> PutBlob(std::string_view content, const std::string& media_type);
  /// A fresh path for a temporary file on the store's file system.
  std::filesystem::path TempPath(const std::string& purpose) const;
  /// Moves a finished temporary file in as the blob `digest` (whose content
  /// the caller hashed while writing it).
  core::Status AdoptBlob(const std::filesystem::path& temp, const std::string& digest);
  /// Copies the blob `digest` from another store, checking its digest on the
  /// way; nothing is kept if it does not match. A no-op when already here.
  core::Status ImportBlob(const ContentStore& from, const std::string& digest);
  /// A blob's content, checked against its digest.
  core::Result<std::string> ReadBlob(const std::string& digest) const;

  /// Points the name `name` at a manifest in index.json, replacing what it
  /// pointed at before.
  core::Status Tag(const std::string& name, Descriptor manifest);
  /// The manifest a name points at, if any.
  core::Result<std::optional<Descriptor>> Find(const std::string& name) const;
  /// Every manifest in index.json, with its annotations.
  core::Result<std::vector<Descriptor>> List() const;

  /// gantry's folder beside the layout: `.gantry/`.
  std::filesystem::path PrivateDir() const { return root_ / ".gantry"; }

 private:
  explicit ContentStore(std::filesystem::path root) : root_(std::move(root)) {}
  core::Result<nlohmann::json> ReadIndex() const;

  std::filesystem::path root_;
};

}  // namespace builder
