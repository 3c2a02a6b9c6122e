#include "agents/cdi_spec.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/atomic_file.h"

namespace agents {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// A spec nvidia-ctk writes is tens of KiB (one mount per driver file); more
// than this is not a CDI spec.
constexpr std::uintmax_t kMaxSpecBytes = 16 << 20;
// YAML aliases can make a small file expand without end.
constexpr int kMaxDepth = 64;
constexpr std::size_t kMaxValues = 1 << 20;

constexpr const char* kHookNames[] = {"prestart",       "createRuntime", "createContainer",
                                      "startContainer", "poststart",     "poststop"};
constexpr HookStage kHookStages[] = {HookStage::kPrestart,        HookStage::kCreateRuntime,
                                     HookStage::kCreateContainer, HookStage::kStartContainer,
                                     HookStage::kPoststart,       HookStage::kPoststop};

// A malformed spec: the file, where in it, what is wrong.
core::Error Malformed(const fs::path& file, const std::string& where, const std::string& what) {
  return core::Error{
      core::ErrorCode::kParse,
      "CDI spec " + file.string() + ": " + (where.empty() ? "" : where + ": ") + what,
      {}};
}

// --- YAML as JSON -------------------------------------------------------------

// An integer as YAML 1.1 (which the CDI tools' Go YAML reader follows) writes
// one: decimal, 0x hex, 0o or leading-0 octal. Anything else: nullopt.
std::optional<json> YamlInteger(const std::string& text) {
  std::size_t start = (text[0] == '-' || text[0] == '+') ? 1 : 0;
  int base = 10;
  if (text.compare(start, 2, "0x") == 0) {
    base = 16;
    start += 2;
  } else if (text.compare(start, 2, "0o") == 0) {
    base = 8;
    start += 2;
  } else if (text.size() > start + 1 && text[start] == '0') {
    base = 8;
    start += 1;
  }
  if (start >= text.size()) return std::nullopt;
  const std::string digits = text.substr(start);
  const char* valid = base == 16 ? "0123456789abcdefABCDEF" : base == 8 ? "01234567" : "0123456789";
  if (digits.find_first_not_of(valid) != std::string::npos) return std::nullopt;
  errno = 0;
  const long long value = std::strtoll(digits.c_str(), nullptr, base);
  if (errno == ERANGE) return std::nullopt;
  return json(text[0] == '-' ? -value : value);
}

class YamlToJson {
 public:
  explicit YamlToJson(fs::path file) : file_(std::move(file)) {}

  // Plain scalars are null, booleans and integers where they read as one,
  // strings otherwise (floats included: no CDI field is one); quoted ones
  // are strings.
  core::Result<json> Convert(const YAML::Node& node, int depth = 0) {
    if (depth > kMaxDepth || ++values_ > kMaxValues)
      return Malformed(file_, "", "the YAML nests or expands too far (an alias loop?)");
    switch (node.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        return json(nullptr);
      case YAML::NodeType::Scalar: {
        const std::string& text = node.Scalar();
        if (node.Tag() != "?") return json(text);
        if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL")
          return json(nullptr);
        if (text == "true" || text == "True" || text == "TRUE") return json(true);
        if (text == "false" || text == "False" || text == "FALSE") return json(false);
        if (auto integer = YamlInteger(text)) return *integer;
        return json(text);
      }
      case YAML::NodeType::Sequence: {
        json array = json::array();
        for (const YAML::Node& item : node) {
          auto converted = Convert(item, depth + 1);
          if (!converted) return converted.error();
          array.push_back(std::move(converted).value());
        }
        return array;
      }
      case YAML::NodeType::Map: {
        json object = json::object();
        for (const auto& pair : node) {
          if (!pair.first.IsScalar()) return Malformed(file_, "", "a map key that is not a string");
          const std::string key = pair.first.Scalar();
          if (object.contains(key)) return Malformed(file_, key, "the key appears twice");
          auto converted = Convert(pair.second, depth + 1);
          if (!converted) return converted.error();
          object[key] = std::move(converted).value();
        }
        return object;
      }
    }
    return json(nullptr);
  }

