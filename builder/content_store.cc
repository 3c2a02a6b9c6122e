#include "builder/content_store.h"

#include <array>
#include <fstream>
#include <random>

#include "core/atomic_file.h"
#include "core/sha256.h"

namespace builder {
namespace {

core::Error StoreError(core::ErrorCode code, const std::string& message,
                       const std::filesystem::path& path) {
  return core::Error{code, message, core::Location{path.string(), 0, 0}};
}

}  // namespace

core::Result<ContentStore> ContentStore::Open(const std::filesystem::path& root) {
  std::error_code error;
  std::filesystem::create_directories(root / "blobs" / "sha256", error);
  if (!error) std::filesystem::create_directories(root / ".gantry" / "tmp", error);
  if (error)
    return StoreError(core::ErrorCode::kIo, "cannot create the content store: " + error.message(),
                      root);
  ContentStore store(root);
  auto lock = core::FileLock::Acquire(store.PrivateDir() / "lock");
  if (!lock) return lock.error();
  if (!std::filesystem::exists(root / "oci-layout")) {
    auto written =
        core::WriteFileAtomically(root / "oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
    if (!written) return written.error();
  }
  if (!std::filesystem::exists(root / "index.json")) {
    nlohmann::json index = {{"schemaVersion", 2},
                            {"mediaType", kOciIndexMediaType},
                            {"manifests", nlohmann::json::array()}};
    auto written = core::WriteFileAtomically(root / "index.json", index.dump());
    if (!written) return written.error();
  }
  return store;
}

core::Result<ContentStore> ContentStore::OpenExisting(const std::filesystem::path& root) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(root / "oci-layout", error) ||
      !std::filesystem::is_regular_file(root / "index.json", error)) {
    return StoreError(core::ErrorCode::kNotFound,
                      "not an OCI image layout (no oci-layout or index.json)", root);
  }
  return ContentStore(root);
}

core::Status ContentStore::ImportBlob(const ContentStore& from, const std::string& digest) {
  if (HasBlob(digest)) return core::Ok{};
  std::filesystem::path temp = TempPath("import");
  {
    std::ifstream in(from.BlobPath(digest), std::ios::binary);
    std::ofstream out(temp, std::ios::binary);
    if (!in || !out)
      return StoreError(core::ErrorCode::kIo, "cannot copy blob " + digest, from.BlobPath(digest));
    core::Sha256 hasher;
    std::array<char, 1 << 16> buffer;
    while (in.read(buffer.data(), buffer.size()) || in.gcount() > 0) {
      hasher.Update(buffer.data(), static_cast<std::size_t>(in.gcount()));
      out.write(buffer.data(), in.gcount());
    }
    out.flush();
    if (!out || hasher.Finish() != digest) {
      std::filesystem::remove(temp);
      return StoreError(core::ErrorCode::kIo,
                        "blob does not match its digest " + digest + " (corrupted layout?)",
                        from.BlobPath(digest));
    }
  }
  return AdoptBlob(temp, digest);
}

std::filesystem::path ContentStore::BlobPath(const std::string& digest) const {
  std::string hex = digest.rfind("sha256:", 0) == 0 ? digest.substr(7) : digest;
  return root_ / "blobs" / "sha256" / hex;
}

bool ContentStore::HasBlob(const std::string& digest) const {
  std::error_code error;
  return std::filesystem::is_regular_file(BlobPath(digest), error);
}

std::filesystem::path ContentStore::TempPath(const std::string& purpose) const {
  std::random_device random;
  return PrivateDir() / "tmp" /
         (purpose + "-" + std::to_string(random()) + std::to_string(random()));
}

core::Result<Descriptor> ContentStore::PutBlob(std::string_view content,
                                               const std::string& media_type) {
  Descriptor descriptor{media_type, core::Sha256Digest(content), content.size(), {}};
  if (HasBlob(descriptor.digest)) return descriptor;
  auto written = core::WriteFileAtomically(BlobPath(descriptor.digest), content);
  if (!written) return written.error();
  return descriptor;
}

core::Status ContentStore::AdoptBlob(const std::filesystem::path& temp, const std::string& digest) {
  auto synced = core::SyncPath(temp);
  if (!synced) return synced.error();
  std::error_code error;
  std::filesystem::rename(temp, BlobPath(digest), error);
  if (error)
    return StoreError(core::ErrorCode::kIo, "cannot move blob into the store: " + error.message(),
                      temp);
  return core::SyncPath(BlobPath(digest).parent_path());
}

core::Result<std::string> ContentStore::ReadBlob(const std::string& digest) const {
  auto content = core::ReadFile(BlobPath(digest));
  if (!content) return content.error();
  if (core::Sha256Digest(*content) != digest) {
    return StoreError(core::ErrorCode::kIo,
                      "blob does not match its digest " + digest + " (corrupted store?)",
                      BlobPath(digest));
  }
  return content;
}

core::Result<nlohmann::json> ContentStore::ReadIndex() const {
  auto text = core::ReadFile(root_ / "index.json");
  if (!text) return text.error();
  nlohmann::json index = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!index.is_object() || !index.contains("manifests") || !index["manifests"].is_array()) {
    return StoreError(core::ErrorCode::kParse, "not an OCI image index", root_ / "index.json");
  }
  return index;
}

core::Status ContentStore::Tag(const std::string& name, Descriptor manifest) {
  auto lock = core::FileLock::Acquire(PrivateDir() / "lock");
  if (!lock) return lock.error();
  auto index = ReadIndex();
  if (!index) return index.error();
  nlohmann::json manifests = nlohmann::json::array();
  for (const nlohmann::json& entry : (*index)["manifests"]) {
    bool same_name =
        entry.contains("annotations") && entry["annotations"].value(kRefNameAnnotation, "") == name;
    if (!same_name) manifests.push_back(entry);
  }
  manifest.annotations[kRefNameAnnotation] = name;
  manifests.push_back(manifest.ToJson());
  (*index)["manifests"] = manifests;
  return core::WriteFileAtomically(root_ / "index.json", index->dump());
}

core::Result<std::optional<Descriptor>> ContentStore::Find(const std::string& name) const {
  auto manifests = List();
  if (!manifests) return manifests.error();
  for (const Descriptor& manifest : *manifests) {
    auto found = manifest.annotations.find(kRefNameAnnotation);
    if (found != manifest.annotations.end() && found->second == name)
      return std::optional<Descriptor>(manifest);
  }
  return std::optional<Descriptor>();
}

core::Result<std::vector<Descriptor>> ContentStore::List() const {
  auto index = ReadIndex();
  if (!index) return index.error();
  std::vector<Descriptor> manifests;
  for (const nlohmann::json& entry : (*index)["manifests"]) {
    auto descriptor = Descriptor::FromJson(entry);
    if (!descriptor) return descriptor.error();
    manifests.push_back(*descriptor);
  }
  return manifests;
}

}  // namespace builder
