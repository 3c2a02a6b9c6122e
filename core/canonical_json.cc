#include "core/canonical_json.h"

#include <cmath>

#include "core/sha256.h"

namespace core {
namespace {

// Whole floats become integers so that a value written "2" in YAML and "2.0"
// in Lua has one canonical form. 2^53 bounds the integers a double holds exactly.
nlohmann::json WholeNumbersAsIntegers(const nlohmann::json& value) {
  if (value.is_number_float()) {
    double number = value.get<double>();
    if (std::isfinite(number) && std::trunc(number) == number &&
        std::fabs(number) <= 9007199254740992.0) {
      return static_cast<std::int64_t>(number);
    }
    return value;
  }
  if (value.is_object()) {
    nlohmann::json result = nlohmann::json::object();
    for (const auto& [key, item] : value.items()) result[key] = WholeNumbersAsIntegers(item);
    return result;
  }
  if (value.is_array()) {
    nlohmann::json result = nlohmann::json::array();
    for (const auto& item : value) result.push_back(WholeNumbersAsIntegers(item));
    return result;
  }
  return value;
}

}  // namespace

std::string CanonicalJson(const nlohmann::json& value) {
  // nlohmann::json keeps object members in a std::map, so dump() sorts keys.
  return WholeNumbersAsIntegers(value).dump(-1, ' ', false,
                                            nlohmann::json::error_handler_t::replace);
}

std::string CanonicalDigest(const nlohmann::json& value) {
  return Sha256Digest(CanonicalJson(value));
}

}  // namespace core