 private:
  fs::path file_;
  std::size_t values_ = 0;
};

// `file` as JSON: parsed as JSON when it is *.json, as YAML otherwise.
core::Result<json> ReadDocument(const fs::path& file) {
  std::error_code error;
  const std::uintmax_t size = fs::file_size(file, error);
  if (!error && size > kMaxSpecBytes) return Malformed(file, "", "larger than 16 MiB");
  auto text = core::ReadFile(file);
  if (!text) return text.error();
  if (file.extension() == ".json") {
    try {
      return json::parse(*text);
    } catch (const json::parse_error& parse_error) {
      return Malformed(file, "", std::string("invalid JSON: ") + parse_error.what());
    }
  }
  YAML::Node document;
  try {
    document = YAML::Load(*text);
    return YamlToJson(file).Convert(document);
  } catch (const YAML::Exception& yaml_error) {
    // yaml-cpp resolves aliases lazily: a broken one surfaces while converting.
    return Malformed(
        file, "",
        "invalid YAML at line " + std::to_string(yaml_error.mark.line + 1) + ": " + yaml_error.msg);
  }
}

// --- Reading a spec ---------------------------------------------------------

// The fields of one spec's JSON, each reader naming what is wrong by its
// path in the spec ("devices[1].containerEdits.mounts[0].hostPath").
class SpecReader {
 public:
  explicit SpecReader(fs::path file) : file_(std::move(file)) {}

  core::Error Bad(const std::string& where, const std::string& what) const {
    return Malformed(file_, where, what);
  }

  // Missing and null are absent, as Go's decoder has them.
  static const json* Field(const json& object, const char* key) {
    auto found = object.find(key);
    return found == object.end() || found->is_null() ? nullptr : &*found;
  }

  // A string; an integer is taken as its decimal text (`name: 0` unquoted in YAML).
  core::Result<std::string> String(const json& value, const std::string& where) const {
    if (value.is_string()) return value.get<std::string>();
    if (value.is_number_integer()) return value.dump();
    return Bad(where, "expected a string");
  }

  core::Result<std::string> Path(const json& value, const std::string& where) const {
    auto path = String(value, where);
    if (path && !fs::path(*path).is_absolute()) return Bad(where, "not an absolute path");
    return path;
  }

  core::Result<std::vector<std::string>> Strings(const json* value,
                                                 const std::string& where) const {
    std::vector<std::string> strings;
    if (!value) return strings;
    if (!value->is_array()) return Bad(where, "expected a list of strings");
    for (std::size_t i = 0; i < value->size(); ++i) {
      auto text = String((*value)[i], where + "[" + std::to_string(i) + "]");
      if (!text) return text.error();
      strings.push_back(std::move(text).value());
    }
    return strings;
  }

  core::Result<std::int64_t> Integer(const json& value, const std::string& where, std::int64_t min,
                                     std::int64_t max) const {
    if (!value.is_number_integer()) return Bad(where, "expected an integer");
    if (value.is_number_unsigned() && value.get<std::uint64_t>() > std::uint64_t(max))
      return Bad(where, "out of range");
    const std::int64_t number = value.get<std::int64_t>();
    if (number < min || number > max) return Bad(where, "out of range");
    return number;
  }

  core::Result<CdiEdits> Edits(const json& value, const std::string& where) const {
    CdiEdits edits;
    if (!value.is_object()) return Bad(where, "expected an object");
    auto env = Strings(Field(value, "env"), where + ".env");
    if (!env) return env.error();
    for (std::size_t i = 0; i < env->size(); ++i) {
      const std::string& entry = (*env)[i];
      if (entry.find('=') == std::string::npos || entry.front() == '=')
        return Bad(where + ".env[" + std::to_string(i) + "]", "expected KEY=VALUE");
    }
    edits.env = std::move(env).value();
    if (auto status =
            List(value, "deviceNodes", where, &SpecReader::DeviceNodeOf, &edits.device_nodes);
        !status)
      return status.error();
    if (auto status = List(value, "mounts", where, &SpecReader::MountOf, &edits.mounts); !status)
      return status.error();
    if (auto status = List(value, "hooks", where, &SpecReader::HookOf, &edits.hooks); !status)
      return status.error();
    return edits;
  }

 private:
  template <typename T>
  core::Status List(const json& edits, const char* key, const std::string& where,
                    core::Result<T> (SpecReader::*read)(const json&, const std::string&) const,
                    std::vector<T>* into) const {
    const json* list = Field(edits, key);
    const std::string list_where = where + "." + key;
    if (!list) return core::Ok{};
    if (!list->is_array()) return Bad(list_where, "expected a list");
    for (std::size_t i = 0; i < list->size(); ++i) {
      const std::string item_where = list_where + "[" + std::to_string(i) + "]";
      if (!(*list)[i].is_object()) return Bad(item_where, "expected an object");
      auto item = (this->*read)((*list)[i], item_where);
      if (!item) return item.error();
      into->push_back(std::move(item).value());
    }
    return core::Ok{};
  }

