/// libFuzzer target for YAML specs: runs arbitrary bytes through the whole
/// spec::LoadText path (ReadYaml, then the decoder) as "/nonexistent/fuzz/app.yaml".
/// Besides crashes, leaks, hangs and undefined behaviour (the sanitizers),
/// it checks the invariants of tests/fuzz/spec_invariants.h: every refusal has
/// messages and no internal error, and every accepted spec's canonical JSON
/// loads back as the same app. Run by the `fuzz_yaml_reader` test
/// (tests/fuzz.cmake) from the seeds in tests/fuzz/corpus/yaml.

#include <cstddef>
#include <cstdint>
#include <string>

#include "tests/fuzz/spec_invariants.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::CheckLoad(text, spec::Format::kYaml, fuzz::kSpecFolder / "app.yaml");
  return 0;
}
