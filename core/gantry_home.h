#pragma once

#include <filesystem>

namespace core {

/// Where gantry keeps its files on this machine: $GANTRY_HOME, else
/// ~/.gantry. The local content store is GantryHome()/store.
std::filesystem::path GantryHome();

}  // namespace core
