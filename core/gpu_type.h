#pragma once

#include <string>
#include <vector>

namespace core {

/// GPU types a function may ask for and an agent may offer, in the spelling
/// gantry, the rate card and the agents' inventory use (Modal's names). Kept
/// here, below both, so that spec/ validates against the same list that
/// agents/ reports without one layer including the other. "any" is not a
/// type: spec/ adds it where a request may say it.
inline const std::vector<std::string> kGpuTypes = {"T4",   "L4",   "A10G", "A100", "A100-80GB",
                                                   "L40S", "H100", "H200", "B200"};

}  // namespace core
