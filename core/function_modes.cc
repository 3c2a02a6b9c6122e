#include "core/function_modes.h"

namespace core {

const char* WebAuthName(WebAuth auth) {
  switch (auth) {
    case WebAuth::kPublic:
      return "public";
    case WebAuth::kToken:
      return "token";
    case WebAuth::kKey:
      return "key";
  }
  return "public";
}

std::optional<WebAuth> WebAuthFromName(std::string_view name) {
  for (WebAuth auth : {WebAuth::kPublic, WebAuth::kToken, WebAuth::kKey}) {
    if (name == WebAuthName(auth)) return auth;
  }
  return std::nullopt;
}

const char* OverlapName(Overlap overlap) {
  switch (overlap) {
    case Overlap::kSkip:
      return "skip";
    case Overlap::kAllow:
      return "allow";
    case Overlap::kReplace:
      return "replace";
  }
  return "skip";
}

std::optional<Overlap> OverlapFromName(std::string_view name) {
  for (Overlap overlap : {Overlap::kSkip, Overlap::kAllow, Overlap::kReplace}) {
    if (name == OverlapName(overlap)) return overlap;
  }
  return std::nullopt;
}

}  // namespace core