  core::Result<DeviceNode> DeviceNodeOf(const json& value, const std::string& where) const {
    DeviceNode node;
    const json* path = Field(value, "path");
    if (!path) return Bad(where + ".path", "missing");
    auto container_path = Path(*path, where + ".path");
    if (!container_path) return container_path.error();
    node.path = std::move(container_path).value();
    if (const json* host_path = Field(value, "hostPath")) {
      auto text = Path(*host_path, where + ".hostPath");
      if (!text) return text.error();
      node.host_path = std::move(text).value();
    }
    if (const json* type = Field(value, "type")) {
      auto text = String(*type, where + ".type");
      if (!text) return text.error();
      if (*text != "c" && *text != "b" && *text != "u" && *text != "p")
        return Bad(where + ".type", "\"" + *text + "\" is none of c, b, u, p");
      node.type = std::move(text).value();
    }
    // Go leaves a zero major and minor out (omitempty): 0 is "not given".
    for (auto [key, field] : {std::pair{"major", &node.major}, std::pair{"minor", &node.minor}}) {
      if (const json* number = Field(value, key)) {
        auto read = Integer(*number, where + "." + key, 0, INT64_MAX);
        if (!read) return read.error();
        if (*read != 0) *field = *read;
      }
    }
    if (node.major || node.minor) {
      node.major = node.major.value_or(0);
      node.minor = node.minor.value_or(0);
    }
    if (const json* mode = Field(value, "fileMode")) {
      // An os.FileMode: permission bits, and maybe Go's type bits above them.
      auto read = Integer(*mode, where + ".fileMode", 0, UINT32_MAX);
      if (!read) return read.error();
      node.file_mode = static_cast<std::uint32_t>(*read & 07777);
    }
    if (const json* permissions = Field(value, "permissions")) {
      auto text = String(*permissions, where + ".permissions");
      if (!text) return text.error();
      if (text->find_first_not_of("rwm") != std::string::npos)
        return Bad(where + ".permissions", "\"" + *text + "\" is not r, w and m");
      if (!text->empty()) node.permissions = std::move(text).value();
    }
    for (auto [key, field] : {std::pair{"uid", &node.uid}, std::pair{"gid", &node.gid}}) {
      if (const json* id = Field(value, key)) {
        auto read = Integer(*id, where + "." + key, 0, UINT32_MAX);
        if (!read) return read.error();
        *field = static_cast<std::uint32_t>(*read);
      }
    }
    return node;
  }

  core::Result<BindMount> MountOf(const json& value, const std::string& where) const {
    BindMount mount;
    const json* host_path = Field(value, "hostPath");
    const json* container_path = Field(value, "containerPath");
    if (!host_path) return Bad(where + ".hostPath", "missing");
    if (!container_path) return Bad(where + ".containerPath", "missing");
    auto source = Path(*host_path, where + ".hostPath");
    if (!source) return source.error();
    auto destination = Path(*container_path, where + ".containerPath");
    if (!destination) return destination.error();
    auto options = Strings(Field(value, "options"), where + ".options");
    if (!options) return options.error();
    if (const json* type = Field(value, "type")) {
      auto text = String(*type, where + ".type");
      if (!text) return text.error();
      if (!text->empty() && *text != "bind")
        return Bad(where + ".type", "\"" + *text + "\": gantry takes bind mounts only");
    }
    mount.source = std::move(source).value();
    mount.destination = std::move(destination).value();
    mount.options = std::move(options).value();
    return mount;
  }

