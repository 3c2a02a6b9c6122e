#pragma once

#include <cstddef>
#include <string>

namespace core {

/// Bytes as lower-case hex digits, two per byte: digests, ids, UUIDs.
inline std::string HexEncode(const unsigned char* bytes, std::size_t length) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string text;
  text.reserve(length * 2);
  for (std::size_t i = 0; i < length; ++i) {
    text += kHex[bytes[i] >> 4];
    text += kHex[bytes[i] & 0xf];
  }
  return text;
}

}  // namespace core
