#include "core/image_reference.h"

#include <regex>

namespace core {
namespace {

const std::regex kPathComponent(R"([a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)");
const std::regex kDomain(
    R"((?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]+)?)");
const std::regex kTag(R"([\w][\w.-]{0,127})");
const std::regex kDigest(R"(sha256:[a-f0-9]{64})");

Error ReferenceError(std::string_view text, const std::string& reason) {
  return Error{ErrorCode::kInvalidArgument,
               "invalid image reference \"" + std::string(text) + "\": " + reason,
               {}};
}

}  // namespace

std::string ImageReference::ToString() const {
  std::string text = domain + "/" + repository;
  if (!tag.empty()) text += ":" + tag;
  if (!digest.empty()) text += "@" + digest;
  return text;
}

Result<ImageReference> ParseImageReference(std::string_view text) {
  if (text.empty() || text.size() > 255)
    return ReferenceError(text, "it must be 1 to 255 characters");
  std::string rest(text);
  ImageReference reference;
  if (auto at = rest.find('@'); at != std::string::npos) {
    reference.digest = rest.substr(at + 1);
    rest.resize(at);
    if (!std::regex_match(reference.digest, kDigest)) {
      return ReferenceError(text, "the digest must be sha256: followed by 64 lowercase hex digits");
    }
  }
  if (auto colon = rest.rfind(':');
      colon != std::string::npos && rest.find('/', colon) == std::string::npos) {
    reference.tag = rest.substr(colon + 1);
    rest.resize(colon);
    if (!std::regex_match(reference.tag, kTag)) {
      return ReferenceError(
          text, "the tag \"" + reference.tag + "\" must be letters, digits, '_', '.' or '-'");
    }
  }
  // The first component is a registry host when it looks like one.
  auto slash = rest.find('/');
  std::string first = rest.substr(0, slash);
  if (slash != std::string::npos &&
      (first.find('.') != std::string::npos || first.find(':') != std::string::npos ||
       first == "localhost")) {
    reference.domain = first;
    rest = rest.substr(slash + 1);
    if (!std::regex_match(reference.domain, kDomain))
      return ReferenceError(text, "invalid registry host");
  } else {
    reference.domain = "docker.io";
    if (slash == std::string::npos) rest = "library/" + rest;
  }
  std::size_t start = 0;
  while (true) {
    std::size_t end = rest.find('/', start);
    std::string component =
        rest.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!std::regex_match(component, kPathComponent)) {
      return ReferenceError(
          text,
          "repository names are lowercase letters and digits separated by '.', '_', '-' or '/'");
    }
    if (end == std::string::npos) break;
    start = end + 1;
  }
  reference.repository = rest;
  if (reference.tag.empty() && reference.digest.empty()) reference.tag = "latest";
  return reference;
}

}  // namespace core
