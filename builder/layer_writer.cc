#include "builder/layer_writer.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>

#include "core/sha256.h"

namespace builder {
namespace {

// A tar archive is padded to a whole record of this many bytes, as GNU tar
// and libarchive do by default; the DiffID covers the padding.
constexpr std::size_t kTarRecordBytes = 10240;
// File content is read in pieces this large: few system calls per file.
constexpr std::size_t kReadBytes = std::size_t{1} << 20;
// The OS byte of every gzip member header: Unix, whatever the machine.
constexpr int kGzipOsUnix = 3;

core::Error LayerError(const std::string& message) {
  return core::Error{core::ErrorCode::kIo, message, {}};
}

// The threads to compress with: as asked, or one per hardware thread this
// process may run on (a cpuset or taskset can allow fewer than the machine has).
int CompressingThreads(int requested) {
  if (requested > 0) return requested;
  int hardware = static_cast<int>(std::thread::hardware_concurrency());
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof allowed, &allowed) == 0 && CPU_COUNT(&allowed) > 0) {
    hardware = hardware > 0 ? std::min(hardware, CPU_COUNT(&allowed)) : CPU_COUNT(&allowed);
  }
  return std::max(1, hardware);
}

// A piece of the tar stream and, once compressed, its gzip member.
struct Block {
  std::unique_ptr<unsigned char[]> tar{new unsigned char[kLayerMemberBytes]};
  std::size_t tar_size = 0;
  std::vector<unsigned char> member;
  bool done = false;  // member holds the compressed piece (guarded by the pipeline's mutex)
  bool failed = false;
};

// Compresses blocks into the members of a layer blob, each a complete gzip
// file or zstd frame of its own, from a fresh state: its bytes depend only
// on the block's bytes, the format and the level. One per compressing
// thread: a compression context is not shared.
class MemberCompressor {
 public:
  virtual ~MemberCompressor() = default;
  virtual bool ok() const = 0;
  virtual bool Compress(Block& block) = 0;
};

class GzipMemberCompressor : public MemberCompressor {
 public:
  explicit GzipMemberCompressor(int level) {
    std::memset(&stream_, 0, sizeof stream_);
    // windowBits 15 + 16: a gzip wrapper. The header is pinned below.
    ok_ = deflateInit2(&stream_, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK;
  }
  ~GzipMemberCompressor() override { deflateEnd(&stream_); }
  GzipMemberCompressor(const GzipMemberCompressor&) = delete;
  GzipMemberCompressor& operator=(const GzipMemberCompressor&) = delete;

  bool ok() const override { return ok_; }

  bool Compress(Block& block) override {
    if (deflateReset(&stream_) != Z_OK) return false;
    gz_header header;
    std::memset(&header, 0, sizeof header);  // no name, no comment, no extra, mtime 0
    header.os = kGzipOsUnix;
    if (deflateSetHeader(&stream_, &header) != Z_OK) return false;
    block.member.resize(deflateBound(&stream_, static_cast<uLong>(block.tar_size)));
    stream_.next_in = block.tar.get();
    stream_.avail_in = static_cast<uInt>(block.tar_size);
    stream_.next_out = block.member.data();
    stream_.avail_out = static_cast<uInt>(block.member.size());
    if (deflate(&stream_, Z_FINISH) != Z_STREAM_END) return false;
    block.member.resize(stream_.total_out);
    return true;
  }

 private:
  z_stream stream_;
  bool ok_ = false;
};

// zstd frames are compressed by one thread each (nbWorkers 0: zstd's own
// multithreading is reproducible too, but its jobs are not our blocks), with
// the level, checksum and content size pinned and no dictionary: the same
// block gives the same frame with the same libzstd.
class ZstdFrameCompressor : public MemberCompressor {
 public:
  explicit ZstdFrameCompressor(int level) : context_(ZSTD_createCCtx()) {
    ok_ = context_ != nullptr &&
          !ZSTD_isError(ZSTD_CCtx_setParameter(context_, ZSTD_c_compressionLevel, level)) &&
          !ZSTD_isError(ZSTD_CCtx_setParameter(context_, ZSTD_c_checksumFlag, 1)) &&
          !ZSTD_isError(ZSTD_CCtx_setParameter(context_, ZSTD_c_contentSizeFlag, 1)) &&
          !ZSTD_isError(ZSTD_CCtx_setParameter(context_, ZSTD_c_dictIDFlag, 0));
  }
  ~ZstdFrameCompressor() override { ZSTD_freeCCtx(context_); }
  ZstdFrameCompressor(const ZstdFrameCompressor&) = delete;
  ZstdFrameCompressor& operator=(const ZstdFrameCompressor&) = delete;

  bool ok() const override { return ok_; }

