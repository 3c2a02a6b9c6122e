#pragma once

#include <cctype>
#include <string_view>

namespace core {

/// `text` without the white space around it (files read for one value,
/// header values, command output).
inline std::string_view TrimSpaces(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
    text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
    text.remove_suffix(1);
  return text;
}

}  // namespace core
