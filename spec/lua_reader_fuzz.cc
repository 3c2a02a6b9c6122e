/// libFuzzer target for Lua specs: runs arbitrary bytes through the whole
/// spec::LoadText path (the sandboxed ReadLua, then the decoder) as
/// "/nonexistent/fuzz/app.lua". The sandbox limits are small (2,000,000
/// instructions, 16 MiB) so that an endless loop or a huge table is a quick
/// kLimit error rather than a libFuzzer timeout or out-of-memory; a hang here
/// means the sandbox failed to bound the script. Besides crashes, leaks, hangs
/// and undefined behaviour (the sanitizers), it checks the invariants of
/// tests/fuzz/spec_invariants.h: every refusal has messages and no internal
/// error, and every accepted spec's canonical JSON loads back, as YAML, as the
/// same app. Run by the `fuzz_lua_reader` test (tests/fuzz.cmake) from the
/// seeds in tests/fuzz/corpus/lua.

#include <cstddef>
#include <cstdint>
#include <string>

#include "tests/fuzz/spec_invariants.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string source(reinterpret_cast<const char*>(data), size);
  spec::LuaLimits limits;
  limits.instructions = 2'000'000;
  limits.memory_bytes = 16u << 20;
  fuzz::CheckLoad(source, spec::Format::kLua, fuzz::kSpecFolder / "app.lua", limits);
  return 0;
}
