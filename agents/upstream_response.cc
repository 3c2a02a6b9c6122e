#include "agents/upstream_response.h"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace agents {
namespace {

constexpr std::size_t kMaxHeadBytes = 64 << 10;
constexpr std::size_t kMaxChunkLine = 4096;

bool EqualsIgnoringCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r'))
    text.remove_suffix(1);
  return text;
}

core::Error Malformed(const std::string& what) {
  return core::Error{core::ErrorCode::kParse, "the web container's response: " + what, {}};
}

}  // namespace

std::optional<std::string> UpstreamResponseHead::Find(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (EqualsIgnoringCase(key, name)) return value;
  }
  return std::nullopt;
}

bool UpstreamResponseHead::chunked() const {
  auto coding = Find("Transfer-Encoding");
  if (!coding) return false;
  std::string lower = *coding;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower.find("chunked") != std::string::npos;
}

std::optional<std::uint64_t> UpstreamResponseHead::content_length() const {
  auto value = Find("Content-Length");
  if (!value) return std::nullopt;
  std::uint64_t length = 0;
  auto [end, error] = std::from_chars(value->data(), value->data() + value->size(), length);
  if (error != std::errc() || end != value->data() + value->size()) return std::nullopt;
  return length;
}

core::Result<std::optional<UpstreamResponseHead>> ParseResponseHead(std::string_view bytes) {
  std::size_t end = bytes.find("\r\n\r\n");
  std::size_t terminator = 4;
  if (std::size_t bare = bytes.find("\n\n"); bare != std::string_view::npos && bare < end) {
    end = bare;  // tolerated, as browsers and nginx do
    terminator = 2;
  }
  if (end == std::string_view::npos) {
    if (bytes.size() > kMaxHeadBytes) return Malformed("a head longer than 64 KiB");
    return std::optional<UpstreamResponseHead>();
  }
  UpstreamResponseHead head;
  head.head_bytes = end + terminator;
  std::string_view text = bytes.substr(0, end);
  std::size_t line_end = text.find('\n');
  std::string_view status_line = Trim(text.substr(0, line_end));
  // "HTTP/1.1 200 OK"
  if (!status_line.starts_with("HTTP/1.") || status_line.size() < 12 || status_line[8] != ' ') {
    return Malformed("not an HTTP/1.x status line");
  }
  auto [parsed, error] =
      std::from_chars(status_line.data() + 9, status_line.data() + 12, head.status);
  if (error != std::errc() || parsed != status_line.data() + 12 || head.status < 100 ||
      head.status > 999) {
    return Malformed("a bad status code");
  }
  while (line_end != std::string_view::npos) {
    text.remove_prefix(line_end + 1);
    line_end = text.find('\n');
    std::string_view line = Trim(text.substr(0, line_end));
    if (line.empty()) continue;
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return Malformed("a header without a name");
    head.headers.emplace_back(std::string(Trim(line.substr(0, colon))),
                              std::string(Trim(line.substr(colon + 1))));
  }
  return std::optional<UpstreamResponseHead>(std::move(head));
}

bool HeaderNameIs(std::string_view name, std::string_view wanted) {
  return EqualsIgnoringCase(name, wanted);
}

bool IsHopByHopHeader(std::string_view name) {
  for (std::string_view hop :
       {"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
        "TE", "Trailer", "Transfer-Encoding", "Upgrade"}) {
    if (EqualsIgnoringCase(name, hop)) return true;
  }
  return false;
}

core::Status ChunkedDecoder::Feed(std::string_view input, std::string* out) {
  while (!input.empty() && state_ != State::kDone) {
    switch (state_) {
      case State::kSize:
      case State::kTrailer:
      case State::kDataEnd: {
        std::size_t newline = input.find('\n');
        line_.append(input.substr(0, newline));
        if (line_.size() > kMaxChunkLine) return Malformed("a chunk line longer than 4 KiB");
        if (newline == std::string_view::npos) return core::Ok{};
        input.remove_prefix(newline + 1);
        std::string_view line = Trim(line_);
        if (state_ == State::kDataEnd) {
          if (!line.empty()) return Malformed("chunk data longer than its size");
          state_ = State::kSize;
        } else if (state_ == State::kTrailer) {
          if (line.empty()) state_ = State::kDone;
        } else {
          line = line.substr(0, line.find(';'));  // chunk extensions are ignored
          line = Trim(line);
          auto [end, error] =
              std::from_chars(line.data(), line.data() + line.size(), remaining_, 16);
          if (line.empty() || error != std::errc() || end != line.data() + line.size()) {
            return Malformed("a bad chunk size");
          }
          state_ = remaining_ == 0 ? State::kTrailer : State::kData;
        }
        line_.clear();
        break;
      }
      case State::kData: {
        std::size_t take =
            static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, input.size()));
        out->append(input.substr(0, take));
        input.remove_prefix(take);
        remaining_ -= take;
        if (remaining_ == 0) state_ = State::kDataEnd;
        break;
      }
      case State::kDone:
        break;
    }
  }
  return core::Ok{};
}

}  // namespace agents
