#include "toolchain/stop_signals.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>

namespace toolchain {
namespace {

constexpr int kStopSignals[] = {SIGINT, SIGTERM, SIGHUP};

int signal_pipe[2] = {-1, -1};
volatile sig_atomic_t signals_taken = 0;

void SetHandler(void (*handler)(int)) {
  struct sigaction action {};
  action.sa_handler = handler;
  action.sa_flags = SA_RESTART;
  sigemptyset(&action.sa_mask);
  for (int signal : kStopSignals) sigaction(signal, &action, nullptr);
}

void OnStopSignal(int signal) {
  if (signals_taken != 0) {  // the second one: stop now, as if there were no handler
    SetHandler(SIG_DFL);
    raise(signal);
    return;
  }
  signals_taken = 1;
  const int saved = errno;
  unsigned char number = static_cast<unsigned char>(signal);
  (void)!write(signal_pipe[1], &number, 1);
  errno = saved;
}

// The next signal's number, waiting up to `timeout_ms` (-1: for ever).
std::optional<int> ReadSignal(int timeout_ms) {
  pollfd ready{signal_pipe[0], POLLIN, 0};
  int polled;
  while ((polled = poll(&ready, 1, timeout_ms)) < 0 && errno == EINTR) {
  }
  unsigned char number = 0;
  if (polled <= 0 || read(signal_pipe[0], &number, 1) != 1) return std::nullopt;
  return number;
}

}  // namespace

StopSignals::StopSignals() {
  if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) == 0) SetHandler(OnStopSignal);
}

StopSignals::~StopSignals() {
  SetHandler(SIG_DFL);
  close(signal_pipe[0]);
  close(signal_pipe[1]);
  signal_pipe[0] = signal_pipe[1] = -1;
  signals_taken = 0;
}

int StopSignals::Wait() const {
  std::optional<int> signal;
  while (!(signal = ReadSignal(-1)) && signal_pipe[0] >= 0) {
  }
  return signal.value_or(SIGTERM);
}

std::optional<int> StopSignals::WaitFor(std::chrono::milliseconds timeout) const {
  return ReadSignal(static_cast<int>(timeout.count()));
}

void StopSignals::Notify() const {
  unsigned char number = SIGTERM;
  (void)!write(signal_pipe[1], &number, 1);
}

}  // namespace toolchain
