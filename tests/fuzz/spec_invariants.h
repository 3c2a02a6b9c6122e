#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "core/canonical_json.h"
#include "spec/canonical.h"
#include "spec/loader.h"

/// What every result of spec::LoadText must satisfy, whatever the input: the
/// checks the libFuzzer targets spec/yaml_reader_fuzz.cc and
/// spec/lua_reader_fuzz.cc run after each load. A broken one is a bug in the
/// loader, so it aborts, and libFuzzer saves the input as a crash. The checks:
/// 1) a refused spec has at least one diagnostic, each with a message, and none
///    is kInternal (which the CLI reports as a bug in gantry);
/// 2) an accepted spec's canonical JSON is itself a valid spec: canonical JSON
///    is YAML, so loading it as YAML must succeed with the same app digest.
/// Crashes, leaks, hangs and undefined behaviour are caught by libFuzzer and
/// the sanitizers, not here.
namespace fuzz {

// The spec's fake location. Its folder does not exist, so relative copy
// sources, oci: layouts and dotenv files are refused; everything else is reached.
inline const std::filesystem::path kSpecFolder = "/nonexistent/fuzz";

[[noreturn]] inline void Fail(const char* invariant, const std::string& details) {
  std::fprintf(stderr, "\n==== spec invariant broken: %s\n%s\n====\n", invariant, details.c_str());
  std::fflush(stderr);
  std::abort();
}

inline std::string DiagnosticsText(const spec::Diagnostics& diagnostics) {
  std::string text;
  for (const core::Error& error : diagnostics) {
    text += std::string(core::ErrorCodeName(error.code)) + ": " + error.ToString() + "\n";
  }
  return text;
}

inline void CheckDiagnostics(const spec::Diagnostics& diagnostics) {
  if (diagnostics.empty()) Fail("LoadText failed without a diagnostic", "");
  for (const core::Error& error : diagnostics) {
    if (error.message.empty()) Fail("a diagnostic has an empty message", DiagnosticsText(diagnostics));
    if (error.code == core::ErrorCode::kInternal) {
      Fail("a diagnostic is an internal error", DiagnosticsText(diagnostics));
    }
  }
}

// Loads the accepted app's canonical JSON back as YAML, next to the original.
inline void CheckCanonicalRoundTrip(const spec::App& app) {
  const std::string canonical = core::CanonicalJson(spec::ToCanonicalJson(app));
  const std::string digest = spec::ComputeDigests(app).app;
  auto reloaded = spec::LoadText(canonical, spec::Format::kYaml, kSpecFolder / "canonical.yaml");
  if (!reloaded) {
    Fail("the canonical JSON of a valid spec is not a valid spec",
         "canonical JSON:\n" + canonical + "\ndiagnostics:\n" + DiagnosticsText(reloaded.error()));
  }
  const std::string reloaded_digest = spec::ComputeDigests(*reloaded).app;
  if (reloaded_digest != digest) {
    Fail("the canonical JSON of a spec loads as a different app",
         "canonical JSON:\n" + canonical + "\n" + digest + "\nreloaded as:\n" +
             core::CanonicalJson(spec::ToCanonicalJson(*reloaded)) + "\n" + reloaded_digest);
  }
}

inline void CheckLoad(const std::string& text, spec::Format format, const std::filesystem::path& file,
                      const spec::LuaLimits& limits = {}) {
  auto app = spec::LoadText(text, format, file, limits);
  if (!app) {
    CheckDiagnostics(app.error());
    return;
  }
  CheckCanonicalRoundTrip(*app);
}

}  // namespace fuzz
