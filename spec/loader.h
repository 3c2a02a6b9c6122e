#pragma once

#include <filesystem>
#include <string>

#include "core/result.h"
#include "spec/app.h"
#include "spec/decoder.h"
#include "spec/lua_reader.h"

namespace spec {

enum class Format { kYaml, kLua };

/// The spec's format from its file name: .lua is Lua, .yaml and .yml are YAML.
core::Result<Format> FormatOf(const std::filesystem::path& file);

/// Reads, runs (Lua) and validates a spec file into the typed App. The entry
/// point of the spec layer: every command that takes a spec calls it.
core::Result<App, Diagnostics> Load(const std::filesystem::path& file,
                                    const LuaLimits& limits = {});

/// The same for a spec already in memory; `file` names it in locations and
/// anchors its relative paths.
core::Result<App, Diagnostics> LoadText(const std::string& text, Format format,
                                        const std::filesystem::path& file,
                                        const LuaLimits& limits = {});

}  // namespace spec
