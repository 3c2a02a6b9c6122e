#include "builder/layer_writer.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "core/sha256.h"

namespace builder {
namespace {

core::Error LayerError(const std::string& message) { return core::Error{core::ErrorCode::kIo, message, {}}; }

// Where the tar bytes go: hashed (DiffID), gzipped, hashed again (blob
// digest) and written to the temporary blob file, all in one pass.
class GzipSink {
 public:
  GzipSink(int fd, int level) : fd_(fd) {
    std::memset(&stream_, 0, sizeof stream_);
    // windowBits 15 + 16: a gzip wrapper; zlib writes mtime 0 and no name.
    ok_ = deflateInit2(&stream_, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK;
  }
  ~GzipSink() { deflateEnd(&stream_); }

  bool ok() const { return ok_; }
  std::uint64_t compressed_size() const { return compressed_size_; }

  bool Write(const void* data, std::size_t size) {
    tar_hash_.Update(data, size);
    stream_.next_in = static_cast<Bytef*>(const_cast<void*>(data));
    stream_.avail_in = static_cast<uInt>(size);
    return Deflate(Z_NO_FLUSH);
  }

  bool Finish() { return Deflate(Z_FINISH); }
  std::string diff_id() { return tar_hash_.Finish(); }
  std::string blob_digest() { return blob_hash_.Finish(); }

 private:
  bool Deflate(int flush) {
    std::array<unsigned char, 1 << 16> out;
    int status = Z_OK;
    do {
      stream_.next_out = out.data();
      stream_.avail_out = out.size();
      status = deflate(&stream_, flush);
      if (status == Z_STREAM_ERROR) return ok_ = false;
      std::size_t produced = out.size() - stream_.avail_out;
      blob_hash_.Update(out.data(), produced);
      compressed_size_ += produced;
      std::size_t written = 0;
      while (written < produced) {
        ssize_t count = ::write(fd_, out.data() + written, produced - written);
        if (count < 0 && errno == EINTR) continue;
        if (count <= 0) return ok_ = false;
        written += static_cast<std::size_t>(count);
      }
    } while (stream_.avail_out == 0 || (flush == Z_FINISH && status != Z_STREAM_END));
    return ok_;
  }

  int fd_;
  z_stream stream_;
  bool ok_ = false;
  std::uint64_t compressed_size_ = 0;
  core::Sha256 tar_hash_;
  core::Sha256 blob_hash_;
};

la_ssize_t WriteToSink(struct archive*, void* client, const void* buffer, size_t length) {
  return static_cast<GzipSink*>(client)->Write(buffer, length) ? static_cast<la_ssize_t>(length) : -1;
}

struct ArchiveFree {
  void operator()(struct archive* archive) const { archive_write_free(archive); }
};
struct EntryFree {
  void operator()(archive_entry* entry) const { archive_entry_free(entry); }
};

core::Status WriteEntry(struct archive* archive, const LayerEntry& entry, const LayerOptions& options) {
  std::unique_ptr<archive_entry, EntryFree> header(archive_entry_new());
  archive_entry_set_pathname(header.get(), entry.path.c_str());
  archive_entry_set_perm(header.get(), entry.mode & 07777);
  archive_entry_set_uid(header.get(), entry.uid);
  archive_entry_set_gid(header.get(), entry.gid);
  archive_entry_set_mtime(header.get(), std::min(entry.mtime, options.source_date_epoch), 0);
  int fd = -1;
  switch (entry.type) {
    case LayerEntry::Type::kDirectory:
      archive_entry_set_filetype(header.get(), AE_IFDIR);
      break;
    case LayerEntry::Type::kSymlink:
      archive_entry_set_filetype(header.get(), AE_IFLNK);
      archive_entry_set_symlink(header.get(), entry.link_target.c_str());
      break;
    case LayerEntry::Type::kHardlink:
      archive_entry_set_filetype(header.get(), AE_IFREG);
      archive_entry_set_hardlink(header.get(), entry.link_target.c_str());
      archive_entry_set_size(header.get(), 0);
      break;
    case LayerEntry::Type::kFile: {
      archive_entry_set_filetype(header.get(), AE_IFREG);
      std::int64_t size = 0;
      if (!entry.source.empty()) {
        fd = open(entry.source.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        struct stat info {};
        if (fd < 0 || fstat(fd, &info) != 0) {
          if (fd >= 0) close(fd);
          return LayerError("cannot read " + entry.source.string() + ": " + std::strerror(errno));
        }
        size = info.st_size;
      }
      archive_entry_set_size(header.get(), size);
      break;
    }
  }
  if (archive_write_header(archive, header.get()) != ARCHIVE_OK) {
    if (fd >= 0) close(fd);
    return LayerError("cannot write layer entry " + entry.path + ": " + archive_error_string(archive));
  }
  if (fd >= 0) {
    std::array<char, 1 << 16> buffer;
    la_int64_t remaining = archive_entry_size(header.get());
    while (remaining > 0) {
      ssize_t count = read(fd, buffer.data(), std::min<la_int64_t>(remaining, buffer.size()));
      if (count < 0 && errno == EINTR) continue;
      if (count <= 0) {
        close(fd);
        return LayerError(entry.source.string() + " changed while it was being written into a layer");
      }
      if (archive_write_data(archive, buffer.data(), static_cast<size_t>(count)) != count) {
        close(fd);
        return LayerError("cannot write layer data for " + entry.path + ": " + archive_error_string(archive));
      }
      remaining -= count;
    }
    close(fd);
  }
  return core::Ok{};
}

}  // namespace

std::int64_t SourceDateEpoch() {
  const char* text = std::getenv("SOURCE_DATE_EPOCH");
  if (text == nullptr || *text == '\0') return 0;
  char* end = nullptr;
  long long epoch = std::strtoll(text, &end, 10);
  return (*end == '\0' && epoch >= 0) ? epoch : 0;
}

core::Result<Layer> WriteLayer(std::vector<LayerEntry> entries, ContentStore& store, const LayerOptions& options) {
  std::sort(entries.begin(), entries.end(), [](const LayerEntry& a, const LayerEntry& b) { return a.path < b.path; });
  std::filesystem::path temp = store.TempPath("layer");
  int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return LayerError("cannot create " + temp.string() + ": " + std::strerror(errno));
  auto fail = [&](core::Error error) -> core::Result<Layer> {
    close(fd);
    unlink(temp.c_str());
    return error;
  };
  GzipSink sink(fd, options.gzip_level);
  if (!sink.ok()) return fail(LayerError("cannot start gzip"));
  std::unique_ptr<struct archive, ArchiveFree> archive(archive_write_new());
  archive_write_set_format_pax_restricted(archive.get());
  archive_write_add_filter_none(archive.get());
  if (archive_write_open(archive.get(), &sink, nullptr, WriteToSink, nullptr) != ARCHIVE_OK) {
    return fail(LayerError(std::string("cannot start the layer tar: ") + archive_error_string(archive.get())));
  }
  for (const LayerEntry& entry : entries) {
    auto written = WriteEntry(archive.get(), entry, options);
    if (!written) return fail(written.error());
  }
  if (archive_write_close(archive.get()) != ARCHIVE_OK || !sink.Finish()) {
    return fail(LayerError("cannot finish the layer: " + std::string(std::strerror(errno))));
  }
  close(fd);
  Layer layer;
  layer.diff_id = sink.diff_id();
  layer.blob = Descriptor{kOciLayerGzipMediaType, sink.blob_digest(), sink.compressed_size(), {}};
  if (store.HasBlob(layer.blob.digest)) {
    unlink(temp.c_str());
    return layer;
  }
  auto adopted = store.AdoptBlob(temp, layer.blob.digest);
  if (!adopted) return adopted.error();
  return layer;
}

}  // namespace builder
