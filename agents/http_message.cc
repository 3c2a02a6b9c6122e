#include "agents/http_message.h"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace agents {
namespace {

constexpr std::size_t kMaxResponseHead = 64 << 10;
constexpr std::size_t kMaxChunkLine = 4096;
constexpr std::size_t kMaxTrailers = 16 << 10;

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

/// A token (RFC 9110 5.6.2): a method, a header name.
bool IsToken(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](unsigned char c) {
    return std::isalnum(c) ||
           std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
  });
}

/// A control character other than a tab: never in a header's value.
bool IsControl(unsigned char c) {
  return (c < 0x20 && c != '\t') || c == 0x7f;
}

core::Error Malformed(std::string_view of, const std::string& what) {
  return core::Error{core::ErrorCode::kParse, std::string(of) + ": " + what, {}};
}

constexpr std::string_view kResponse = "the web container's response";
constexpr std::string_view kRequest = "the request's head";
constexpr std::string_view kChunked = "a chunked body";

/// The header lines of `text` (the head less its first line and blank
/// line) into *headers. A name that is not a token or a control character
/// in a value is refused: the router would pass it on. `strict`, as a server
/// reads a request: a folded line or a space before the colon is refused
/// too, where a response's is tolerated.
core::Status ParseFields(std::string_view text, bool strict, std::string_view of,
                         HttpHeaders* headers) {
  while (!text.empty()) {
    std::size_t line_end = text.find('\n');
    std::string_view line = text.substr(0, line_end);
    text.remove_prefix(line_end == std::string_view::npos ? text.size() : line_end + 1);
    if (line.ends_with('\r')) line.remove_suffix(1);
    if (strict && !line.empty() && (line.front() == ' ' || line.front() == '\t')) {
      return Malformed(of, "a folded header line");
    }
    if (!strict) line = Trim(line);
    if (line.empty()) continue;
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0)
      return Malformed(of, "a header without a name");
    std::string_view name = line.substr(0, colon);
    if (!strict) name = Trim(name);
    std::string_view value = Trim(line.substr(colon + 1));
    if (!IsToken(name) || std::any_of(value.begin(), value.end(), [](char c) {
          return IsControl(static_cast<unsigned char>(c));
        })) {
      return Malformed(of, "a header with a bad name or a control character in its value");
    }
    headers->emplace_back(std::string(name), std::string(value));
  }
  return core::Ok{};
}

/// Each comma-separated element of every `name` header, trimmed.
std::vector<std::string_view> HeaderList(const HttpHeaders& headers, std::string_view name) {
  std::vector<std::string_view> elements;
  for (const auto& [key, value] : headers) {
    if (!EqualsIgnoringCase(key, name)) continue;
    for (std::string_view rest = value; !rest.empty();) {
      std::size_t comma = std::min(rest.find(','), rest.size());
      if (std::string_view element = Trim(rest.substr(0, comma)); !element.empty())
        elements.push_back(element);
      rest.remove_prefix(std::min(comma + 1, rest.size()));
    }
  }
  return elements;
}

}  // namespace

std::optional<std::string_view> FindHeader(const HttpHeaders& headers, std::string_view name) {
  for (const auto& [key, value] : headers) {
    if (EqualsIgnoringCase(key, name)) return value;
  }
  return std::nullopt;
}

std::size_t HeadLength(std::string_view bytes, std::size_t searched) {
  // An end found now may begin two bytes before: "\n\r" searched, "\n" new.
  for (std::size_t newline = bytes.find('\n', searched < 2 ? 0 : searched - 2);
       newline != std::string_view::npos; newline = bytes.find('\n', newline + 1)) {
    std::string_view after = bytes.substr(newline + 1);
    if (after.starts_with('\n')) return newline + 2;
    if (after.starts_with("\r\n")) return newline + 3;
  }
  return std::string_view::npos;
}

bool RequestHead::ConnectionHas(std::string_view token) const {
  for (std::string_view element : HeaderList(headers, "Connection")) {
    if (EqualsIgnoringCase(element, token)) return true;
  }
  return false;
}

