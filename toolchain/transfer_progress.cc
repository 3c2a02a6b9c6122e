#include "toolchain/transfer_progress.h"

#include <cstdio>

#include "core/quantity.h"

namespace toolchain {

TransferProgress::TransferProgress(bool terminal, std::string image)
    : terminal_(terminal), image_(std::move(image)) {}

TransferProgress::~TransferProgress() {
  if (drawn_) std::fprintf(stderr, "\r\033[K");
}

void TransferProgress::Report(const builder::TransferProgress& progress) {
  if (!terminal_) return;
  auto now = std::chrono::steady_clock::now();
  if (blobs_.empty()) started_ = now;
  Blob& blob = blobs_[progress.digest];
  bool finished = blob.done < blob.size && progress.done >= progress.size;
  blob = Blob{progress.done, progress.size};
  if (now - last_drawn_ < std::chrono::milliseconds(200) && !finished) return;
  last_drawn_ = now;
  std::uint64_t done = 0, size = 0;
  std::size_t complete = 0;
  for (const auto& [digest, each] : blobs_) {
    done += each.done;
    size += each.size;
    complete += each.done >= each.size ? 1 : 0;
  }
  double seconds = std::chrono::duration<double>(now - started_).count();
  std::string rate =
      seconds > 0.05 ? core::FormatSizeForPeople(static_cast<std::uint64_t>(done / seconds)) + "/s"
                     : "";
  std::fprintf(stderr, "\r\033[K%s  %zu/%zu blobs  %s / %s  %s", image_.c_str(), complete,
               blobs_.size(), core::FormatSizeForPeople(done).c_str(),
               core::FormatSizeForPeople(size).c_str(), rate.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

}  // namespace toolchain
