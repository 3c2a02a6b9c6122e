#pragma once

#include <string>

namespace bench {

/// The 1, 5 and 15 minute load averages ("0.42 0.51 0.60"), or "unknown":
/// how busy the machine was around a measurement, printed beside it.
std::string LoadAverage();

}  // namespace bench