  bool Compress(Block& block) override {
    block.member.resize(ZSTD_compressBound(block.tar_size));
    std::size_t size = ZSTD_compress2(context_, block.member.data(), block.member.size(),
                                      block.tar.get(), block.tar_size);
    if (ZSTD_isError(size)) return false;
    block.member.resize(size);
    return true;
  }

 private:
  ZSTD_CCtx* context_;
  bool ok_ = false;
};

std::unique_ptr<MemberCompressor> MakeCompressor(const LayerOptions& options) {
  if (options.compression == spec::Compression::kZstd)
    return std::make_unique<ZstdFrameCompressor>(options.zstd_level);
  return std::make_unique<GzipMemberCompressor>(options.gzip_level);
}

// Where the tar bytes go. The calling thread hashes them (DiffID) and cuts
// them into blocks; worker threads compress the blocks; the calling thread
// writes the members in order to the temporary blob file, hashing them
// (blob digest) on the way. At most two blocks per thread are in flight, so
// memory stays bounded whatever the layer's size.
class CompressingSink {
 public:
  CompressingSink(int fd, const LayerOptions& options, int threads)
      : fd_(fd), threads_(threads), max_in_flight_(static_cast<std::size_t>(2 * threads)) {
    for (int i = 0; i < threads_; ++i) {
      compressors_.push_back(MakeCompressor(options));
      if (!compressors_.back()->ok()) ok_ = false;
    }
  }
  ~CompressingSink() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      jobs_.clear();
    }
    work_ready_.notify_all();
    for (std::thread& worker : workers_) worker.join();
  }
  CompressingSink(const CompressingSink&) = delete;
  CompressingSink& operator=(const CompressingSink&) = delete;

  bool ok() const { return ok_; }
  // Refuses every later write: the layer failed, and libarchive, freed on
  // the way out, must not go on padding the entry it was writing.
  void Abandon() { Fail("the layer was abandoned"); }
  // Why the sink failed, if it did.
  const std::optional<core::Error>& error() const { return error_; }
  std::uint64_t compressed_size() const { return compressed_size_; }

  bool Write(const void* data, std::size_t size) {
    if (error_) return false;
    tar_hash_.Update(data, size);
    tar_size_ += size;
    const auto* bytes = static_cast<const unsigned char*>(data);
    while (size > 0) {
      if (!current_) current_ = TakeFreeBlock();
      std::size_t take = std::min(size, kLayerMemberBytes - current_->tar_size);
      std::memcpy(current_->tar.get() + current_->tar_size, bytes, take);
      current_->tar_size += take;
      bytes += take;
      size -= take;
      if (current_->tar_size == kLayerMemberBytes && !Submit()) return false;
    }
    return true;
  }

  // Pads the tar to a whole record, compresses what is left and writes
  // every member out.
  bool Finish() {
    static const unsigned char kZeros[kTarRecordBytes] = {};
    if (tar_size_ % kTarRecordBytes != 0 &&
        !Write(kZeros, kTarRecordBytes - tar_size_ % kTarRecordBytes)) {
      return false;
    }
    if (current_ && current_->tar_size > 0 && !Submit(/*last=*/true)) return false;
    while (!in_flight_.empty()) {
      if (!WriteOldest()) return false;
    }
    return !error_;
  }

  std::string diff_id() { return tar_hash_.Finish(); }
  std::string blob_digest() { return blob_hash_.Finish(); }

 private:
  std::unique_ptr<Block> TakeFreeBlock() {
    if (free_.empty()) return std::make_unique<Block>();
    std::unique_ptr<Block> block = std::move(free_.back());
    free_.pop_back();
    return block;
  }

  // Hands the current block to the workers, first writing out the oldest
  // members while too many are in flight. The threads start with the first
  // block; with one thread, or a layer of one block, the block is
  // compressed here instead.
  bool Submit(bool last = false) {
    std::unique_ptr<Block> block = std::move(current_);
    if (workers_.empty() && threads_ > 1 && !last) StartWorkers();
    if (workers_.empty()) {
      block->done = true;
      block->failed = !compressors_[0]->Compress(*block);
      in_flight_.push_back(std::move(block));
      return WriteOldest();
    }
    while (in_flight_.size() >= max_in_flight_) {
      if (!WriteOldest()) return false;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      jobs_.push_back(block.get());
    }
    in_flight_.push_back(std::move(block));
    work_ready_.notify_one();
    // Members already compressed go out now: the file grows as the tar does.
    while (!in_flight_.empty()) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!in_flight_.front()->done) break;
      }
      if (!WriteOldest()) return false;
    }
    return true;
  }

  // Starts one worker per compressor, or as many as the system allows: fewer
  // threads are slower, never different. With none, blocks are compressed
  // on the calling thread.
  void StartWorkers() {
    for (auto& owned : compressors_) {
      try {
        workers_.emplace_back([this, compressor = owned.get()] { Work(*compressor); });
      } catch (const std::system_error&) {
        break;
      }
    }
    if (workers_.empty()) threads_ = 1;
  }

  void Work(MemberCompressor& compressor) {
    for (;;) {
      Block* block = nullptr;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        work_ready_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
        if (stopping_) return;
        block = jobs_.front();
        jobs_.pop_front();
      }
      bool compressed = compressor.Compress(*block);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        block->done = true;
        block->failed = !compressed;
      }
      block_done_.notify_one();
    }
  }

  // Waits for the oldest block in flight to be compressed, then writes and
  // hashes its member and recycles the block.
  bool WriteOldest() {
    Block& block = *in_flight_.front();
    {
      std::unique_lock<std::mutex> lock(mutex_);
      block_done_.wait(lock, [&] { return block.done; });
    }
    if (block.failed) return Fail("cannot compress the layer");
    blob_hash_.Update(block.member.data(), block.member.size());
    compressed_size_ += block.member.size();
    std::size_t written = 0;
    while (written < block.member.size()) {
      ssize_t count = ::write(fd_, block.member.data() + written, block.member.size() - written);
      if (count < 0 && errno == EINTR) continue;
      if (count <= 0) return Fail(std::string("cannot write the layer: ") + std::strerror(errno));
      written += static_cast<std::size_t>(count);
    }
    block.tar_size = 0;
    block.done = false;
    free_.push_back(std::move(in_flight_.front()));
    in_flight_.pop_front();
    return true;
  }

  bool Fail(const std::string& message) {
    if (!error_) error_ = LayerError(message);
    return false;
  }

  const int fd_;
  int threads_;  // 1 once starting threads failed
  const std::size_t max_in_flight_;
  bool ok_ = true;
  std::optional<core::Error> error_;
  core::Sha256 tar_hash_;
  core::Sha256 blob_hash_;
  std::uint64_t tar_size_ = 0;
  std::uint64_t compressed_size_ = 0;

  // The calling thread's own: the block being filled, blocks in flight in
  // tar order, and blocks to reuse.
  std::unique_ptr<Block> current_;
  std::deque<std::unique_ptr<Block>> in_flight_;
  std::vector<std::unique_ptr<Block>> free_;

  std::vector<std::unique_ptr<MemberCompressor>> compressors_;
  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable block_done_;
  std::deque<Block*> jobs_;  // submitted, not yet taken by a worker
  bool stopping_ = false;
  // Last: started after everything above exists, joined by the destructor.
  std::vector<std::thread> workers_;
};

