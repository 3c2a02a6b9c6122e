#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/result.h"
#include "spec/node.h"

namespace spec {

/// Bounds on what a Lua spec may spend, so that an endless loop or a huge
/// table is a clear error instead of a hang or an exhausted host.
struct LuaLimits {
  std::uint64_t instructions = 100'000'000;
  std::size_t memory_bytes = 64u << 20;
};

/// Runs a Lua spec in a sandbox and reads the table it returns into a Node
/// tree. The sandbox has the base library without load/dofile/require, and
/// string (without dump), table, math (without random) and utf8; no io, os,
/// debug or package. print() writes to stderr. Errors name the Lua line;
/// nodes carry the line of the key that set them (see LuaKeyIndex).
core::Result<Node> ReadLua(const std::string& source, const std::string& file,
                           const LuaLimits& limits = {});

}  // namespace spec
