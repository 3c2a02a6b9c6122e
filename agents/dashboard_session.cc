#include "agents/dashboard_session.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <charconv>
#include <utility>
#include <vector>

#include "agents/api_token.h"
#include "core/hex.h"
#include "core/random.h"
#include "core/text.h"

namespace agents {
namespace {

constexpr std::size_t kSessionIdBytes = 16;

}  // namespace

DashboardSessions::DashboardSessions(std::string key, std::string cookie)
    : key_(std::move(key)), cookie_(std::move(cookie)) {}

std::vector<std::string_view> DashboardSessions::Values(std::string_view cookie_header) const {
  // "name=value; name=value" (RFC 6265 section 4.2.1); every cookie of our
  // name: a page of another path may have set one of that name too.
  std::vector<std::string_view> values;
  while (!cookie_header.empty()) {
    std::size_t end = cookie_header.find(';');
    std::string_view pair = core::TrimSpaces(cookie_header.substr(0, end));
    cookie_header = end == std::string_view::npos ? "" : cookie_header.substr(end + 1);
    std::size_t equals = pair.find('=');
    if (equals != std::string_view::npos && pair.substr(0, equals) == cookie_)
      values.push_back(pair.substr(equals + 1));
  }
  return values;
}

std::string DashboardSessions::Mac(std::string_view id_and_expiry) const {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
       reinterpret_cast<const unsigned char*>(id_and_expiry.data()), id_and_expiry.size(), mac,
       &size);
  return core::HexEncode(mac, size);
}

core::Result<std::string> DashboardSessions::Issue(std::int64_t now_seconds) const {
  auto id = core::RandomHex(kSessionIdBytes);
  if (!id.ok()) return id.error();
  std::string signed_part = *id + "." + std::to_string(now_seconds + kSessionSeconds);
  return signed_part + "." + Mac(signed_part);
}

std::optional<DashboardSessions::Session> DashboardSessions::Verified(
    std::string_view value) const {
  std::size_t last = value.rfind('.');
  if (last == std::string_view::npos || key_.empty()) return std::nullopt;
  std::string_view signed_part = value.substr(0, last);
  if (!SecretMatches(value.substr(last + 1), Mac(signed_part))) return std::nullopt;
  std::size_t first = signed_part.find('.');
  if (first == std::string_view::npos) return std::nullopt;
  Session session{std::string(signed_part.substr(0, first)), 0};
  std::string_view digits = signed_part.substr(first + 1);
  auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), session.expiry);
  if (error != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return session;
}

bool DashboardSessions::Valid(std::string_view cookie_header, std::int64_t now_seconds) const {
  for (std::string_view value : Values(cookie_header)) {
    auto session = Verified(value);
    if (!session || session->expiry <= now_seconds) continue;
    std::lock_guard lock(mutex_);
    if (!revoked_.contains(session->id)) return true;
  }
  return false;
}

void DashboardSessions::Revoke(std::string_view cookie_header, std::int64_t now_seconds) {
  std::lock_guard lock(mutex_);
  std::erase_if(revoked_, [&](const auto& entry) { return entry.second <= now_seconds; });
  for (std::string_view value : Values(cookie_header)) {
    auto session = Verified(value);
    if (session && session->expiry > now_seconds) revoked_[session->id] = session->expiry;
  }
}

std::string DashboardSessions::SetCookie(std::string_view session, bool secure) const {
  std::string cookie = cookie_ + "=" + std::string(session) + "; Path=/ui; Max-Age=" +
                       std::to_string(session.empty() ? 0 : kSessionSeconds) +
                       "; HttpOnly; SameSite=Strict";
  if (secure) cookie += "; Secure";
  return cookie;
}

}  // namespace agents
