#include "core/stop_flag.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

namespace core {

StopFlag::StopFlag() : event_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (!event_.valid()) event_errno_ = errno;
}

void StopFlag::Set() {
  set_ = true;
  // A counter that only grows (by one per Set: it cannot overflow) and is
  // never read: readable from the first Set on.
  const std::uint64_t one = 1;
  if (event_.valid()) (void)!write(event_.get(), &one, sizeof one);
}

Result<int> StopFlag::fd() const {
  if (!event_.valid()) {
    return Error{
        ErrorCode::kIo,
        std::string("cannot make an eventfd to wait for a stop: ") + std::strerror(event_errno_),
        {}};
  }
  return event_.get();
}

}  // namespace core
