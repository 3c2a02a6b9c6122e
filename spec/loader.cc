#include "spec/loader.h"

#include <fstream>
#include <sstream>

#include "spec/lua_reader.h"
#include "spec/yaml_reader.h"

namespace spec {

core::Result<Format> FormatOf(const std::filesystem::path& file) {
  std::string extension = file.extension().string();
  if (extension == ".lua") return Format::kLua;
  if (extension == ".yaml" || extension == ".yml") return Format::kYaml;
  return core::Error{core::ErrorCode::kInvalidArgument,
                     "cannot tell the spec's format from its name; name it .yaml, .yml or .lua",
                     core::Location{file.string(), 0, 0}};
}

core::Result<App, Diagnostics> LoadText(const std::string& text, Format format,
                                        const std::filesystem::path& file,
                                        const LuaLimits& limits) {
  auto root =
      format == Format::kLua ? ReadLua(text, file.string(), limits) : ReadYaml(text, file.string());
  if (!root) return Diagnostics{root.error()};
  return Decode(*root, file);
}

core::Result<App, Diagnostics> Load(const std::filesystem::path& file, const LuaLimits& limits) {
  auto format = FormatOf(file);
  if (!format) return Diagnostics{format.error()};
  std::ifstream stream(file, std::ios::binary);
  if (!stream) {
    std::error_code error;
    bool exists = std::filesystem::exists(file, error);
    return Diagnostics{core::Error{exists ? core::ErrorCode::kIo : core::ErrorCode::kNotFound,
                                   exists ? "cannot read the spec" : "no such file",
                                   core::Location{file.string(), 0, 0}}};
  }
  std::ostringstream text;
  text << stream.rdbuf();
  return LoadText(text.str(), *format, file, limits);
}

}  // namespace spec