la_ssize_t WriteToSink(struct archive*, void* client, const void* buffer, size_t length) {
  return static_cast<CompressingSink*>(client)->Write(buffer, length)
             ? static_cast<la_ssize_t>(length)
             : -1;
}

struct ArchiveFree {
  void operator()(struct archive* archive) const { archive_write_free(archive); }
};
struct EntryFree {
  void operator()(archive_entry* entry) const { archive_entry_free(entry); }
};

// Closes a file descriptor when it goes out of scope.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// What WriteEntry needs beyond the entry: the archive, the options and a
// read buffer shared by every file of the layer.
struct EntryWriter {
  struct archive* archive;
  const LayerOptions& options;
  const CompressingSink& sink;
  std::unique_ptr<char[]> buffer{new char[kReadBytes]};

  // The sink's own error when it caused libarchive's.
  core::Error ArchiveError(const std::string& what) const {
    if (sink.error()) return *sink.error();
    return LayerError(what + ": " + archive_error_string(archive));
  }
};

core::Status WriteEntry(EntryWriter& writer, const LayerEntry& entry) {
  std::unique_ptr<archive_entry, EntryFree> header(archive_entry_new());
  archive_entry_set_pathname(header.get(), entry.path.c_str());
  archive_entry_set_perm(header.get(), entry.mode & 07777);
  archive_entry_set_uid(header.get(), entry.uid);
  archive_entry_set_gid(header.get(), entry.gid);
  archive_entry_set_mtime(header.get(), std::min(entry.mtime, writer.options.source_date_epoch), 0);
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
          int error = errno;
          if (fd >= 0) close(fd);
          return LayerError("cannot read " + entry.source.string() + ": " + std::strerror(error));
        }
        size = info.st_size;
        posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
      }
      archive_entry_set_size(header.get(), size);
      break;
    }
  }
  // libarchive writes an entry's xattrs last added first: added in reverse,
  // they come in name order.
  for (auto xattr = entry.xattrs.rbegin(); xattr != entry.xattrs.rend(); ++xattr) {
    const auto& [name, value] = *xattr;
    if (IsLayerXattr(name))
      archive_entry_xattr_add_entry(header.get(), name.c_str(), value.data(), value.size());
  }
  FileDescriptor file(fd);
  if (archive_write_header(writer.archive, header.get()) != ARCHIVE_OK) {
    return writer.ArchiveError("cannot write layer entry " + entry.path);
  }
  if (file.get() < 0) return core::Ok{};
  la_int64_t remaining = archive_entry_size(header.get());
  while (remaining > 0) {
    ssize_t count =
        read(file.get(), writer.buffer.get(), std::min<la_int64_t>(remaining, kReadBytes));
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) {
      return LayerError("cannot read " + entry.source.string() + ": " + std::strerror(errno));
    }
    if (count == 0) {
      return LayerError(entry.source.string() + " changed while it was being written into a layer");
    }
    if (archive_write_data(writer.archive, writer.buffer.get(), static_cast<size_t>(count)) !=
        count) {
      return writer.ArchiveError("cannot write layer data for " + entry.path);
    }
    remaining -= count;
  }
  return core::Ok{};
}

