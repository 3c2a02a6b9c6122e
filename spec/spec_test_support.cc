#include "spec/spec_test_support.h"

#include <fstream>
#include <random>

namespace spec::testing {

TempDir::TempDir() {
  std::random_device random;
  path_ = std::filesystem::temp_directory_path() / ("gantry-test-" + std::to_string(random()));
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ignored;  // a scratch folder left behind is not worth failing a test for
  std::filesystem::remove_all(path_, ignored);
}

std::filesystem::path TempDir::Write(const std::string& relative,
                                     const std::string& content) const {
  std::filesystem::path file = path_ / relative;
  std::filesystem::create_directories(file.parent_path());
  std::ofstream(file, std::ios::binary) << content;
  return file;
}

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
