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
  if (progress.digest != digest_) {
    digest_ = progress.digest;
    blob_started_ = now;
  } else if (now - last_drawn_ < std::chrono::milliseconds(200) && progress.done < progress.size) {
    return;
  }
  last_drawn_ = now;
  double seconds = std::chrono::duration<double>(now - blob_started_).count();
  std::string rate =
      seconds > 0.05
          ? core::FormatSizeForPeople(static_cast<std::uint64_t>(progress.done / seconds)) + "/s"
          : "";
  std::fprintf(stderr, "\r\033[K%s  %s  %s / %s  %s", image_.c_str(),
               progress.digest.substr(7, 12).c_str(),
               core::FormatSizeForPeople(progress.done).c_str(),
               core::FormatSizeForPeople(progress.size).c_str(), rate.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

}  // namespace toolchain
