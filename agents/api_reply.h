#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"

namespace httplib {
struct Response;
}

namespace agents {

/// How the API and the router answer: JSON bodies, and errors as
/// {"error": {"code", "message"}} with the HTTP status their code maps to.

/// `body` as JSON text that survives any bytes (a container's output need
/// not be UTF-8), with a newline: what every reply's body is.
std::string JsonText(const nlohmann::json& body);
/// {"error": {"code", "message"}} as JsonText writes it.
std::string ErrorText(const std::string& code, const std::string& message);

/// `body` as the response (JsonText).
void Reply(httplib::Response& response, int status, const nlohmann::json& body);
void ReplyError(httplib::Response& response, int status, const std::string& code,
                const std::string& message);
/// 400 for bad input, 404 not found, 409 conflict, 503 unavailable, 402
/// when an app's budget is spent (budget_guard.h), else 500.
int HttpStatusOf(core::ErrorCode code);
/// The error as its body, {"error": {"code", "message"}}, the code as
/// core::ErrorCodeName names it.
void ReplyError(httplib::Response& response, const core::Error& error);

}  // namespace agents