bool RequestHead::keep_alive() const {
  return minor_version == 1 ? !ConnectionHas("close") : ConnectionHas("keep-alive");
}

bool RequestHead::expects_continue() const {
  auto expect = Find("Expect");
  return minor_version == 1 && expect && EqualsIgnoringCase(*expect, "100-continue");
}

core::Result<RequestHead> ParseRequestHead(std::string_view bytes) {
  // One empty line before the request line is skipped (RFC 9112 2.2): an
  // old client's CRLF after a POST's body.
  std::size_t skipped = bytes.starts_with("\r\n") ? 2 : bytes.starts_with('\n') ? 1 : 0;
  std::size_t length = HeadLength(bytes.substr(skipped));
  if (length == std::string_view::npos) return Malformed(kRequest, "no empty line ends it");
  bytes.remove_prefix(skipped);
  RequestHead head;
  head.head_bytes = skipped + length;
  std::string_view text = bytes.substr(0, length);
  std::size_t line_end = text.find('\n');
  std::string_view request_line = text.substr(0, line_end);
  if (request_line.ends_with('\r')) request_line.remove_suffix(1);
  // "GET /apps/demo/site/ HTTP/1.1"
  std::size_t first = request_line.find(' ');
  std::size_t last = request_line.rfind(' ');
  if (first == std::string_view::npos || first == last)
    return Malformed(kRequest, "a bad request line");
  std::string_view method = request_line.substr(0, first);
  std::string_view target = request_line.substr(first + 1, last - first - 1);
  std::string_view version = request_line.substr(last + 1);
  if (!IsToken(method) || target.empty() || std::any_of(target.begin(), target.end(), [](char c) {
        return c == ' ' || IsControl(static_cast<unsigned char>(c));
      })) {
    return Malformed(kRequest, "a bad request line");
  }
  if (version != "HTTP/1.1" && version != "HTTP/1.0") {
    return Malformed(kRequest, "not HTTP/1.0 or HTTP/1.1");
  }
  head.method = method;
  head.target = target;
  head.minor_version = version.back() - '0';
  auto fields = ParseFields(text.substr(line_end + 1), /*strict=*/true, kRequest, &head.headers);
  if (!fields) return fields.error();
  // Two would name two servers (RFC 9112 3.2): which one is asked?
  if (std::count_if(head.headers.begin(), head.headers.end(), [](const auto& header) {
        return EqualsIgnoringCase(header.first, "Host");
      }) > 1) {
    return Malformed(kRequest, "more than one Host");
  }
  return head;
}

core::Result<RequestBody> RequestBodyOf(const RequestHead& head) {
  std::vector<std::string_view> codings = HeaderList(head.headers, "Transfer-Encoding");
  std::vector<std::string_view> lengths = HeaderList(head.headers, "Content-Length");
  // A header with no value frames nothing a server can trust.
  if (codings.empty() && FindHeader(head.headers, "Transfer-Encoding"))
    return Malformed(kRequest, "an empty Transfer-Encoding");
  if (lengths.empty() && FindHeader(head.headers, "Content-Length"))
    return Malformed(kRequest, "a bad Content-Length");
  if (!codings.empty()) {
    // HTTP/1.0 has no transfer codings: its framing is not to be trusted
    // (RFC 9112 6.1).
    if (head.minor_version == 0) return Malformed(kRequest, "Transfer-Encoding in HTTP/1.0");
    if (!lengths.empty()) return Malformed(kRequest, "both Transfer-Encoding and Content-Length");
    if (codings.size() != 1 || !EqualsIgnoringCase(codings.front(), "chunked")) {
      return Malformed(kRequest, "a transfer coding other than chunked");
    }
    return RequestBody{.chunked = true, .length = 0};
  }
  RequestBody body;
  for (std::size_t i = 0; i < lengths.size(); ++i) {
    std::uint64_t length = 0;
    auto [end, error] =
        std::from_chars(lengths[i].data(), lengths[i].data() + lengths[i].size(), length);
    if (error != std::errc() || end != lengths[i].data() + lengths[i].size() ||
        (i > 0 && length != body.length)) {
      return Malformed(kRequest, "a bad Content-Length");
    }
    body.length = length;
  }
  return body;
}

