#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "spec/app.h"

namespace spec {

/// The resolved app as JSON: every default filled in, units normalised
/// (durations in seconds, sizes in bytes, GPUs as "TYPE:COUNT", image
/// references fully qualified). It is itself a valid spec, and the same app
/// written in YAML or Lua, in any key order, has the same canonical JSON.
nlohmann::json ToCanonicalJson(const App& app);

/// The canonical JSON of one image base or step: what a layer's cache key
/// covers of the step itself.
nlohmann::json BaseToJson(const Base& base);
nlohmann::json StepToJson(const Step& step);

/// The canonical JSON of a budget: what the plan and the state compare.
nlohmann::json BudgetToJson(const Budget& budget);

/// Content digests of an app and of each of its resources: what the builder
/// and the planner key on. A resource's digest covers its own definition,
/// not its name (the name is its identity) and not other resources it names.
struct Digests {
  std::string app;
  std::map<std::string, std::string> images;
  std::map<std::string, std::string> functions;
  std::map<std::string, std::string> secrets;
  std::map<std::string, std::string> volumes;
  std::string budget;  // "" without a budget

  nlohmann::json ToJson() const;
};

Digests ComputeDigests(const App& app);

}  // namespace spec
