#include "spec/decoder.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "core/canonical_json.h"
#include "core/cron.h"
#include "core/image_reference.h"
#include "core/quantity.h"
#include "core/suggestion.h"
#include "core/wall_clock.h"

namespace spec {
namespace {

using namespace std::chrono_literals;

// DNS labels: names of apps, images, functions, secrets and volumes become
// host names (FUNCTION.APP.host), repository names and Kubernetes objects.
const std::regex kName(R"([a-z0-9]([-a-z0-9]*[a-z0-9])?)");
const std::regex kEnvName(R"([A-Za-z_][A-Za-z0-9_]*)");
const std::regex kDebianPackage(R"([a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?(=[A-Za-z0-9.+~:-]+)?)");
const std::regex kSuite(R"([a-z][a-z0-9-]*)");
const std::regex kUser(R"([A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?)");

constexpr int kMaxNameLength = 63;

// std::regex_match on bounded input only: libstdc++'s matcher recurses once
// per character, so a hostile 50,000-character string would overflow the stack.
bool Matches(const std::string& text, const std::regex& pattern) {
  constexpr std::size_t kMaxMatchedLength = 256;
  return text.size() <= kMaxMatchedLength && std::regex_match(text, pattern);
}
constexpr int kMaxContainers = 1000;
constexpr int kMaxInputs = 1000;  // concurrent inputs per container
constexpr int kMaxGpuCount = 8;
constexpr int kMaxQueued = 100'000;
// The agent reads catch_up as an int (agents/desired_state.cc) and accepts any.
constexpr int kMaxCatchUp = std::numeric_limits<int>::max();

std::string Join(const std::vector<std::string>& words, const std::string& separator) {
  std::string text;
  for (const std::string& word : words) text += (text.empty() ? "" : separator) + word;
  return text;
}

// A number as an error message shows it; JSON has no infinity, Lua has.
std::string NumberText(double number) {
  if (std::isnan(number)) return "nan";
  if (std::isinf(number)) return number > 0 ? "inf" : "-inf";
  return core::CanonicalJson(number);
}

// "text" for messages; a long value is cut, as the location says where it is.
std::string Quote(const std::string& text) {
  constexpr std::size_t kShown = 64;
  if (text.size() <= kShown) return "\"" + text + "\"";
  return "\"" + text.substr(0, kShown) + "...\" (" + std::to_string(text.size()) + " characters)";
}

std::string Child(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

std::string Index(const std::string& path, std::size_t index) {
  return path + "[" + std::to_string(index) + "]";
}

// An absolute path in one spelling, "/srv//./app/" as "/srv/app", so that
// digests and duplicate checks do not depend on how a path was written.
// ".." stops at the root, as it does when the path is resolved in an image.
std::string NormalPath(const std::string& path) {
  std::vector<std::string> parts;
  std::istringstream components(path);
  std::string part;
  while (std::getline(components, part, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.push_back(part);
  }
  return "/" + Join(parts, "/");
}

// A path inside the build context, written relative to it: "./rootfs", "app/main.py".
bool StaysInContext(const std::string& path) {
  std::filesystem::path relative(path);
  if (relative.is_absolute()) return false;
  std::filesystem::path normal = relative.lexically_normal();
  return normal.empty() || *normal.begin() != "..";
}

class Decoder {
 public:
  explicit Decoder(std::filesystem::path source) : source_(std::move(source)) {
    context_ = source_.parent_path();
    if (context_.empty()) context_ = ".";
  }

  App DecodeApp(const Node& root) {
    App app;
    app.source = source_;
    app.context = context_;
    if (!CheckMap(root, "", {"app", "images", "functions", "secrets", "volumes", "budget"}))
      return app;
    if (const Node* name = Require(root, "", "app")) {
      if (auto text = String(*name, "app")) {
        CheckName(*text, name->location, "app", "app name");
        app.name = *text;
      }
    }
    ForEachNamed(root, "images", "image name",
                 [&](const std::string& name, const Node& node, const std::string& path) {
                   app.images[name] = DecodeImage(name, node, path);
                 });
    ForEachNamed(root, "secrets", "secret name",
                 [&](const std::string& name, const Node& node, const std::string& path) {
                   app.secrets[name] = DecodeSecret(name, node, path);
                 });
    ForEachNamed(root, "volumes", "volume name",
                 [&](const std::string& name, const Node& node, const std::string& path) {
                   if (node.kind != Node::Kind::kNull) CheckMap(node, path, {});
                   app.volumes[name] = Volume{name};
                 });
    ForEachNamed(root, "functions", "function name",
                 [&](const std::string& name, const Node& node, const std::string& path) {
                   app.functions[name] = DecodeFunction(name, node, path, app);
                 });
    if (const Node* budget = Find(root, "budget")) app.budget = DecodeBudget(*budget, "budget");
    return app;
  }

  Diagnostics TakeErrors() {
    std::stable_sort(errors_.begin(), errors_.end(),
                     [](const core::Error& a, const core::Error& b) {
                       return std::tie(a.location.line, a.location.column) <
                              std::tie(b.location.line, b.location.column);
                     });
    return std::move(errors_);
  }

 private:
  // --- reporting --------------------------------------------------------------

  void FailAt(const core::Location& location, const std::string& path, const std::string& message) {
    errors_.push_back(core::Error{core::ErrorCode::kInvalidSpec,
                                  path.empty() ? message : path + ": " + message, location});
  }
  void Fail(const Node& node, const std::string& path, const std::string& message) {
    FailAt(node.location, path, message);
  }
  void WrongKind(const Node& node, const std::string& path, const std::string& expected) {
    Fail(node, path, "must be " + expected + ", got " + NodeKindName(node.kind) + Shown(node));
  }
  static std::string Shown(const Node& node) {
    switch (node.kind) {
      case Node::Kind::kString:
      case Node::Kind::kInteger:
      case Node::Kind::kNumber:
      case Node::Kind::kBool:
        return " " + Quote(ScalarText(node));
      default:
        return "";
    }
  }
  static std::string ScalarText(const Node& node) {
    if (!node.text.empty() || node.kind == Node::Kind::kString) return node.text;
    switch (node.kind) {
      case Node::Kind::kBool:
        return node.boolean ? "true" : "false";
      case Node::Kind::kInteger:
        return std::to_string(node.integer);
      case Node::Kind::kNumber:
        return NumberText(node.number);
      default:
        return "";
    }
  }

  // --- maps ---------------------------------------------------------------------

  bool IsMap(const Node& node) const { return node.kind == Node::Kind::kMap; }
  bool IsList(const Node& node) const {
    return node.kind == Node::Kind::kList || (node.kind == Node::Kind::kMap && node.empty_table);
  }

  // Reports a node that is not a map, and every key not in `fields` (with a
  // "did you mean" where one is close).
  bool CheckMap(const Node& node, const std::string& path, const std::vector<std::string>& fields) {
    if (!IsMap(node)) {
      WrongKind(node, path.empty() ? "the spec" : path, "a map");
      return false;
    }
    for (const Node::Member& member : node.members) {
      if (std::find(fields.begin(), fields.end(), member.key) != fields.end()) continue;
      std::string message = "unknown field " + Quote(member.key);
      if (auto suggestion = core::ClosestMatch(member.key, fields)) {
        message += "; did you mean " + Quote(*suggestion) + "?";
      } else if (!fields.empty()) {
        message += " (expected one of: " + Join(fields, ", ") + ")";
      } else {
        message += " (this map takes no fields)";
      }
      FailAt(member.key_location, path, message);
    }
    return true;
  }

  static const Node* Find(const Node& map, std::string_view key) {
    for (const Node::Member& member : map.members) {
      if (member.key == key) return &member.value;
    }
    return nullptr;
  }

  const Node* Require(const Node& map, const std::string& path, const std::string& key) {
    const Node* value = Find(map, key);
    if (value == nullptr)
      Fail(map, path.empty() ? "the spec" : path, "missing required field " + Quote(key));
    return value;
  }

  // Calls `read` on the field `key` of `map` when it is present.
  void Field(const Node& map, const std::string& path, const std::string& key,
             const std::function<void(const Node&, const std::string&)>& read) {
    if (const Node* value = Find(map, key)) read(*value, Child(path, key));
  }

  // For a top-level section of named resources: checks the section is a map and
  // each name is valid, then calls `decode` on each entry.
  void ForEachNamed(
      const Node& root, const std::string& section, const std::string& what,
      const std::function<void(const std::string&, const Node&, const std::string&)>& decode) {
    const Node* map = Find(root, section);
    if (map == nullptr) return;
    if (!IsMap(*map)) {
      WrongKind(*map, section, "a map of " + what + "s");
      return;
    }
    for (const Node::Member& member : map->members) {
      std::string path = Child(section, member.key);
      CheckName(member.key, member.key_location, path, what);
      decode(member.key, member.value, path);
    }
  }

  // --- scalars ------------------------------------------------------------------

  void CheckName(const std::string& name, const core::Location& location, const std::string& path,
                 const std::string& what) {
    if (name.size() > kMaxNameLength || !Matches(name, kName)) {
      FailAt(location, path,
             "invalid " + what + " " + Quote(name) +
                 ": use 1 to 63 lowercase letters, digits and '-', starting and ending with a "
                 "letter or digit");
    }
  }

  std::optional<std::string> String(const Node& node, const std::string& path) {
    if (node.kind != Node::Kind::kString) {
      WrongKind(node, path, "a string");
      return std::nullopt;
    }
    return node.text;
  }

  std::optional<std::string> NonEmptyString(const Node& node, const std::string& path) {
    auto text = String(node, path);
    if (text && text->empty()) {
      Fail(node, path, "must not be empty");
      return std::nullopt;
    }
    return text;
  }

  // A string, number or boolean, as the text of an environment variable or label.
  std::optional<std::string> ScalarString(const Node& node, const std::string& path) {
    switch (node.kind) {
      case Node::Kind::kString:
      case Node::Kind::kInteger:
      case Node::Kind::kNumber:
      case Node::Kind::kBool:
        return ScalarText(node);
      default:
        WrongKind(node, path, "a string, number or boolean");
        return std::nullopt;
    }
  }

  std::optional<std::int64_t> Integer(const Node& node, const std::string& path, std::int64_t min,
                                      std::int64_t max) {
    auto whole = WholeNumber(node);
    if (!whole) {
      WrongKind(node, path, "a whole number");
      return std::nullopt;
    }
    std::int64_t value = *whole;
    if (value < min || value > max) {
      Fail(node, path,
           "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " +
               std::to_string(value));
      return std::nullopt;
    }
    return value;
  }

  // An integer, or a float with no fraction (Lua's `/` and `^` make floats:
  // 4 * 1024^3 is a float).
  static std::optional<std::int64_t> WholeNumber(const Node& node) {
    if (node.kind == Node::Kind::kInteger) return node.integer;
    if (node.kind == Node::Kind::kNumber && std::trunc(node.number) == node.number &&
        std::fabs(node.number) < 9e15) {
      return static_cast<std::int64_t>(node.number);
    }
    return std::nullopt;
  }

  // A number greater than `above` and at most `max`.
  std::optional<double> Number(const Node& node, const std::string& path, double above,
                               double max) {
    double value = 0;
    if (node.kind == Node::Kind::kInteger) {
      value = static_cast<double>(node.integer);
    } else if (node.kind == Node::Kind::kNumber) {
      value = node.number;
    } else {
      WrongKind(node, path, "a number");
      return std::nullopt;
    }
    if (!(value > above) || !(value <= max)) {
      Fail(node, path,
           "must be greater than " + core::CanonicalJson(above) + " and at most " +
               core::CanonicalJson(max) + ", got " + NumberText(value));
      return std::nullopt;
    }
    return value;
  }

  std::optional<bool> Bool(const Node& node, const std::string& path) {
    if (node.kind != Node::Kind::kBool) {
      WrongKind(node, path, "true or false");
      return std::nullopt;
    }
    return node.boolean;
  }

  // A duration written "90s", "5m", "1h30m", or a number of seconds.
  std::optional<Duration> DurationValue(const Node& node, const std::string& path, Duration min,
                                        Duration max) {
    Duration value;
    if (node.kind == Node::Kind::kInteger || node.kind == Node::Kind::kNumber) {
      double seconds =
          node.kind == Node::Kind::kInteger ? static_cast<double>(node.integer) : node.number;
      if (!(seconds >= 0) || seconds > 1e12) {
        Fail(node, path, "must be a duration such as 30s, 5m or 1h30m");
        return std::nullopt;
      }
      value = Duration(std::llround(seconds * 1000));
    } else if (node.kind == Node::Kind::kString) {
      auto parsed = core::ParseDuration(node.text);
      if (!parsed) {
        Fail(node, path, parsed.error().message);
        return std::nullopt;
      }
      value = *parsed;
    } else {
      WrongKind(node, path, "a duration such as 30s, 5m or 1h30m");
      return std::nullopt;
    }
    if (value < min || value > max) {
      Fail(node, path,
           "must be between " + core::FormatDuration(min) + " and " + core::FormatDuration(max) +
               ", got " + core::FormatDuration(value));
      return std::nullopt;
    }
    return value;
  }

  // A size written "512Mi", "2Gi", "1G", or a number of bytes.
  std::optional<std::uint64_t> Size(const Node& node, const std::string& path, std::uint64_t min,
                                    std::uint64_t max) {
    std::uint64_t value = 0;
    if (auto whole = WholeNumber(node); whole && *whole >= 0) {
      value = static_cast<std::uint64_t>(*whole);
    } else if (node.kind == Node::Kind::kString) {
      auto parsed = core::ParseSize(node.text);
      if (!parsed) {
        Fail(node, path, parsed.error().message);
        return std::nullopt;
      }
      value = *parsed;
    } else {
      WrongKind(node, path, "a size such as 512Mi or 2Gi");
      return std::nullopt;
    }
    if (value < min || value > max) {
      std::string message = "must be between " + core::FormatSize(min) + " and " +
                            core::FormatSize(max) + " bytes, got " + core::FormatSize(value);
      if (node.kind == Node::Kind::kInteger && value < min) {
        message += " (a bare number is bytes; did you mean " + std::to_string(value) + "Mi?)";
      }
      Fail(node, path, message);
      return std::nullopt;
    }
    return value;
  }

  std::optional<std::vector<std::string>> StringList(const Node& node, const std::string& path,
                                                     bool allow_empty) {
    if (!IsList(node)) {
      WrongKind(node, path, "a list of strings");
      return std::nullopt;
    }
    if (node.items.empty() && !allow_empty) {
      Fail(node, path, "must not be empty");
      return std::nullopt;
    }
    std::vector<std::string> values;
    bool ok = true;
    for (std::size_t i = 0; i < node.items.size(); ++i) {
      auto text = String(node.items[i], Index(path, i));
      ok = ok && text.has_value();
      if (text) values.push_back(*text);
    }
    if (!ok) return std::nullopt;
    return values;
  }

  // A map of environment variables: valid names, scalar values.
  std::map<std::string, std::string> EnvMap(const Node& node, const std::string& path) {
    std::map<std::string, std::string> variables;
    if (!IsMap(node)) {
      WrongKind(node, path, "a map of environment variables");
      return variables;
    }
    for (const Node::Member& member : node.members) {
      if (!Matches(member.key, kEnvName)) {
        FailAt(member.key_location, path,
               "invalid environment variable name " + Quote(member.key) +
                   " (letters, digits and '_', not first a digit)");
      }
      if (auto value = ScalarString(member.value, Child(path, member.key)))
        variables[member.key] = *value;
    }
    return variables;
  }

  // An absolute path inside an image or container.
  std::optional<std::string> AbsolutePath(const Node& node, const std::string& path) {
    auto text = NonEmptyString(node, path);
    if (!text) return std::nullopt;
    if ((*text)[0] != '/') {
      Fail(node, path, "must be an absolute path (starting with /), got " + Quote(*text));
      return std::nullopt;
    }
    return NormalPath(*text);
  }

  // A file or folder of the build context, which must exist.
  std::optional<std::string> ContextPath(const Node& node, const std::string& path) {
    auto text = NonEmptyString(node, path);
    if (!text) return std::nullopt;
    if (!StaysInContext(*text)) {
      Fail(node, path,
           Quote(*text) + " is outside the build context " + Quote(context_.string()) +
               "; paths are relative to the spec's folder and may not leave it");
      return std::nullopt;
    }
    std::error_code error;
    if (!std::filesystem::exists(context_ / *text, error)) {
      Fail(node, path,
           Quote(*text) + " does not exist in the build context " + Quote(context_.string()));
      return std::nullopt;
    }
    return *text;
  }

  // --- images ---------------------------------------------------------------

  Image DecodeImage(const std::string& name, const Node& node, const std::string& path) {
    Image image;
    image.name = name;
    static const std::vector<std::string> kImageFields = {
        "from", "steps", "entrypoint", "cmd", "env", "workdir", "user", "labels", "compression"};
    if (!CheckMap(node, path, kImageFields)) return image;
    if (const Node* from = Require(node, path, "from"))
      image.base = DecodeBase(*from, Child(path, "from"));
    Field(node, path, "steps", [&](const Node& steps, const std::string& steps_path) {
      if (!IsList(steps)) {
        WrongKind(steps, steps_path, "a list of steps");
        return;
      }
      for (std::size_t i = 0; i < steps.items.size(); ++i) {
        if (auto step = DecodeStep(steps.items[i], Index(steps_path, i)))
          image.steps.push_back(*step);
      }
    });
    Field(node, path, "compression", [&](const Node& value, const std::string& field) {
      auto compression = String(value, field);
      if (compression && *compression == "zstd") {
        image.compression = Compression::kZstd;
      } else if (compression && *compression != "gzip") {
        Fail(value, field, "must be \"gzip\" or \"zstd\", got " + Quote(*compression));
      }
    });
    // Image-level settings are the same as steps after all the others.
    for (const char* key : {"env", "workdir", "user", "labels", "entrypoint", "cmd"}) {
      if (const Node* value = Find(node, key)) {
        if (auto step = DecodeStepBody(key, *value, Child(path, key))) image.steps.push_back(*step);
      }
    }
    return image;
  }

  Base DecodeBase(const Node& node, const std::string& path) {
    if (IsMap(node)) {
      if (!CheckMap(node, path, {"debootstrap"})) return ScratchBase{};
      const Node* suite = Require(node, path, "debootstrap");
      if (suite == nullptr) return ScratchBase{};
      auto text = String(*suite, Child(path, "debootstrap"));
      if (text && !Matches(*text, kSuite)) {
        Fail(*suite, Child(path, "debootstrap"),
             "invalid Debian suite " + Quote(*text) + " (bookworm, trixie, stable...)");
      }
      return DebootstrapBase{text.value_or("")};
    }
    auto text = NonEmptyString(node, path);
    if (!text) return ScratchBase{};
    if (*text == "scratch") return ScratchBase{};
    if (text->rfind("oci:", 0) == 0) {
      OciLayoutBase layout;
      std::string rest = text->substr(4);
      auto colon = rest.rfind(':');
      if (colon != std::string::npos && rest.find('/', colon) == std::string::npos) {
        layout.tag = rest.substr(colon + 1);
        rest.resize(colon);
      }
      layout.path = rest;
      if (layout.tag.empty())
        Fail(node, path, "empty tag in " + Quote(*text) + " (write oci:PATH or oci:PATH:TAG)");
      if (rest.empty()) {
        Fail(node, path,
             "missing layout path in " + Quote(*text) + " (write oci:PATH or oci:PATH:TAG)");
      } else {
        std::error_code error;
        std::filesystem::path layout_path = context_ / rest;  // an absolute rest replaces context_
        if (!std::filesystem::exists(layout_path / "oci-layout", error)) {
          Fail(node, path,
               "no OCI layout at " + Quote(rest) + " (the folder has no oci-layout file)");
        }
      }
      return layout;
    }
    auto reference = core::ParseImageReference(*text);
    if (!reference) {
      Fail(node, path,
           reference.error().message +
               " (write scratch, oci:PATH[:TAG], a registry reference, or {debootstrap: SUITE})");
      return ScratchBase{};
    }
    return RegistryBase{reference->ToString()};
  }

  std::optional<Step> DecodeStep(const Node& node, const std::string& path) {
    static const std::vector<std::string> kStepKinds = {
        "copy",       "run", "env",    "workdir",     "user",
        "entrypoint", "cmd", "labels", "apt_install", "pip_install"};
    if (!CheckMap(node, path, kStepKinds)) return std::nullopt;
    if (node.members.size() != 1) {
      std::vector<std::string> kinds;
      for (const Node::Member& member : node.members) kinds.push_back(member.key);
      Fail(node, path,
           node.members.empty() ? "a step needs one of: " + Join(kStepKinds, ", ")
                                : "a step has exactly one kind, found " + Join(kinds, " and ") +
                                      " (write each as its own list item)");
      return std::nullopt;
    }
    const Node::Member& member = node.members.front();
    if (std::find(kStepKinds.begin(), kStepKinds.end(), member.key) == kStepKinds.end())
      return std::nullopt;
    return DecodeStepBody(member.key, member.value, Child(path, member.key));
  }

  std::optional<Step> DecodeStepBody(const std::string& kind, const Node& node,
                                     const std::string& path) {
    std::size_t errors_before = errors_.size();
    std::optional<Step> step;
    if (kind == "copy") {
      CopyStep copy;
      if (CheckMap(node, path, {"src", "dst", "ignore"})) {
        if (const Node* src = Require(node, path, "src"))
          copy.src = ContextPath(*src, Child(path, "src")).value_or("");
        if (const Node* dst = Require(node, path, "dst"))
          copy.dst = AbsolutePath(*dst, Child(path, "dst")).value_or("");
        Field(node, path, "ignore", [&](const Node& value, const std::string& field) {
          copy.ignore = ContextPath(value, field).value_or("");
        });
      }
      step = copy;
    } else if (kind == "run") {
      RunStep run;
      if (node.kind == Node::Kind::kString) {
        run.command = NonEmptyString(node, path).value_or("");
      } else if (CheckMap(node, path, {"command", "network"})) {
        if (const Node* command = Require(node, path, "command")) {
          run.command = NonEmptyString(*command, Child(path, "command")).value_or("");
        }
        Field(node, path, "network", [&](const Node& value, const std::string& field) {
          auto mode = String(value, field);
          if (mode && *mode != "default" && *mode != "none") {
            Fail(value, field, "must be \"default\" or \"none\", got " + Quote(*mode));
          }
          run.network = mode != "none";
        });
      }
      step = run;
    } else if (kind == "env") {
      step = EnvStep{EnvMap(node, path)};
    } else if (kind == "workdir") {
      step = WorkdirStep{AbsolutePath(node, path).value_or("")};
    } else if (kind == "user") {
      auto user = NonEmptyString(node, path);
      if (user && !Matches(*user, kUser))
        Fail(node, path, "must be NAME, UID or UID:GID, got " + Quote(*user));
      step = UserStep{user.value_or("")};
    } else if (kind == "entrypoint" || kind == "cmd") {
      auto args = StringList(node, path, /*allow_empty=*/true).value_or(std::vector<std::string>{});
      step = kind == "cmd" ? Step{CmdStep{args}} : Step{EntrypointStep{args}};
    } else if (kind == "labels") {
      LabelsStep labels;
      if (!IsMap(node)) {
        WrongKind(node, path, "a map of labels");
      } else {
        for (const Node::Member& member : node.members) {
          if (auto value = ScalarString(member.value, Child(path, member.key)))
            labels.labels[member.key] = *value;
        }
      }
      step = labels;
    } else if (kind == "apt_install") {
      auto packages =
          StringList(node, path, /*allow_empty=*/false).value_or(std::vector<std::string>{});
      for (std::size_t i = 0; i < packages.size(); ++i) {
        if (!Matches(packages[i], kDebianPackage)) {
          Fail(node.items[i], Index(path, i), "invalid Debian package name " + Quote(packages[i]));
        }
      }
      step = AptInstallStep{packages};
    } else if (kind == "pip_install") {
      auto requirements =
          StringList(node, path, /*allow_empty=*/false).value_or(std::vector<std::string>{});
      for (std::size_t i = 0; i < requirements.size(); ++i) {
        const std::string& requirement = requirements[i];
        if (requirement.empty() || requirement[0] == '-' ||
            requirement.find('\n') != std::string::npos) {
          Fail(node.items[i], Index(path, i),
               "invalid requirement " + Quote(requirement) +
                   " (one requirement per item, no pip options)");
        }
      }
      step = PipInstallStep{requirements};
    }
    if (errors_.size() != errors_before) return std::nullopt;
    return step;
  }

  // --- functions ----------------------------------------------------------------

  Function DecodeFunction(const std::string& name, const Node& node, const std::string& path,
                          const App& app) {
    Function function;
    function.name = name;
    static const std::vector<std::string> kFunctionFields = {"image",
                                                             "command",
                                                             "env",
                                                             "web",
                                                             "schedule",
                                                             "gpu",
                                                             "cpu",
                                                             "memory",
                                                             "timeout",
                                                             "retries",
                                                             "min_containers",
                                                             "max_containers",
                                                             "buffer_containers",
                                                             "scaledown_window",
                                                             "max_inputs",
                                                             "target_inputs",
                                                             "secrets",
                                                             "volumes"};
    if (!CheckMap(node, path, kFunctionFields)) return function;

    if (const Node* image = Require(node, path, "image")) {
      if (auto text = String(*image, Child(path, "image"))) {
        function.image = *text;
        CheckReference(*image, Child(path, "image"), *text, "image", KeysOf(app.images));
      }
    }
    Field(node, path, "command", [&](const Node& value, const std::string& field) {
      function.command =
          StringList(value, field, /*allow_empty=*/true).value_or(std::vector<std::string>{});
    });
    Field(node, path, "env", [&](const Node& value, const std::string& field) {
      function.env = EnvMap(value, field);
    });
    Field(node, path, "web", [&](const Node& value, const std::string& field) {
      function.web = DecodeWeb(value, field);
    });
    Field(node, path, "schedule", [&](const Node& value, const std::string& field) {
      function.schedule = DecodeSchedule(value, field);
      if (function.web)
        Fail(value, field, "a schedule fires a job function; a function with web: cannot have one");
    });
    Field(node, path, "gpu", [&](const Node& value, const std::string& field) {
      function.gpu = DecodeGpu(value, field);
    });
    Field(node, path, "cpu", [&](const Node& value, const std::string& field) {
      function.cpu = Number(value, field, 0, 256).value_or(function.cpu);
    });
    Field(node, path, "memory", [&](const Node& value, const std::string& field) {
      function.memory = Size(value, field, 4ull << 20, 4ull << 40).value_or(function.memory);
    });
    Field(node, path, "timeout", [&](const Node& value, const std::string& field) {
      function.timeout = DurationValue(value, field, 1s, 24h).value_or(function.timeout);
    });
    Field(node, path, "retries", [&](const Node& value, const std::string& field) {
      function.retries = DecodeRetries(value, field);
    });
    auto count = [&](const char* key, int min, int max, int* out) {
      Field(node, path, key, [&](const Node& value, const std::string& field) {
        *out = static_cast<int>(Integer(value, field, min, max).value_or(*out));
      });
    };
    count("min_containers", 0, kMaxContainers, &function.min_containers);
    count("max_containers", 1, kMaxContainers, &function.max_containers);
    count("buffer_containers", 0, kMaxContainers, &function.buffer_containers);
    count("max_inputs", 1, kMaxInputs, &function.max_inputs);
    if (function.min_containers > function.max_containers) {
      Fail(*Find(node, "min_containers"), Child(path, "min_containers"),
           "min_containers (" + std::to_string(function.min_containers) +
               ") is more than max_containers (" + std::to_string(function.max_containers) + ")");
    }
    Field(node, path, "target_inputs", [&](const Node& value, const std::string& field) {
      auto target = Integer(value, field, 1, kMaxInputs);
      if (!target) return;
      function.target_inputs = static_cast<int>(*target);
      if (!function.web) {
        Fail(value, field,
             "only a web function has an autoscaler to aim at it; this one has no web:");
      } else if (*target > function.max_inputs) {
        Fail(value, field,
             "target_inputs (" + std::to_string(*target) + ") is more than max_inputs (" +
                 std::to_string(function.max_inputs) + ")");
      }
    });
    if (function.buffer_containers > function.max_containers) {
      Fail(*Find(node, "buffer_containers"), Child(path, "buffer_containers"),
           "buffer_containers (" + std::to_string(function.buffer_containers) +
               ") is more than max_containers (" + std::to_string(function.max_containers) + ")");
    }
    Field(node, path, "scaledown_window", [&](const Node& value, const std::string& field) {
      function.scaledown_window =
          DurationValue(value, field, 2s, 20min).value_or(function.scaledown_window);
    });
    Field(node, path, "secrets", [&](const Node& value, const std::string& field) {
      function.secrets =
          StringList(value, field, /*allow_empty=*/true).value_or(std::vector<std::string>{});
      std::set<std::string> seen;
      for (std::size_t i = 0; i < function.secrets.size(); ++i) {
        const std::string& secret = function.secrets[i];
        if (!seen.insert(secret).second)
          Fail(value.items[i], Index(field, i), "secret " + Quote(secret) + " listed twice");
        CheckReference(value.items[i], Index(field, i), secret, "secret", KeysOf(app.secrets));
      }
    });
    Field(node, path, "volumes", [&](const Node& value, const std::string& field) {
      function.volumes = DecodeMounts(value, field, app);
    });
    return function;
  }

  template <typename T>
  static std::vector<std::string> KeysOf(const std::map<std::string, T>& map) {
    std::vector<std::string> keys;
    for (const auto& [key, value] : map) keys.push_back(key);
    return keys;
  }

  void CheckReference(const Node& node, const std::string& path, const std::string& name,
                      const std::string& what, const std::vector<std::string>& defined) {
    if (std::find(defined.begin(), defined.end(), name) != defined.end()) return;
    std::string message = "no " + what + " named " + Quote(name) + " in " + what + "s:";
    if (auto suggestion = core::ClosestMatch(name, defined)) {
      message += " did you mean " + Quote(*suggestion) + "?";
    } else if (defined.empty()) {
      message += " none are defined";
    } else {
      message += " defined are " + Join(defined, ", ");
    }
    Fail(node, path, message);
  }

  std::optional<Web> DecodeWeb(const Node& node, const std::string& path) {
    Web web;
    if (node.kind == Node::Kind::kBool) {
      if (!node.boolean) return std::nullopt;
      return web;
    }
    if (!CheckMap(
            node, path,
            {"port_env", "health_path", "auth", "queue_timeout", "max_queued", "startup_timeout"}))
      return web;
    Field(node, path, "port_env", [&](const Node& value, const std::string& field) {
      auto name = NonEmptyString(value, field);
      if (name && !Matches(*name, kEnvName))
        Fail(value, field, "invalid environment variable name " + Quote(*name));
      web.port_env = name.value_or(web.port_env);
    });
    Field(node, path, "health_path", [&](const Node& value, const std::string& field) {
      auto health = NonEmptyString(value, field);
      if (health && (*health)[0] != '/')
        Fail(value, field, "must start with /, got " + Quote(*health));
      web.health_path = health.value_or("");
    });
    Field(node, path, "auth", [&](const Node& value, const std::string& field) {
      auto auth = String(value, field);
      if (!auth) return;
      if (auto mode = core::WebAuthFromName(*auth)) {
        web.auth = *mode;
      } else {
        Fail(value, field, "must be public, token or key, got " + Quote(*auth));
      }
    });
    Field(node, path, "queue_timeout", [&](const Node& value, const std::string& field) {
      web.queue_timeout = DurationValue(value, field, 1s, 10min).value_or(web.queue_timeout);
    });
    Field(node, path, "max_queued", [&](const Node& value, const std::string& field) {
      web.max_queued =
          static_cast<int>(Integer(value, field, 0, kMaxQueued).value_or(web.max_queued));
    });
    Field(node, path, "startup_timeout", [&](const Node& value, const std::string& field) {
      web.startup_timeout = DurationValue(value, field, 1s, 30min).value_or(web.startup_timeout);
    });
    return web;
  }

  Schedule DecodeSchedule(const Node& node, const std::string& path) {
    Schedule schedule;
    if (!CheckMap(node, path, {"cron", "timezone", "every", "overlap", "catch_up"}))
      return schedule;
    const Node* cron = Find(node, "cron");
    const Node* every = Find(node, "every");
    if ((cron == nullptr) == (every == nullptr)) {
      Fail(node, path, "needs exactly one of cron (\"0 9 * * 1-5\") or every (\"1h\")");
    }
    if (cron != nullptr) {
      if (auto text = NonEmptyString(*cron, Child(path, "cron"))) {
        auto parsed = core::ParseCron(*text);
        if (!parsed) Fail(*cron, Child(path, "cron"), parsed.error().message);
        std::istringstream words(*text);
        std::vector<std::string> fields{std::istream_iterator<std::string>(words),
                                        std::istream_iterator<std::string>()};
        schedule.cron = Join(fields, " ");
      }
    }
    if (every != nullptr)
      schedule.every = DurationValue(*every, Child(path, "every"), 1s, 24h * 366);
    Field(node, path, "timezone", [&](const Node& value, const std::string& field) {
      if (cron == nullptr) Fail(value, field, "a timezone applies to cron schedules only");
      if (auto zone = NonEmptyString(value, field)) {
        CheckTimezone(value, field, *zone);
        schedule.timezone = *zone;
      }
    });
    Field(node, path, "overlap", [&](const Node& value, const std::string& field) {
      auto overlap = String(value, field);
      if (!overlap) return;
      if (auto mode = core::OverlapFromName(*overlap)) {
        schedule.overlap = *mode;
      } else {
        Fail(value, field, "must be skip, allow or replace, got " + Quote(*overlap));
      }
    });
    Field(node, path, "catch_up", [&](const Node& value, const std::string& field) {
      schedule.catch_up =
          static_cast<int>(Integer(value, field, 0, kMaxCatchUp).value_or(schedule.catch_up));
    });
    return schedule;
  }

  void CheckTimezone(const Node& node, const std::string& path, const std::string& zone) {
    auto found = core::FindTimeZone(zone);
    if (!found) Fail(node, path, found.error().message);
  }

  std::vector<GpuRequest> DecodeGpu(const Node& node, const std::string& path) {
    std::vector<GpuRequest> requests;
    std::vector<std::pair<const Node*, std::string>> entries;
    if (node.kind == Node::Kind::kString) {
      entries.push_back({&node, path});
    } else if (IsList(node)) {
      for (std::size_t i = 0; i < node.items.size(); ++i)
        entries.push_back({&node.items[i], Index(path, i)});
    } else {
      WrongKind(node, path,
                "a GPU (\"H100\", \"A100-80GB:2\", \"any\") or a list of them in fallback order");
      return requests;
    }
    std::vector<std::string> choices = kGpuTypes;
    choices.push_back("any");
    for (const auto& [entry, entry_path] : entries) {
      auto text = NonEmptyString(*entry, entry_path);
      if (!text) continue;
      GpuRequest request;
      std::string type = *text;
      if (auto colon = type.find(':'); colon != std::string::npos) {
        std::string count = type.substr(colon + 1);
        type.resize(colon);
        if (count.empty() || count.size() > 2 ||
            !std::all_of(count.begin(), count.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
            std::stoi(count) < 1 || std::stoi(count) > kMaxGpuCount) {
          Fail(*entry, entry_path,
               "GPU count in " + Quote(*text) + " must be 1 to " + std::to_string(kMaxGpuCount));
          continue;
        }
        request.count = std::stoi(count);
      }
      auto known = std::find_if(choices.begin(), choices.end(), [&](const std::string& choice) {
        return std::equal(choice.begin(), choice.end(), type.begin(), type.end(),
                          [](char a, char b) {
                            return std::toupper(static_cast<unsigned char>(a)) ==
                                   std::toupper(static_cast<unsigned char>(b));
                          });
      });
      if (known == choices.end()) {
        std::string message = "unknown GPU type " + Quote(type);
        if (auto suggestion = core::ClosestMatch(type, choices))
          message += "; did you mean " + Quote(*suggestion) + "?";
        Fail(*entry, entry_path, message + " (known: " + Join(choices, ", ") + ")");
        continue;
      }
      request.type = *known;
      for (const GpuRequest& earlier : requests) {
        if (earlier.type == request.type && earlier.count == request.count) {
          Fail(*entry, entry_path, Quote(*text) + " is already in the list");
        }
      }
      requests.push_back(request);
    }
    return requests;
  }

  Retries DecodeRetries(const Node& node, const std::string& path) {
    Retries retries;
    if (WholeNumber(node)) {
      retries.max = static_cast<int>(Integer(node, path, 0, 10).value_or(0));
      return retries;
    }
    if (!CheckMap(node, path, {"max", "backoff"})) return retries;
    Field(node, path, "max", [&](const Node& value, const std::string& field) {
      retries.max = static_cast<int>(Integer(value, field, 0, 10).value_or(0));
    });
    Field(node, path, "backoff", [&](const Node& value, const std::string& field) {
      retries.backoff = DurationValue(value, field, 0s, 10min).value_or(retries.backoff);
    });
    return retries;
  }

  std::map<std::string, std::string> DecodeMounts(const Node& node, const std::string& path,
                                                  const App& app) {
    std::map<std::string, std::string> mounts;
    if (!IsMap(node)) {
      WrongKind(node, path, "a map of mount paths to volume names ({/weights: models})");
      return mounts;
    }
    for (const Node::Member& member : node.members) {
      std::string field = Child(path, member.key);
      std::string mount = NormalPath(member.key);
      if (member.key.empty() || member.key[0] != '/' || mount == "/") {
        FailAt(member.key_location, path,
               "mount path " + Quote(member.key) + " must be an absolute path other than /");
        continue;
      }
      bool reserved = false;
      for (const char* system : {"/proc", "/sys", "/dev"}) {
        if (mount == system || mount.rfind(std::string(system) + "/", 0) == 0) reserved = true;
      }
      if (reserved) {
        FailAt(member.key_location, path,
               "mount path " + Quote(member.key) + " is reserved for the system");
        continue;
      }
      if (mounts.count(mount) != 0) {
        FailAt(member.key_location, path,
               "mount path " + Quote(member.key) + " is " + Quote(mount) + " again");
        continue;
      }
      if (auto volume = String(member.value, field)) {
        CheckReference(member.value, field, *volume, "volume", KeysOf(app.volumes));
        mounts[mount] = *volume;
      }
    }
    return mounts;
  }

  // --- secrets and budget -------------------------------------------------------

  Secret DecodeSecret(const std::string& name, const Node& node, const std::string& path) {
    Secret secret;
    secret.name = name;
    if (!CheckMap(node, path, {"from_env", "from_file"})) return secret;
    if (Find(node, "from_env") == nullptr && Find(node, "from_file") == nullptr) {
      Fail(node, path,
           "needs from_env (a list of environment variables) or from_file (a dotenv file)");
    }
    Field(node, path, "from_env", [&](const Node& value, const std::string& field) {
      secret.from_env =
          StringList(value, field, /*allow_empty=*/false).value_or(std::vector<std::string>{});
      for (std::size_t i = 0; i < secret.from_env.size(); ++i) {
        if (!Matches(secret.from_env[i], kEnvName)) {
          Fail(value.items[i], Index(field, i),
               "invalid environment variable name " + Quote(secret.from_env[i]));
        }
      }
    });
    Field(node, path, "from_file", [&](const Node& value, const std::string& field) {
      secret.from_file = NonEmptyString(value, field).value_or("");
    });
    return secret;
  }

  Budget DecodeBudget(const Node& node, const std::string& path) {
    Budget budget;
    if (!CheckMap(node, path, {"daily_usd", "monthly_usd", "on_exceed"})) return budget;
    Field(node, path, "daily_usd", [&](const Node& value, const std::string& field) {
      budget.daily_usd = Number(value, field, 0, 1e9);
    });
    Field(node, path, "monthly_usd", [&](const Node& value, const std::string& field) {
      budget.monthly_usd = Number(value, field, 0, 1e9);
    });
    if (Find(node, "daily_usd") == nullptr && Find(node, "monthly_usd") == nullptr) {
      Fail(node, path, "needs daily_usd, monthly_usd or both");
    }
    Field(node, path, "on_exceed", [&](const Node& value, const std::string& field) {
      auto action = String(value, field);
      if (!action) return;
      if (*action == "stop") {
        budget.on_exceed = OnExceed::kStop;
      } else if (*action == "alert") {
        budget.on_exceed = OnExceed::kAlert;
      } else {
        Fail(value, field, "must be stop or alert, got " + Quote(*action));
      }
    });
    return budget;
  }

  std::filesystem::path source_;
  std::filesystem::path context_;
  Diagnostics errors_;
};

}  // namespace

core::Result<App, Diagnostics> Decode(const Node& root, const std::filesystem::path& source) {
  Decoder decoder(source);
  App app = decoder.DecodeApp(root);
  Diagnostics errors = decoder.TakeErrors();
  if (!errors.empty()) return errors;
  return app;
}

}  // namespace spec
