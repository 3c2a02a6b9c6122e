#include "agents/api_reply.h"

#include <httplib.h>

namespace agents {

using nlohmann::json;

std::string JsonText(const json& body) {
  return body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string ErrorText(const std::string& code, const std::string& message) {
  return JsonText({{"error", {{"code", code}, {"message", message}}}});
}

void Reply(httplib::Response& response, int status, const json& body) {
  response.status = status;
  response.set_content(JsonText(body), "application/json");
}

void ReplyError(httplib::Response& response, int status, const std::string& code,
                const std::string& message) {
  response.status = status;
  response.set_content(ErrorText(code, message), "application/json");
}

int HttpStatusOf(core::ErrorCode code) {
  switch (code) {
    case core::ErrorCode::kParse:
    case core::ErrorCode::kInvalidArgument:
    case core::ErrorCode::kInvalidSpec:
      return 400;
    case core::ErrorCode::kNotFound:
      return 404;
    case core::ErrorCode::kConflict:
      return 409;
    case core::ErrorCode::kUnavailable:
      return 503;
    case core::ErrorCode::kBudgetExceeded:
      return 402;
    default:
      return 500;
  }
}

void ReplyError(httplib::Response& response, const core::Error& error) {
  ReplyError(response, HttpStatusOf(error.code), core::ErrorCodeName(error.code), error.message);
}

}  // namespace agents