std::optional<std::string> UpstreamResponseHead::Find(std::string_view name) const {
  auto value = FindHeader(headers, name);
  if (!value) return std::nullopt;
  return std::string(*value);
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
  auto value = FindHeader(headers, "Content-Length");
  if (!value) return std::nullopt;
  std::uint64_t length = 0;
  auto [end, error] = std::from_chars(value->data(), value->data() + value->size(), length);
  if (error != std::errc() || end != value->data() + value->size()) return std::nullopt;
  return length;
}

core::Result<std::optional<UpstreamResponseHead>> ParseResponseHead(std::string_view bytes) {
  std::size_t length = HeadLength(bytes);
  if (length == std::string_view::npos) {
    if (bytes.size() > kMaxResponseHead) return Malformed(kResponse, "a head longer than 64 KiB");
    return std::optional<UpstreamResponseHead>();
  }
  UpstreamResponseHead head;
  head.head_bytes = length;
  std::string_view text = bytes.substr(0, length);
  std::size_t line_end = text.find('\n');
  std::string_view status_line = Trim(text.substr(0, line_end));
  // "HTTP/1.1 200 OK"
  if (!status_line.starts_with("HTTP/1.") || status_line.size() < 12 || status_line[8] != ' ') {
    return Malformed(kResponse, "not an HTTP/1.x status line");
  }
  auto [parsed, error] =
      std::from_chars(status_line.data() + 9, status_line.data() + 12, head.status);
  if (error != std::errc() || parsed != status_line.data() + 12 || head.status < 100 ||
      head.status > 999 || (status_line.size() > 12 && status_line[12] != ' ')) {
    return Malformed(kResponse, "a bad status code");
  }
  head.reason = Trim(status_line.substr(std::min<std::size_t>(13, status_line.size())));
  if (std::any_of(head.reason.begin(), head.reason.end(),
                  [](char c) { return IsControl(static_cast<unsigned char>(c)); })) {
    return Malformed(kResponse, "a control character in its status line");
  }
  auto fields = ParseFields(text.substr(line_end + 1), /*strict=*/false, kResponse, &head.headers);
  if (!fields) return fields.error();
  return std::optional<UpstreamResponseHead>(std::move(head));
}

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 402:
      return "Payment Required";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 409:
      return "Conflict";
    case 413:
      return "Content Too Large";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "";
  }
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
        if (line_.size() > kMaxChunkLine)
          return Malformed(kChunked, "a chunk line longer than 4 KiB");
        if (newline == std::string_view::npos) return core::Ok{};
        input.remove_prefix(newline + 1);
        std::string_view line = Trim(line_);
        if (state_ == State::kDataEnd) {
          if (!line.empty()) return Malformed(kChunked, "chunk data longer than its size");
          state_ = State::kSize;
        } else if (state_ == State::kTrailer) {
          trailer_bytes_ += line_.size() + 1;
          if (trailer_bytes_ > kMaxTrailers) return Malformed(kChunked, "trailers past 16 KiB");
          if (line.empty()) state_ = State::kDone;
        } else {
          line = line.substr(0, line.find(';'));  // chunk extensions are ignored
          line = Trim(line);
          auto [end, error] =
              std::from_chars(line.data(), line.data() + line.size(), remaining_, 16);
          if (line.empty() || error != std::errc() || end != line.data() + line.size()) {
            return Malformed(kChunked, "a bad chunk size");
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

std::uint64_t ChunkedDecoder::wanted() const {
  switch (state_) {
    case State::kData:
      return remaining_;
    case State::kDone:
      return 0;
    default:
      return 1;
  }
}

}  // namespace agents
