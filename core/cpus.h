#pragma once

namespace core {

/// How many CPUs this process may run on: its affinity mask (which taskset,
/// a cpuset or a container narrows), or the online count if that is unknown.
int UsableCpus();

}  // namespace core
