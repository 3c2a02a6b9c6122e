#include "builder/layer_writer.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "builder/content_store.h"
#include "core/sha256.h"
#include "tests/temp_dir.h"

namespace builder {
namespace {

namespace fs = std::filesystem;

using TempDir = tests::TempDir;

void WriteFile(const fs::path& path, const std::string& content) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << content;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// `size` bytes that compress the way real trees do: runs of random bytes
/// between runs of repeated text, the same for the same seed.
std::string MixedBytes(std::size_t size, std::uint64_t seed) {
  std::mt19937_64 random(seed);
  std::string bytes;
  bytes.reserve(size);
  const std::string text = "the quick brown fox jumps over the lazy dog " + std::to_string(seed);
  while (bytes.size() < size) {
    std::size_t run = 1000 + random() % 100000;
    if (random() % 2 == 0) {
      for (std::size_t i = 0; i < run; ++i) bytes += static_cast<char>(random());
    } else {
      while (run > text.size()) {
        bytes += text;
        run -= text.size();
      }
    }
  }
  bytes.resize(size);
  return bytes;
}

LayerEntry Folder(std::string path, std::int64_t mtime = 0) {
  LayerEntry entry;
  entry.path = std::move(path);
  entry.type = LayerEntry::Type::kDirectory;
  entry.mode = 0755;
  entry.mtime = mtime;
  return entry;
}

LayerEntry File(std::string path, fs::path source, std::int64_t mtime = 0) {
  LayerEntry entry;
  entry.path = std::move(path);
  entry.source = std::move(source);
  entry.mtime = mtime;
  return entry;
}

LayerEntry Symlink(std::string path, std::string target) {
  LayerEntry entry;
  entry.path = std::move(path);
  entry.type = LayerEntry::Type::kSymlink;
  entry.mode = 0777;
  entry.link_target = std::move(target);
  return entry;
}

/// A small tree of files under `dir`, each with its mtime on disk taken as
/// the entry's (as a caller that keeps mtimes would), listed in `order`.
std::vector<LayerEntry> SampleTree(const fs::path& dir, std::int64_t disk_mtime, bool reversed) {
  WriteFile(dir / "app" / "main.py", "print('hello')\n");
  WriteFile(dir / "app" / "data.bin", MixedBytes(300000, 7));
  WriteFile(dir / "etc" / "config", "key = value\n");
  std::vector<LayerEntry> entries = {Folder("app", disk_mtime), Folder("etc", disk_mtime),
                                     Symlink("app/link", "main.py")};
  entries.back().mtime = disk_mtime;
  for (const char* name : {"app/main.py", "app/data.bin", "etc/config"}) {
    fs::path source = dir / name;
    struct timespec times[2] = {{disk_mtime, 0}, {disk_mtime, 0}};
    REQUIRE(utimensat(AT_FDCWD, source.c_str(), times, 0) == 0);
    struct stat info {};
    REQUIRE(stat(source.c_str(), &info) == 0);
    entries.push_back(File(name, source, info.st_mtime));
  }
  entries.back().uid = 1000;
  entries.back().gid = 1000;
  entries.back().mode = 0600;
  if (reversed) std::reverse(entries.begin(), entries.end());
  return entries;
}

/// The gzip members of a blob: where each starts, and everything they hold
/// decompressed and concatenated.
struct Gunzipped {
  std::vector<std::size_t> member_offsets;
  std::string content;
  bool ok = false;
};

Gunzipped Gunzip(const std::string& blob) {
  Gunzipped result;
  z_stream stream{};
  if (inflateInit2(&stream, 15 + 16) != Z_OK) return result;
  std::vector<unsigned char> out(1 << 16);
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(blob.data()));
  stream.avail_in = static_cast<uInt>(blob.size());
  while (stream.avail_in > 0) {
    result.member_offsets.push_back(blob.size() - stream.avail_in);
    int status = Z_OK;
    while (status != Z_STREAM_END) {
      stream.next_out = out.data();
      stream.avail_out = static_cast<uInt>(out.size());
      status = inflate(&stream, Z_NO_FLUSH);
      if (status != Z_OK && status != Z_STREAM_END) {
        inflateEnd(&stream);
        return result;
      }
      result.content.append(reinterpret_cast<char*>(out.data()), out.size() - stream.avail_out);
    }
    inflateReset(&stream);
  }
  inflateEnd(&stream);
  result.ok = !result.member_offsets.empty();
  return result;
}

/// One entry as libarchive reads it back from a layer.
struct ReadEntry {
  std::string path;
  mode_t type = 0;
  unsigned mode = 0;
  std::int64_t uid = 0;
  std::int64_t gid = 0;
  std::int64_t mtime = 0;
  bool has_atime = false;
  bool has_ctime = false;
  std::string uname;
  std::string gname;
  std::string symlink;
  std::string content;
};

struct ArchiveReadFree {
  void operator()(struct archive* archive) const { archive_read_free(archive); }
};

std::vector<ReadEntry> ReadLayer(const fs::path& blob) {
  std::unique_ptr<struct archive, ArchiveReadFree> archive(archive_read_new());
  archive_read_support_filter_gzip(archive.get());
  archive_read_support_filter_zstd(archive.get());
  archive_read_support_format_tar(archive.get());
  REQUIRE(archive_read_open_filename(archive.get(), blob.c_str(), 1 << 16) == ARCHIVE_OK);
  std::vector<ReadEntry> entries;
  archive_entry* header = nullptr;
  int status = ARCHIVE_OK;
  while ((status = archive_read_next_header(archive.get(), &header)) == ARCHIVE_OK) {
    ReadEntry entry;
    entry.path = archive_entry_pathname(header);
    entry.type = archive_entry_filetype(header);
    entry.mode = archive_entry_perm(header);
    entry.uid = archive_entry_uid(header);
    entry.gid = archive_entry_gid(header);
    entry.mtime = archive_entry_mtime(header);
    entry.has_atime = archive_entry_atime_is_set(header);
    entry.has_ctime = archive_entry_ctime_is_set(header);
    entry.uname = archive_entry_uname(header) ? archive_entry_uname(header) : "";
    entry.gname = archive_entry_gname(header) ? archive_entry_gname(header) : "";
    entry.symlink = archive_entry_symlink(header) ? archive_entry_symlink(header) : "";
    std::vector<char> buffer(1 << 16);
    la_ssize_t count = 0;
    while ((count = archive_read_data(archive.get(), buffer.data(), buffer.size())) > 0) {
      entry.content.append(buffer.data(), static_cast<std::size_t>(count));
    }
    REQUIRE(count == 0);
    entries.push_back(std::move(entry));
  }
  REQUIRE(status == ARCHIVE_EOF);
  return entries;
}

/// Files left in a folder (the store's temporary folder, its blobs).
std::size_t CountFiles(const fs::path& dir) {
  std::size_t count = 0;
  for (const auto& item : fs::directory_iterator(dir)) count += item.is_regular_file() ? 1 : 0;
  return count;
}

LayerOptions Options(std::int64_t epoch, int threads = 0,
                     spec::Compression compression = spec::Compression::kGzip) {
  LayerOptions options;
  options.source_date_epoch = epoch;
  options.threads = threads;
  options.compression = compression;
  return options;
}

TEST_CASE("the same entries give the same layer anywhere, in any order, with any mtime on disk",
          "[layer_writer]") {
  TempDir first_dir;
  TempDir second_dir;
  auto first_store = ContentStore::Open(first_dir.path() / "store");
  auto second_store = ContentStore::Open(second_dir.path() / "store");
  REQUIRE(first_store);
  REQUIRE(second_store);
  // Both mtimes are after the epoch, so both are clamped to it.
  auto first = WriteLayer(SampleTree(first_dir.path() / "src", 1700000000, false), *first_store,
                          Options(1600000000));
  auto second = WriteLayer(SampleTree(second_dir.path() / "elsewhere", 1750000000, true),
                           *second_store, Options(1600000000));
  REQUIRE(first);
  REQUIRE(second);
  CHECK(first->diff_id == second->diff_id);
  CHECK(first->blob.digest == second->blob.digest);
  CHECK(first->blob.size == second->blob.size);
  CHECK(first->blob.media_type == kOciLayerGzipMediaType);

  SECTION("a different epoch is a different layer") {
    auto later = WriteLayer(SampleTree(first_dir.path() / "src", 1700000000, false), *first_store,
                            Options(1650000000));
    REQUIRE(later);
    CHECK(later->diff_id != first->diff_id);
  }
}

TEST_CASE("a layer blob is gzip whose content hashes to the DiffID", "[layer_writer]") {
  TempDir dir;
  auto store = ContentStore::Open(dir.path() / "store");
  REQUIRE(store);
  auto layer =
      WriteLayer(SampleTree(dir.path() / "src", 1700000000, false), *store, Options(1600000000));
  REQUIRE(layer);
  std::string blob = ReadFile(store->BlobPath(layer->blob.digest));
  CHECK(blob.size() == layer->blob.size);
  CHECK(core::Sha256Digest(blob) == layer->blob.digest);
  Gunzipped tar = Gunzip(blob);
  REQUIRE(tar.ok);
  CHECK(core::Sha256Digest(tar.content) == layer->diff_id);
  CHECK(tar.content.size() % 10240 == 0);  // padded to a whole tar record
}

TEST_CASE("a layer's tar lists entries sorted, with numeric owners and clamped mtimes",
          "[layer_writer]") {
  TempDir dir;
  auto store = ContentStore::Open(dir.path() / "store");
  REQUIRE(store);
  std::vector<LayerEntry> entries = SampleTree(dir.path() / "src", 1700000000, true);
  LayerEntry early = Folder("zz-early", 12345);  // before the epoch: kept as it is
  entries.push_back(early);
  auto layer = WriteLayer(entries, *store, Options(1600000000));
  REQUIRE(layer);
  std::vector<ReadEntry> read = ReadLayer(store->BlobPath(layer->blob.digest));
  std::vector<std::string> paths;
  for (const ReadEntry& entry : read) paths.push_back(entry.path);
  CHECK(paths == std::vector<std::string>{"app/", "app/data.bin", "app/link", "app/main.py", "etc/",
                                          "etc/config", "zz-early/"});
  for (const ReadEntry& entry : read) {
    INFO(entry.path);
    CHECK(entry.uname.empty());
    CHECK(entry.gname.empty());
    CHECK_FALSE(entry.has_atime);
    CHECK_FALSE(entry.has_ctime);
    CHECK(entry.mtime == (entry.path == "zz-early/" ? 12345 : 1600000000));
  }
  CHECK(read[1].content == MixedBytes(300000, 7));
  CHECK(read[1].mode == 0644);
  CHECK(read[2].type == AE_IFLNK);
  CHECK(read[2].symlink == "main.py");
  CHECK(read[3].content == "print('hello')\n");
  CHECK(read[0].type == AE_IFDIR);
  CHECK(read[0].mode == 0755);
  CHECK(read[5].uid == 1000);
  CHECK(read[5].gid == 1000);
  CHECK(read[5].mode == 0600);
}

TEST_CASE("a layer of more than one member's worth of tar is several gzip members, each bare",
          "[layer_writer]") {
  TempDir dir;
  auto store = ContentStore::Open(dir.path() / "store");
  REQUIRE(store);
  WriteFile(dir.path() / "big", MixedBytes(3 * kLayerMemberBytes + 12345, 1));
  auto layer = WriteLayer({File("big", dir.path() / "big")}, *store, Options(0));
  REQUIRE(layer);
  std::string blob = ReadFile(store->BlobPath(layer->blob.digest));
  Gunzipped tar = Gunzip(blob);
  REQUIRE(tar.ok);
  CHECK(core::Sha256Digest(tar.content) == layer->diff_id);
  // One member per whole kLayerMemberBytes of tar, and one for the rest.
  CHECK(tar.member_offsets.size() ==
        (tar.content.size() + kLayerMemberBytes - 1) / kLayerMemberBytes);
  CHECK(tar.member_offsets.size() == 4);
  for (std::size_t offset : tar.member_offsets) {
    INFO("member at " << offset);
    REQUIRE(offset + 10 <= blob.size());
    CHECK(static_cast<unsigned char>(blob[offset]) == 0x1f);
    CHECK(static_cast<unsigned char>(blob[offset + 1]) == 0x8b);
    CHECK(blob[offset + 2] == 8);                                   // deflate
    CHECK(blob[offset + 3] == 0);                                   // no name, comment, extra
    CHECK(blob.compare(offset + 4, 4, std::string(4, '\0')) == 0);  // mtime 0
    CHECK(blob[offset + 9] == 3);                                   // OS: Unix
  }
  // libarchive, as the agents unpack layers, reads every member.
  std::vector<ReadEntry> read = ReadLayer(store->BlobPath(layer->blob.digest));
  REQUIRE(read.size() == 1);
  CHECK(read[0].content == ReadFile(dir.path() / "big"));
}

TEST_CASE("the layer is the same whatever the number of threads", "[layer_writer]") {
  TempDir dir;
  std::vector<LayerEntry> entries;
  for (int i = 0; i < 40; ++i) {
    std::string name = "file" + std::to_string(i);
    WriteFile(dir.path() / "src" / name, MixedBytes(50000 + 37000 * i, i));
    entries.push_back(File("data/" + name, dir.path() / "src" / name));
  }
  std::optional<Layer> reference;
  for (int threads : {1, 4, 2, 3, 0}) {
    INFO(threads << " threads");
    auto store = ContentStore::Open(dir.path() / ("store" + std::to_string(threads)));
    REQUIRE(store);
    auto layer = WriteLayer(entries, *store, Options(0, threads));
    REQUIRE(layer);
    if (!reference) {
      reference = *layer;
      CHECK(layer->blob.size > 10 * kLayerMemberBytes / 4);
      continue;
    }
    CHECK(layer->diff_id == reference->diff_id);
    CHECK(layer->blob.digest == reference->blob.digest);
    CHECK(layer->blob.size == reference->blob.size);
    CHECK(ReadFile(store->BlobPath(layer->blob.digest)).size() == layer->blob.size);
  }
}

TEST_CASE("a zstd layer is one bare zstd frame per member, the same whatever the threads",
          "[layer_writer]") {
  TempDir dir;
  WriteFile(dir.path() / "big", MixedBytes(3 * kLayerMemberBytes + 12345, 7));
  std::optional<Layer> reference;
  for (int threads : {1, 2, 3, 0}) {
    INFO(threads << " threads");
    auto store = ContentStore::Open(dir.path() / ("store" + std::to_string(threads)));
    REQUIRE(store);
    auto layer = WriteLayer({File("big", dir.path() / "big")}, *store,
                            Options(0, threads, spec::Compression::kZstd));
    REQUIRE(layer);
    CHECK(layer->blob.media_type == kOciLayerZstdMediaType);
    if (reference) {
      CHECK(layer->blob.digest == reference->blob.digest);
      CHECK(layer->diff_id == reference->diff_id);
      continue;
    }
    reference = *layer;
    std::string blob = ReadFile(store->BlobPath(layer->blob.digest));
    CHECK(core::Sha256Digest(blob) == layer->blob.digest);
    // Frame by frame: each decompresses alone, with its size in its header,
    // a checksum and no dictionary; together they are the tar of the DiffID.
    std::string tar;
    std::size_t frames = 0;
    for (std::size_t offset = 0; offset < blob.size(); ++frames) {
      std::size_t frame = ZSTD_findFrameCompressedSize(blob.data() + offset, blob.size() - offset);
      REQUIRE_FALSE(ZSTD_isError(frame));
      unsigned long long content = ZSTD_getFrameContentSize(blob.data() + offset, frame);
      REQUIRE(content <= kLayerMemberBytes);
      CHECK(ZSTD_getDictID_fromFrame(blob.data() + offset, frame) == 0);
      CHECK((static_cast<unsigned char>(blob[offset + 4]) & 0x04) != 0);  // content checksum
      std::string piece(content, '\0');
      REQUIRE(ZSTD_decompress(piece.data(), piece.size(), blob.data() + offset, frame) == content);
      tar += piece;
      offset += frame;
    }
    CHECK(frames == (tar.size() + kLayerMemberBytes - 1) / kLayerMemberBytes);
    CHECK(frames == 4);
    CHECK(core::Sha256Digest(tar) == layer->diff_id);
    // libarchive, as UnpackLayer and the agents read layers, reads every frame.
    std::vector<ReadEntry> read = ReadLayer(store->BlobPath(layer->blob.digest));
    REQUIRE(read.size() == 1);
    CHECK(read[0].content == ReadFile(dir.path() / "big"));
  }
  // The same entries in gzip: the same tar, another blob.
  auto store = ContentStore::Open(dir.path() / "gzip");
  REQUIRE(store);
  auto gzip = WriteLayer({File("big", dir.path() / "big")}, *store, Options(0));
  REQUIRE(gzip);
  CHECK(gzip->diff_id == reference->diff_id);
  CHECK(gzip->blob.digest != reference->blob.digest);
}

TEST_CASE("a layer carries capabilities and user xattrs as SCHILY.xattr records only",
          "[layer_writer]") {
  TempDir dir;
  auto store = ContentStore::Open(dir.path() / "store");
  REQUIRE(store);
  WriteFile(dir.path() / "tool", "tool");
  LayerEntry tool = File("bin/tool", dir.path() / "tool");
  tool.xattrs = {{"security.capability", std::string("\x01\x00\x00\x02\x00\x04", 6)},
                 {"user.b", "2"},
                 {"user.a", "1"},
                 {"security.selinux", "label"},
                 {"trusted.overlay.opaque", "y"}};
  LayerEntry folder = Folder("srv");
  folder.xattrs = {{"user.role", "data"}};
  auto layer = WriteLayer({tool, folder}, *store, Options(0));
  REQUIRE(layer);
  Gunzipped tar = Gunzip(ReadFile(store->BlobPath(layer->blob.digest)));
  REQUIRE(tar.ok);
  CHECK(tar.content.find("SCHILY.xattr.user.a=1\n") != std::string::npos);
  CHECK(tar.content.find("SCHILY.xattr.user.role=data\n") != std::string::npos);
  CHECK(tar.content.find("SCHILY.xattr.security.capability=") != std::string::npos);
  CHECK(tar.content.find("LIBARCHIVE.xattr") == std::string::npos);
  CHECK(tar.content.find("selinux") == std::string::npos);
  CHECK(tar.content.find("trusted") == std::string::npos);
  // In name order, whatever order they were given in.
  CHECK(tar.content.find("user.a=") < tar.content.find("user.b="));
}

TEST_CASE("an empty layer is a record of zeros", "[layer_writer]") {
  TempDir dir;
  auto store = ContentStore::Open(dir.path() / "store");
  REQUIRE(store);
  auto layer = WriteLayer({}, *store, Options(0));
  REQUIRE(layer);
  CHECK(layer->diff_id == core::Sha256Digest(std::string(10240, '\0')));
  Gunzipped tar = Gunzip(ReadFile(store->BlobPath(layer->blob.digest)));
  REQUIRE(tar.ok);
  CHECK(tar.member_offsets.size() == 1);
}

TEST_CASE("a failed layer leaves nothing in the store", "[layer_writer]") {
  TempDir dir;
  auto store = ContentStore::Open(dir.path() / "store");
  REQUIRE(store);
  int threads = GENERATE(1, 4);
  INFO(threads << " threads");

  SECTION("a source file that disappears") {
    // A large file first, so members are being compressed when the error comes.
    WriteFile(dir.path() / "a-big", MixedBytes(5 * kLayerMemberBytes, 3));
    WriteFile(dir.path() / "b-gone", "soon gone");
    std::vector<LayerEntry> entries = {File("a-big", dir.path() / "a-big"),
                                       File("b-gone", dir.path() / "b-gone")};
    fs::remove(dir.path() / "b-gone");
    auto layer = WriteLayer(entries, *store, Options(0, threads));
    REQUIRE_FALSE(layer);
    CHECK(layer.error().code == core::ErrorCode::kIo);
    CHECK(layer.error().message.find("b-gone") != std::string::npos);
  }
  SECTION("a source that cannot be read, after members are on their way") {
    WriteFile(dir.path() / "a-big", MixedBytes(5 * kLayerMemberBytes, 3));
    fs::create_directories(dir.path() / "b-folder");
    auto layer = WriteLayer(
        {File("a-big", dir.path() / "a-big"), File("b-not-a-file", dir.path() / "b-folder")},
        *store, Options(0, threads));
    REQUIRE_FALSE(layer);
    CHECK(layer.error().message.find("b-folder") != std::string::npos);
  }
  SECTION("a gzip level that does not exist") {
    LayerOptions options = Options(0, threads);
    options.gzip_level = 42;
    auto layer = WriteLayer({Folder("app")}, *store, options);
    REQUIRE_FALSE(layer);
  }
  CHECK(CountFiles(store->PrivateDir() / "tmp") == 0);
  CHECK(CountFiles(store->root() / "blobs" / "sha256") == 0);
}

TEST_CASE("writing a layer already in the store keeps the blob and no temporary file",
          "[layer_writer]") {
  TempDir dir;
  auto store = ContentStore::Open(dir.path() / "store");
  REQUIRE(store);
  auto first = WriteLayer(SampleTree(dir.path() / "src", 1, false), *store, Options(10));
  auto second = WriteLayer(SampleTree(dir.path() / "src", 1, false), *store, Options(10));
  REQUIRE(first);
  REQUIRE(second);
  CHECK(first->blob.digest == second->blob.digest);
  CHECK(CountFiles(store->root() / "blobs" / "sha256") == 1);
  CHECK(CountFiles(store->PrivateDir() / "tmp") == 0);
}

}  // namespace
}  // namespace builder
