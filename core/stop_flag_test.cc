#include "core/stop_flag.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "core/unique_fd.h"

namespace core {
namespace {

using namespace std::chrono_literals;

// Whether `fd` is readable within `timeout_ms` (0: now).
bool Readable(int fd, int timeout_ms) {
  pollfd item{fd, POLLIN, 0};
  return poll(&item, 1, timeout_ms) == 1 && (item.revents & POLLIN);
}

TEST_CASE("StopFlag wakes a poll on its fd when set from another thread", "[stop_flag]") {
  StopFlag stop;
  REQUIRE(stop.fd().ok());
  const int fd = *stop.fd();
  CHECK_FALSE(stop.IsSet());
  CHECK_FALSE(Readable(fd, 0));
  CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);  // not passed on to the containers' runc

  std::thread setter([&] {
    std::this_thread::sleep_for(20ms);
    stop.Set();
  });
  // Asleep until the other thread sets it (the bound only keeps a broken
  // flag from hanging the test).
  const bool woke = Readable(fd, 10000);
  setter.join();
  CHECK(woke);
  CHECK(stop.IsSet());

  SECTION("it stays set and readable, set again or not") {
    CHECK(Readable(fd, 0));
    stop.Set();
    stop.Set();
    CHECK(stop.IsSet());
    CHECK(Readable(fd, 0));
    CHECK(*stop.fd() == fd);
  }
}

TEST_CASE("StopFlag without a descriptor to spare still sets and says why it has no fd",
          "[stop_flag]") {
  rlimit saved{};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &saved) == 0);
  rlimit low = saved;
  low.rlim_cur = 64;
  REQUIRE(setrlimit(RLIMIT_NOFILE, &low) == 0);
  std::vector<UniqueFd> filler;
  while (filler.size() < 64) {
    UniqueFd fd(open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) break;
    filler.push_back(std::move(fd));
  }
  StopFlag stop;
  filler.clear();
  REQUIRE(setrlimit(RLIMIT_NOFILE, &saved) == 0);

  auto fd = stop.fd();
  REQUIRE_FALSE(fd.ok());
  CHECK(fd.error().message ==
        "cannot make an eventfd to wait for a stop: " + std::string(std::strerror(EMFILE)));
  CHECK_FALSE(stop.IsSet());
  stop.Set();
  CHECK(stop.IsSet());
}

}  // namespace
}  // namespace core
