#include "core/gantry_home.h"

#include <cstdlib>

namespace core {

std::filesystem::path GantryHome() {
  if (const char* home = std::getenv("GANTRY_HOME"); home != nullptr && *home != '\0') return home;
  if (const char* user_home = std::getenv("HOME"); user_home != nullptr && *user_home != '\0') {
    return std::filesystem::path(user_home) / ".gantry";
  }
  return std::filesystem::current_path() / ".gantry";
}

std::filesystem::path StoreOrDefault(const std::string& option) {
  return option.empty() ? GantryHome() / "store" : std::filesystem::path(option);
}

}  // namespace core
