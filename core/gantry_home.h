#pragma once

#include <filesystem>
#include <string>

namespace core {

/// Where gantry keeps its files on this machine: $GANTRY_HOME, else
/// ~/.gantry. The local content store is GantryHome()/store.
std::filesystem::path GantryHome();

/// The content store a command uses: its `--store` option when given, else
/// GantryHome()/store.
std::filesystem::path StoreOrDefault(const std::string& option);

}  // namespace core
