#include "core/http_client.h"

#include <curl/curl.h>
#include <strings.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <mutex>

#include "core/atomic_file.h"
#include "core/text.h"

namespace core {
namespace {

bool SameName(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct SlistFree {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using Slist = std::unique_ptr<curl_slist, SlistFree>;

struct UrlFree {
  void operator()(CURLU* url) const { curl_url_cleanup(url); }
};
using Url = std::unique_ptr<CURLU, UrlFree>;

// One part of a parsed URL ("" when it has none).
std::string UrlPart(CURLU* url, CURLUPart part, unsigned int flags = 0) {
  char* text = nullptr;
  if (curl_url_get(url, part, &text, flags) != CURLUE_OK || text == nullptr) return "";
  std::string copy = text;
  curl_free(text);
  return copy;
}

// "scheme://host:port": what must stay the same for credentials to follow a redirect.
std::string Origin(const std::string& text) {
  Url url(curl_url());
  if (!url || curl_url_set(url.get(), CURLUPART_URL, text.c_str(), 0) != CURLUE_OK) return "";
  return UrlPart(url.get(), CURLUPART_SCHEME) + "://" +
         UrlPart(url.get(), CURLUPART_HOST, CURLU_URLDECODE) + ":" +
         UrlPart(url.get(), CURLUPART_PORT, CURLU_DEFAULT_PORT);
}

// `location` (absolute or relative) resolved against `base`.
Result<std::string> ResolveUrl(const std::string& base, const std::string& location) {
  Url url(curl_url());
  if (!url || curl_url_set(url.get(), CURLUPART_URL, base.c_str(), 0) != CURLUE_OK ||
      curl_url_set(url.get(), CURLUPART_URL, location.c_str(), 0) != CURLUE_OK) {
    return Error{ErrorCode::kIo,
                 RedactedUrl(base) + " redirected to an invalid URL " + RedactedUrl(location),
                 {}};
  }
  return UrlPart(url.get(), CURLUPART_URL);
}

// What one exchange (no redirects) reads and writes through libcurl's callbacks.
struct Transfer {
  const HttpRequest* request = nullptr;
  std::size_t body_offset = 0;  // into request->body
  std::optional<Error> reader_error;
  std::optional<Error> sink_error;
  bool too_big = false;
  HttpResponse response;
};

std::size_t ReadBody(char* buffer, std::size_t size, std::size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  const HttpRequest& request = *transfer->request;
  std::size_t capacity = size * count;
  if (request.body_reader) {
    auto read = request.body_reader(buffer, capacity);
    if (!read) {
      transfer->reader_error = read.error();
      return CURL_READFUNC_ABORT;
    }
    return *read;
  }
  std::size_t length = std::min(capacity, request.body.size() - transfer->body_offset);
  std::memcpy(buffer, request.body.data() + transfer->body_offset, length);
  transfer->body_offset += length;
  return length;
}

std::size_t WriteBody(char* data, std::size_t size, std::size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  std::size_t length = size * count;
  const HttpRequest& request = *transfer->request;
  if (request.body_sink && transfer->response.status / 100 == 2) {
    Status taken = request.body_sink(std::string_view(data, length));
    if (!taken) {
      transfer->sink_error = taken.error();
      return 0;
    }
    return length;
  }
  if (transfer->response.body.size() + length > request.max_body_bytes) {
    transfer->too_big = true;
    return 0;
  }
  transfer->response.body.append(data, length);
  return length;
}

std::size_t ReadHeader(char* data, std::size_t size, std::size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  std::string_view line(data, size * count);
  if (line.starts_with("HTTP/")) {
    // A new answer (after a 100 Continue, or the first): its own status and fields.
    transfer->response.headers.fields.clear();
    std::size_t space = line.find(' ');
    transfer->response.status =
        space == std::string_view::npos ? 0 : std::strtol(line.data() + space + 1, nullptr, 10);
  } else if (std::size_t colon = line.find(':'); colon != std::string_view::npos) {
    transfer->response.headers.Add(std::string(TrimSpaces(line.substr(0, colon))),
                                   std::string(TrimSpaces(line.substr(colon + 1))));
  }
  return size * count;
}

bool IsRedirect(long status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

// A PEM file's text; "" when it cannot be read (the peer then fails to verify).
std::string ReadPem(const std::string& path) {
  auto text = ReadFile(path);
  return text ? *text + "\n" : "";
}

TransportFailure FailureOf(CURLcode code) {
  switch (code) {
    case CURLE_OK:
      return TransportFailure::kNone;
    case CURLE_PEER_FAILED_VERIFICATION:
      return TransportFailure::kUntrustedTls;
    case CURLE_SSL_CONNECT_ERROR:
      return TransportFailure::kNotTls;
    default:
      return TransportFailure::kOther;
  }
}

}  // namespace

void HttpHeaders::Add(std::string name, std::string value) {
  fields.emplace_back(std::move(name), std::move(value));
}

std::optional<std::string> HttpHeaders::Get(std::string_view name) const {
  for (const auto& [field, value] : fields) {
    if (SameName(field, name)) return value;
  }
  return std::nullopt;
}

void HttpHeaders::Remove(std::string_view name) {
  std::erase_if(fields, [&](const auto& field) { return SameName(field.first, name); });
}

std::string UrlEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string encoded;
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (std::isalnum(byte) || c == '-' || c == '.' || c == '_' || c == '~') {
      encoded += c;
    } else {
      encoded += '%';
      encoded += kHex[byte >> 4];
      encoded += kHex[byte & 0xf];
    }
  }
  return encoded;
}

std::string RedactedUrl(std::string_view url) {
  return std::string(url.substr(0, url.find_first_of("?#")));
}

struct HttpClient::Handle {
  CURL* curl = nullptr;
  TransportFailure last_failure = TransportFailure::kNone;
  // The system's CA bundle and the extra CAs as one PEM blob, kept for the
  // extra_ca_files it was made of (a push sends hundreds of requests).
  std::vector<std::string> ca_blob_files;
  std::string ca_blob;
  ~Handle() {
    if (curl != nullptr) curl_easy_cleanup(curl);
  }

