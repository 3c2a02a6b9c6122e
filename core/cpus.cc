#include "core/cpus.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>

namespace core {

int UsableCpus() {
  struct CpuSetFree {
    void operator()(cpu_set_t* set) const { CPU_FREE(set); }
  };
  long configured = sysconf(_SC_NPROCESSORS_CONF);
  // The mask must be at least as large as the kernel's; grow it until it is.
  for (int size = static_cast<int>(std::max<long>(configured, CPU_SETSIZE)); size <= (1 << 20);
       size *= 2) {
    std::unique_ptr<cpu_set_t, CpuSetFree> set(CPU_ALLOC(size));
    if (set == nullptr) break;
    std::size_t bytes = CPU_ALLOC_SIZE(size);
    CPU_ZERO_S(bytes, set.get());
    if (sched_getaffinity(0, bytes, set.get()) == 0) return CPU_COUNT_S(bytes, set.get());
    if (errno != EINVAL) break;
  }
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  return online > 0 ? static_cast<int>(online) : 0;
}

}  // namespace core
