// HTTP/1.1 responses as bytes: the status line, Content-Type,
// Content-Length, Connection and any extra fields, then the body. Pure.
//
// What it trusts: the caller's header names and values (our own literals and
// values it produced; CR and LF in them are replaced, so no caller mistake
// can split a response). Error bodies are JSON, {"error":"...","status":N},
// with the message escaped so the body is always valid ASCII JSON.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::http {

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra fields
  // The connection closes after this response, whatever the request asked.
  bool close = false;
};

// "OK", "Not Found", ...; "Unknown" for a code it does not know.
std::string_view ReasonPhrase(int status);

// The response's bytes. `keep_alive`: "Connection: keep-alive" (else
// "close"); `head`: a HEAD request, so the body is left out (its length is
// still announced).
std::string Serialize(const Response& response, bool keep_alive, bool head = false);

// `text` as a JSON string literal, quotes included: ", \ and every byte
// outside printable ASCII escaped as \uXXXX (bytes >= 0x80 become U+0080..
// U+00FF, so any byte string gives valid JSON).
std::string JsonQuote(std::string_view text);

// {"error":"<message>","status":<status>} with that status.
Response JsonError(int status, std::string_view message);

}  // namespace sluice::http