// Removes the temporary blob file unless told it was adopted or removed.
class TempFile {
 public:
  explicit TempFile(std::filesystem::path path) : path_(std::move(path)) {}
  ~TempFile() {
    if (!released_) unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::filesystem::path& path() const { return path_; }
  void Release() { released_ = true; }

 private:
  std::filesystem::path path_;
  bool released_ = false;
};

}  // namespace

bool IsLayerXattr(std::string_view name) {
  return name == "security.capability" || (name.starts_with("user.") && name.size() > 5);
}

std::int64_t SourceDateEpoch() {
  const char* text = std::getenv("SOURCE_DATE_EPOCH");
  if (text == nullptr || *text == '\0') return 0;
  char* end = nullptr;
  long long epoch = std::strtoll(text, &end, 10);
  return (*end == '\0' && epoch >= 0) ? epoch : 0;
}

core::Result<Layer> WriteLayer(std::vector<LayerEntry> entries, ContentStore& store,
                               const LayerOptions& options) {
  std::sort(entries.begin(), entries.end(),
            [](const LayerEntry& a, const LayerEntry& b) { return a.path < b.path; });
  Layer layer;
  {
    TempFile temp(store.TempPath("layer"));
    FileDescriptor fd(open(temp.path().c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (fd.get() < 0) {
      int error = errno;
      temp.Release();  // not ours to remove
      return LayerError("cannot create " + temp.path().string() + ": " + std::strerror(error));
    }
    // Declared before the archive, so the archive is freed (and stops
    // writing to it) before the sink stops its threads.
    CompressingSink sink(fd.get(), options, CompressingThreads(options.threads));
    const bool zstd = options.compression == spec::Compression::kZstd;
    if (!sink.ok()) {
      return LayerError(std::string("cannot start ") + (zstd ? "zstd" : "gzip") + " at level " +
                        std::to_string(zstd ? options.zstd_level : options.gzip_level));
    }
    std::unique_ptr<struct archive, ArchiveFree> archive(archive_write_new());
    archive_write_set_format_pax_restricted(archive.get());
    // Extended attributes as SCHILY.xattr.NAME only (what GNU tar, Go's
    // archive/tar and umoci read), not also libarchive's own copy of them.
    if (archive_write_set_format_option(archive.get(), "pax", "xattrheader", "SCHILY") !=
        ARCHIVE_OK) {
      return LayerError(std::string("cannot set up the layer tar: ") +
                        archive_error_string(archive.get()));
    }
    archive_write_add_filter_none(archive.get());
    // No blocking in libarchive: data goes straight to the sink, which pads
    // the end to a whole record itself.
    archive_write_set_bytes_per_block(archive.get(), 0);
    if (archive_write_open(archive.get(), &sink, nullptr, WriteToSink, nullptr) != ARCHIVE_OK) {
      return LayerError(std::string("cannot start the layer tar: ") +
                        archive_error_string(archive.get()));
    }
    EntryWriter writer{archive.get(), options, sink};
    auto abandon = [&](core::Error error) {
      sink.Abandon();
      return error;
    };
    for (const LayerEntry& entry : entries) {
      auto written = WriteEntry(writer, entry);
      if (!written) return abandon(written.error());
    }
    if (archive_write_close(archive.get()) != ARCHIVE_OK) {
      return abandon(writer.ArchiveError("cannot finish the layer tar"));
    }
    if (!sink.Finish()) return *sink.error();
    layer.diff_id = sink.diff_id();
    layer.blob = Descriptor{zstd ? kOciLayerZstdMediaType : kOciLayerGzipMediaType,
                            sink.blob_digest(),
                            sink.compressed_size(),
                            {}};
    if (!store.HasBlob(layer.blob.digest)) {
      auto adopted = store.AdoptBlob(temp.path(), layer.blob.digest);
      if (!adopted) return adopted.error();
      temp.Release();
    }
  }
  return layer;
}

}  // namespace builder
