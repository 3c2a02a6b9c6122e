#include "spec/spec_test_support.h"

namespace spec::testing {

core::Result<App, Diagnostics> LoadYaml(const std::string& text, const TempDir& dir) {
  return LoadText(text, Format::kYaml, dir.path() / "app.yaml");
}

core::Result<App, Diagnostics> LoadLua(const std::string& text, const TempDir& dir,
                                       const LuaLimits& limits) {
  return LoadText(text, Format::kLua, dir.path() / "app.lua", limits);
}

std::string ErrorText(const core::Result<App, Diagnostics>& result) {
  if (result.ok()) return "";
  std::string text;
  for (const core::Error& error : result.error())
    text += (text.empty() ? "" : "\n") + error.ToString();
  return text;
}

}  // namespace spec::testing