  // One exchange, no redirects followed.
  Result<HttpResponse> SendOnce(const HttpRequest& request) {
    if (curl == nullptr) {
      InitCurlOnce();
      curl = curl_easy_init();
      if (curl == nullptr) return Error{ErrorCode::kInternal, "curl_easy_init failed", {}};
    } else {
      curl_easy_reset(curl);  // options go, the connection cache stays
    }
    Transfer transfer;
    transfer.request = &request;
    char error_text[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_text);
    curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!request.ca_file.empty()) {
      curl_easy_setopt(curl, CURLOPT_CAINFO, request.ca_file.c_str());
    } else if (!request.extra_ca_files.empty()) {
      if (ca_blob_files != request.extra_ca_files) {
        char* system_bundle = nullptr;
        curl_easy_getinfo(curl, CURLINFO_CAINFO, &system_bundle);
        ca_blob = system_bundle != nullptr ? ReadPem(system_bundle) : "";
        for (const std::string& file : request.extra_ca_files) ca_blob += ReadPem(file);
        ca_blob_files = request.extra_ca_files;
      }
      curl_blob blob{ca_blob.data(), ca_blob.size(), CURL_BLOB_COPY};
      curl_easy_setopt(curl, CURLOPT_CAINFO_BLOB, &blob);
    }
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT,
                     static_cast<long>(request.connect_timeout.count()));
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME,
                     static_cast<long>(request.stall_timeout.count()));
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, static_cast<long>(request.timeout.count()));
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, WriteBody);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, ReadHeader);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &transfer);
    curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, 256L * 1024);
    curl_easy_setopt(curl, CURLOPT_UPLOAD_BUFFERSIZE, 2L * 1024 * 1024);

    Slist headers;
    auto add_header = [&](const std::string& line) {
      curl_slist* appended = curl_slist_append(headers.get(), line.c_str());
      if (appended != nullptr) {
        headers.release();
        headers.reset(appended);
      }
    };
    for (const auto& [name, value] : request.headers.fields) add_header(name + ": " + value);
    bool has_body = request.body_reader || !request.body.empty() || request.method == "POST" ||
                    request.method == "PUT" || request.method == "PATCH";
    if (request.method == "HEAD") {
      curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    } else if (has_body) {
      std::uint64_t size = request.body_reader ? request.body_size : request.body.size();
      curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
      curl_easy_setopt(curl, CURLOPT_READFUNCTION, ReadBody);
      curl_easy_setopt(curl, CURLOPT_READDATA, &transfer);
      curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(size));
      add_header("Expect:");  // no 100-continue round trip before every blob
    } else if (request.method != "GET") {
      curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.get());

    CURLcode code = curl_easy_perform(curl);
    last_failure = FailureOf(code);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
    std::string where = request.method + " " + RedactedUrl(request.url);
    if (transfer.reader_error) return *transfer.reader_error;
    if (transfer.sink_error) return *transfer.sink_error;
    if (transfer.too_big) {
      return Error{ErrorCode::kLimit,
                   where + ": the answer is larger than " + std::to_string(request.max_body_bytes) +
                       " bytes",
                   {}};
    }
    if (code != CURLE_OK) {
      std::string detail = error_text[0] != '\0' ? error_text : curl_easy_strerror(code);
      return Error{ErrorCode::kIo, where + ": " + detail, {}};
    }
    transfer.response.url = request.url;
    return std::move(transfer.response);
  }
};

HttpClient::HttpClient() : handle_(std::make_unique<Handle>()) {}
HttpClient::~HttpClient() = default;
HttpClient::HttpClient(HttpClient&&) noexcept = default;
HttpClient& HttpClient::operator=(HttpClient&&) noexcept = default;

TransportFailure HttpClient::last_failure() const {
  return handle_->last_failure;
}

Result<HttpResponse> HttpClient::Send(const HttpRequest& request) {
  HttpRequest current = request;
  for (int hop = 0;; ++hop) {
    auto response = handle_->SendOnce(current);
    if (!response || !IsRedirect(response->status)) return response;
    std::optional<std::string> location = response->headers.Get("Location");
    if (!location || request.max_redirects == 0) return response;
    if (hop >= request.max_redirects) {
      return Error{ErrorCode::kIo,
                   RedactedUrl(request.url) + ": more than " +
                       std::to_string(request.max_redirects) + " redirects",
                   {}};
    }
    auto next = ResolveUrl(current.url, *location);
    if (!next) return next.error();
    if (Origin(*next) != Origin(current.url)) current.headers.Remove("Authorization");
    bool becomes_get =
        response->status == 303 ||
        ((response->status == 301 || response->status == 302) && current.method == "POST");
    if (becomes_get) {
      current.method = "GET";
      current.body.clear();
      current.body_reader = nullptr;
      current.body_size = 0;
      current.headers.Remove("Content-Type");
      current.headers.Remove("Content-Length");
    } else if (current.body_reader) {
      return Error{ErrorCode::kIo,
                   current.method + " " + RedactedUrl(current.url) +
                       " was redirected, and a streamed body cannot be sent again",
                   {}};
    }
    current.url = std::move(next).value();
  }
}

}  // namespace core
