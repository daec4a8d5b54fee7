// HTTP/1.1 response bytes; see sluice/http/response.h.
#include "sluice/http/response.h"

#include "absl/strings/str_cat.h"
#include "sluice/base/strings.h"

namespace sluice::http {
namespace {

// A header name or value with CR, LF and NUL replaced by spaces.
std::string FieldText(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c == '\r' || c == '\n' || c == '\0') c = ' ';
  }
  return out;
}

}  // namespace

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 417:
      return "Expectation Failed";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

std::string Serialize(const Response& response, bool keep_alive, bool head) {
  std::string out = absl::StrCat("HTTP/1.1 ", response.status, " ",
                                 base::Av(ReasonPhrase(response.status)), "\r\n");
  if (!response.content_type.empty()) {
    absl::StrAppend(&out, "Content-Type: ", FieldText(response.content_type), "\r\n");
  }
  absl::StrAppend(&out, "Content-Length: ", response.body.size(), "\r\n");
  absl::StrAppend(&out, "Connection: ", keep_alive && !response.close ? "keep-alive" : "close",
                  "\r\n");
  for (const auto& [name, value] : response.headers) {
    absl::StrAppend(&out, FieldText(name), ": ", FieldText(value), "\r\n");
  }
  out += "\r\n";
  if (!head) out += response.body;
  return out;
}

std::string JsonQuote(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u >= 0x20 && u < 0x7f) {
      out += c;
    } else {
      out += "\\u00";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out + "\"";
}

Response JsonError(int status, std::string_view message) {
  Response r;
  r.status = status;
  r.body = absl::StrCat("{\"error\":", JsonQuote(message), ",\"status\":", status, "}\n");
  return r;
}

}  // namespace sluice::http