  core::Result<Hook> HookOf(const json& value, const std::string& where) const {
    Hook hook;
    const json* name = Field(value, "hookName");
    if (!name) return Bad(where + ".hookName", "missing");
    auto stage = String(*name, where + ".hookName");
    if (!stage) return stage.error();
    auto known = std::find(std::begin(kHookNames), std::end(kHookNames), *stage);
    if (known == std::end(kHookNames))
      return Bad(where + ".hookName", "\"" + *stage + "\" is not a hook name");
    hook.stage = kHookStages[known - std::begin(kHookNames)];
    const json* path = Field(value, "path");
    if (!path) return Bad(where + ".path", "missing");
    auto program = Path(*path, where + ".path");
    if (!program) return program.error();
    hook.path = std::move(program).value();
    auto args = Strings(Field(value, "args"), where + ".args");
    if (!args) return args.error();
    hook.args = std::move(args).value();
    auto env = Strings(Field(value, "env"), where + ".env");
    if (!env) return env.error();
    hook.env = std::move(env).value();
    if (const json* timeout = Field(value, "timeout")) {
      auto seconds = Integer(*timeout, where + ".timeout", 1, INT32_MAX);
      if (!seconds) return seconds.error();
      hook.timeout_seconds = static_cast<int>(*seconds);
    }
    return hook;
  }

  fs::path file_;
};

// One spec of kind nvidia.com/gpu.
struct Spec {
  fs::path file;
  std::size_t priority = 0;  // the index of its folder
  CdiEdits edits;            // the top-level containerEdits
  std::vector<std::pair<std::string, CdiEdits>> devices;
};

// `document` as a spec of our kind; nullopt for a spec of another kind.
core::Result<std::optional<Spec>> ReadSpec(const json& document, const fs::path& file) {
  SpecReader reader(file);
  if (!document.is_object()) return reader.Bad("", "expected an object");
  const json* kind = SpecReader::Field(document, "kind");
  if (!kind || !kind->is_string()) return reader.Bad("kind", "missing, or not a string");
  if (kind->get<std::string>() != kNvidiaGpuCdiKind) return std::optional<Spec>();

  const json* version = SpecReader::Field(document, "cdiVersion");
  if (!version || !version->is_string())
    return reader.Bad("cdiVersion", "missing, or not a string");
  const std::string text = version->get<std::string>();
  // 0.3.0 to 1.x: the fields read here are the same in all of them.
  if (text.rfind("0.", 0) != 0 && text.rfind("1.", 0) != 0)
    return reader.Bad("cdiVersion", "\"" + text + "\" is not a version gantry reads (0.x, 1.x)");

  Spec spec;
  spec.file = file;
  if (const json* edits = SpecReader::Field(document, "containerEdits")) {
    auto read = reader.Edits(*edits, "containerEdits");
    if (!read) return read.error();
    spec.edits = std::move(read).value();
  }
  const json* devices = SpecReader::Field(document, "devices");
  if (!devices || !devices->is_array()) return reader.Bad("devices", "missing, or not a list");
  std::set<std::string> names;
  for (std::size_t i = 0; i < devices->size(); ++i) {
    const std::string where = "devices[" + std::to_string(i) + "]";
    const json& device = (*devices)[i];
    if (!device.is_object()) return reader.Bad(where, "expected an object");
    const json* name = SpecReader::Field(device, "name");
    if (!name) return reader.Bad(where + ".name", "missing");
    auto text = reader.String(*name, where + ".name");
    if (!text) return text.error();
    if (text->empty()) return reader.Bad(where + ".name", "empty");
    if (!names.insert(*text).second)
      return reader.Bad(where + ".name", "\"" + *text + "\" names two devices");
    CdiEdits edits;
    if (const json* device_edits = SpecReader::Field(device, "containerEdits")) {
      auto read = reader.Edits(*device_edits, where + ".containerEdits");
      if (!read) return read.error();
      edits = std::move(read).value();
    }
    spec.devices.emplace_back(std::move(text).value(), std::move(edits));
  }
  return std::optional<Spec>(std::move(spec));
}

// The specs of our kind in `spec_dirs`, each folder's files in name order.
core::Result<std::vector<Spec>> ReadSpecs(const std::vector<fs::path>& spec_dirs) {
  std::vector<Spec> specs;
  for (std::size_t priority = 0; priority < spec_dirs.size(); ++priority) {
    const fs::path& dir = spec_dirs[priority];
    std::error_code error;
    if (!fs::is_directory(dir, error)) continue;  // no such folder: no specs there
    std::vector<fs::path> files;
    for (fs::directory_iterator it(dir, error), end; !error && it != end; it.increment(error)) {
      const std::string extension = it->path().extension().string();
      if (extension != ".json" && extension != ".yaml" && extension != ".yml") continue;
      std::error_code type_error;
      if (it->is_regular_file(type_error)) files.push_back(it->path());
    }
    if (error) {
      return core::Error{core::ErrorCode::kIo,
                         "cannot list the CDI spec folder " + dir.string() + ": " + error.message(),
                         {}};
    }
    std::sort(files.begin(), files.end());
    for (const fs::path& file : files) {
      auto document = ReadDocument(file);
      if (!document) return document.error();
      auto spec = ReadSpec(*document, file);
      if (!spec) return spec.error();
      if (!spec->has_value()) continue;
      (*spec)->priority = priority;
      specs.push_back(std::move(**spec));
    }
  }
  return specs;
}

void SetEnv(std::vector<std::string>* env, const std::string& entry) {
  const std::string key = entry.substr(0, entry.find('=') + 1);
  auto same = std::find_if(env->begin(), env->end(), [&](const std::string& existing) {
    return existing.compare(0, key.size(), key) == 0;
  });
  if (same != env->end()) {
    *same = entry;
  } else {
    env->push_back(entry);
  }
}

void Append(const CdiEdits& from, std::vector<std::string>* env,
            std::vector<DeviceNode>* device_nodes, std::vector<BindMount>* mounts,
            std::vector<Hook>* hooks) {
  for (const std::string& entry : from.env) SetEnv(env, entry);
  for (const DeviceNode& node : from.device_nodes) {
    std::erase_if(*device_nodes,
                  [&](const DeviceNode& earlier) { return earlier.path == node.path; });
    device_nodes->push_back(node);
  }
  for (const BindMount& mount : from.mounts) {
    std::erase_if(*mounts, [&](const BindMount& earlier) {
      return earlier.destination == mount.destination;
    });
    mounts->push_back(mount);
  }
  hooks->insert(hooks->end(), from.hooks.begin(), from.hooks.end());
}

void Append(const CdiEdits& from, CdiEdits* into) {
  Append(from, &into->env, &into->device_nodes, &into->mounts, &into->hooks);
}

}  // namespace

