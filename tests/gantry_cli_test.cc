// The `gantry` command end to end: verbs, help, exit codes, error lines.

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "tests/gantry_command.h"

using tests::RunGantry;

TEST_CASE("gantry --version and --help") {
  auto version = RunGantry({"--version"});
  CHECK(version.exit_code == 0);
  CHECK(version.out == "gantry " GANTRY_VERSION "\n");

  auto help = RunGantry({"--help"});
  CHECK(help.exit_code == 0);
  for (const char* text : {"validate", "show", "--verbose", "--log-format", "Exit codes"}) {
    INFO(text);
    CHECK(help.out.find(text) != std::string::npos);
  }
  auto verb_help = RunGantry({"show", "--help"});
  CHECK(verb_help.exit_code == 0);
  CHECK(verb_help.out.find("--json") != std::string::npos);
}

TEST_CASE("usage errors exit 2") {
  CHECK(RunGantry({}).exit_code == 2);
  CHECK(RunGantry({"frobnicate"}).exit_code == 2);
  CHECK(RunGantry({"validate"}).exit_code == 2);
  CHECK(RunGantry({"--log-format", "xml", "validate", "examples/hello/app.yaml"}).exit_code == 2);
}

TEST_CASE("every example validates") {
  int examples = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::filesystem::path(GANTRY_SOURCE_DIR) / "examples")) {
    for (const char* name : {"app.yaml", "app.lua"}) {
      if (!std::filesystem::exists(entry.path() / name)) continue;
      std::string file = "examples/" + entry.path().filename().string() + "/" + name;
      auto result = RunGantry({"validate", file});
      INFO(file << "\n" << result.err);
      CHECK(result.exit_code == 0);
      CHECK(result.out.rfind(file + ": ok (app ", 0) == 0);
      ++examples;
    }
  }
  CHECK(examples >= 2);
}

TEST_CASE("a bad spec exits 1 with one FILE:LINE:COLUMN line per error") {
  std::filesystem::path file = std::filesystem::temp_directory_path() / "gantry-cli-bad.yaml";
  {
    std::ofstream(file)
        << "app: demo\nimages:\n  base: {from: scratch}\nfunctions:\n  api:\n    image: base\n"
           "    cpu: lots\n    gpus: [H100]\n";
  }
  auto result = RunGantry({"validate", file.string()});
  CHECK(result.exit_code == 1);
  const std::string prefix = file.string();
  CHECK(result.err.find(prefix +
                        ":7:10: functions.api.cpu: must be a number, got a string \"lots\"\n") !=
        std::string::npos);
  CHECK(result.err.find(prefix +
                        ":8:5: functions.api: unknown field \"gpus\"; did you mean \"gpu\"?\n") !=
        std::string::npos);
  CHECK(result.err.find("2 errors found") != std::string::npos);

  auto json = RunGantry({"--log-format", "json", "validate", file.string()});
  CHECK(json.exit_code == 1);
  std::istringstream lines(json.err);
  std::string line;
  int errors = 0;
  while (std::getline(lines, line)) {
    nlohmann::json object = nlohmann::json::parse(line);  // every line is one JSON object
    if (object.contains("code")) {
      CHECK(object["code"] == "invalid-spec");
      CHECK(object["file"] == prefix);
      CHECK(object["line"].is_number());
      ++errors;
    }
  }
  CHECK(errors == 2);
  std::filesystem::remove(file);
}

TEST_CASE("a missing file or an unknown extension is a user error") {
  auto missing = RunGantry({"validate", "no/such/app.yaml"});
  CHECK(missing.exit_code == 1);
  CHECK(missing.err.find("no/such/app.yaml: no such file") != std::string::npos);
  auto extension = RunGantry({"show", "README.md"});
  CHECK(extension.exit_code == 1);
  CHECK(extension.err.find("name it .yaml, .yml or .lua") != std::string::npos);
}

TEST_CASE("gantry show --json prints canonical JSON with digests that match its content") {
  auto result = RunGantry({"show", "--json", "examples/fleet/app.lua"});
  INFO(result.err);
  REQUIRE(result.exit_code == 0);
  nlohmann::json document = nlohmann::json::parse(result.out);
  CHECK(result.out == document.dump() + "\n");  // sorted keys, no white space: canonical
  CHECK(document["app"]["app"] == "fleet");
  CHECK(document["app"]["functions"].size() == 9);
  const std::regex digest("sha256:[0-9a-f]{64}");
  CHECK(std::regex_match(document["digests"]["app"].get<std::string>(), digest));
  for (const auto& [name, value] : document["digests"]["functions"].items()) {
    INFO(name);
    CHECK(std::regex_match(value.get<std::string>(), digest));
  }
  auto again = RunGantry({"show", "--json", "examples/fleet/app.lua"});
  CHECK(again.out == result.out);

  auto table = RunGantry({"show", "examples/fleet/app.lua"});
  CHECK(table.exit_code == 0);
  CHECK(table.out.find("function  llama-70b-large") != std::string::npos);
  CHECK(table.out.find(document["digests"]["app"].get<std::string>()) != std::string::npos);
}