core::Result<std::optional<CdiEdits>> CdiEditsForGpus(const std::vector<Gpu>& gpus,
                                                      const std::vector<fs::path>& spec_dirs) {
  if (gpus.empty()) return std::optional<CdiEdits>();
  auto specs = ReadSpecs(spec_dirs);
  if (!specs) return specs.error();
  if (specs->empty()) return std::optional<CdiEdits>();

  // Each device name's device, as the CDI registry resolves them: a later
  // folder wins; two specs of one folder naming it make it unusable.
  struct Found {
    const Spec* spec = nullptr;
    const CdiEdits* edits = nullptr;
    const Spec* conflict = nullptr;
  };
  std::map<std::string, Found> devices;
  for (const Spec& spec : *specs) {
    for (const auto& [name, edits] : spec.devices) {
      auto [it, inserted] = devices.try_emplace(name, Found{&spec, &edits, nullptr});
      if (inserted) continue;
      if (spec.priority > it->second.spec->priority) {
        it->second = Found{&spec, &edits, nullptr};
      } else if (!it->second.conflict) {
        it->second.conflict = &spec;
      }
    }
  }

  CdiEdits merged;
  std::set<const Spec*> taken;
  std::string uuids;
  for (const Gpu& gpu : gpus) {
    auto found = gpu.uuid.empty() ? devices.end() : devices.find(gpu.uuid);
    if (found == devices.end()) found = devices.find(std::to_string(gpu.index));
    if (found == devices.end()) return std::optional<CdiEdits>();
    const Found& device = found->second;
    if (device.conflict) {
      return core::Error{core::ErrorCode::kConflict,
                         std::string("CDI device ") + kNvidiaGpuCdiKind + "=" + found->first +
                             " is in both " + device.spec->file.string() + " and " +
                             device.conflict->file.string(),
                         {}};
    }
    if (taken.insert(device.spec).second) Append(device.spec->edits, &merged);
    Append(*device.edits, &merged);
    uuids += (uuids.empty() ? "" : ",") + gpu.uuid;
  }
  SetEnv(&merged.env, "CUDA_VISIBLE_DEVICES=" + uuids);
  return std::optional<CdiEdits>(std::move(merged));
}

void ApplyCdiEdits(const CdiEdits& edits, ContainerSpec* spec) {
  Append(edits, &spec->env, &spec->device_nodes, &spec->mounts, &spec->hooks);
}

}  // namespace agents
