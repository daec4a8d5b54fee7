// The HTTP/1.1 request parser; see sluice/http/request_parser.h.
//
// The head is copied byte by byte into head_ (bare CR, bare LF and NUL are
// refused as they arrive, and the request-line and head limits are checked
// on every byte, so a client cannot make it hold more than the limits), and
// parsed as a whole once the empty line arrives. The body is copied until
// Content-Length bytes are in.
#include "sluice/http/request_parser.h"

#include <algorithm>
#include <cctype>

#include "absl/strings/str_cat.h"
#include "sluice/base/strings.h"

namespace sluice::http {
namespace {

// RFC 9110 5.6.2: token characters.
bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool IsToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), IsTokenChar);
}

// RFC 9110 5.5: field-value characters (VCHAR, SP, HTAB, obs-text).
bool IsFieldValueChar(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u == '\t' || (u >= 0x20 && u != 0x7f);
}

std::string_view TrimWhitespace(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Shown in error messages: at most 64 bytes, printable ASCII only.
std::string Excerpt(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 64)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return out;
}

}  // namespace

const std::string* Request::FindHeader(std::string_view lower_name) const {
  for (const Header& h : headers) {
    if (h.name == lower_name) return &h.value;
  }
  return nullptr;
}

const std::string* Request::Param(std::string_view name) const {
  for (const auto& [k, v] : query) {
    if (k == name) return &v;
  }
  return nullptr;
}

std::optional<std::string> PercentDecode(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return std::nullopt;
      const int hi = HexValue(in[i + 1]);
      const int lo = HexValue(in[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
      if (c == '\0') return std::nullopt;
    } else if (c == '+' && plus_is_space) {
      c = ' ';
    }
    out.push_back(c);
  }
  return out;
}

std::optional<std::vector<std::pair<std::string, std::string>>> ParseQuery(std::string_view in) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!in.empty()) {
    const size_t amp = in.find('&');
    const std::string_view part = in.substr(0, amp);
    in = amp == std::string_view::npos ? std::string_view() : in.substr(amp + 1);
    if (part.empty()) continue;  // "a=1&&b=2"
    const size_t eq = part.find('=');
    auto key = PercentDecode(part.substr(0, eq), true);
    auto value = PercentDecode(eq == std::string_view::npos ? "" : part.substr(eq + 1), true);
    if (!key || !value) return std::nullopt;
    out.emplace_back(*std::move(key), *std::move(value));
  }
  return out;
}

bool RequestParser::Fail(int status, std::string message) {
  state_ = State::kFailed;
  error_ = ParseError{status, std::move(message)};
  return false;
}

size_t RequestParser::Feed(std::string_view bytes) {
  size_t used = 0;
  if (state_ == State::kHead) used += FeedHead(bytes);
  if (state_ == State::kBody) used += FeedBody(bytes.substr(used));
  return used;
}

size_t RequestParser::FeedHead(std::string_view bytes) {
  size_t i = 0;
  auto fail = [&](int status, std::string message) {
    Fail(status, std::move(message));
    return i;
  };
  while (i < bytes.size()) {
    const char c = bytes[i++];
    if (c == '\0') return fail(400, "NUL byte in the request head");
    if (prev_cr_ && c != '\n') return fail(400, "bare CR in the request head");
    if (c == '\n' && !prev_cr_) {
      return fail(400, "bare LF in the request head (lines end with CRLF)");
    }
    prev_cr_ = c == '\r';
    head_.push_back(c);
    // The request line is held to the smaller of its own limit and the
    // head's: a long request line is a 414, whichever limit it passes.
    const size_t line_max = std::min(limits_.max_request_line, limits_.max_head_bytes);
    if (line_start_ == 0 && head_.size() > line_max) {
      return fail(414,
                  absl::StrCat("request line longer than ", line_max, " bytes (with its CRLF)"));
    }
    if (head_.size() > limits_.max_head_bytes) {
      return fail(431, absl::StrCat("request header section larger than ", limits_.max_head_bytes,
                                    " bytes"));
    }
    if (c != '\n') continue;
    const size_t line_size = head_.size() - 2 - line_start_;
    if (line_size == 0 && line_start_ == 0) {
      // An empty line before the request line (RFC 9112 2.2).
      if (++leading_empty_ > kMaxLeadingEmptyLines) {
        return fail(400, "empty lines instead of a request line");
      }
      head_.clear();
      continue;
    }
    if (line_size == 0) {
      ParseHead();
      return i;
    }
    line_start_ = head_.size();
  }
  return i;
}

size_t RequestParser::FeedBody(std::string_view bytes) {
  const size_t n = std::min(bytes.size(), body_left_);
  request_.body.append(bytes.data(), n);
  body_left_ -= n;
  if (body_left_ > 0) return n;
  state_ = State::kDone;
  const std::string* type = request_.FindHeader("content-type");
  if (type != nullptr && base::StartsWithIgnoreCase(*type, "application/x-www-form-urlencoded")) {
    auto form = ParseQuery(request_.body);
    if (!form) {
      Fail(400, "bad percent-escape in the form body");
      return n;
    }
    request_.query.insert(request_.query.end(), form->begin(), form->end());
  }
  return n;
}

bool RequestParser::ParseHead() {
  const std::string_view h = head_;
  size_t end = h.find("\r\n");
  if (!ParseRequestLine(h.substr(0, end))) return false;
  for (size_t pos = end + 2;; pos = end + 2) {
    end = h.find("\r\n", pos);
    const std::string_view line = h.substr(pos, end - pos);
    if (line.empty()) break;
    if (!ParseHeaderLine(line)) return false;
  }
  return CheckFraming();
}

bool RequestParser::ParseRequestLine(std::string_view line) {
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return Fail(400, absl::StrCat("malformed request line \"", Excerpt(line),
                                  "\" (expected METHOD SP TARGET SP HTTP/1.1)"));
  }
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!IsToken(method)) return Fail(400, absl::StrCat("bad method \"", Excerpt(method), "\""));
  if (target.empty() || target.front() != '/') {
    return Fail(400, absl::StrCat("bad request target \"", Excerpt(target),
                                  "\" (only origin-form, /path?query, is accepted)"));
  }
  for (char c : target) {
    if (c <= 0x20 || c >= 0x7f) return Fail(400, "control or non-ASCII byte in the request target");
  }
  if (version == "HTTP/1.1" || version == "HTTP/1.0") {
    request_.version_minor = version.back() - '0';
  } else if (version.size() == 8 && version.substr(0, 5) == "HTTP/" && version[6] == '.' &&
             std::isdigit(static_cast<unsigned char>(version[5])) &&
             std::isdigit(static_cast<unsigned char>(version[7]))) {
    return Fail(505, absl::StrCat(base::Av(version), " is not supported (HTTP/1.1 and 1.0 are)"));
  } else {
    return Fail(400, absl::StrCat("bad protocol version \"", Excerpt(version), "\""));
  }
  request_.method = std::string(method);
  request_.target = std::string(target);
  const size_t q = target.find('?');
  auto path = PercentDecode(target.substr(0, q), false);
  if (!path) return Fail(400, "bad percent-escape in the path");
  request_.path = *std::move(path);
  if (q != std::string_view::npos) {
    request_.raw_query = std::string(target.substr(q + 1));
    auto query = ParseQuery(request_.raw_query);
    if (!query) return Fail(400, "bad percent-escape in the query");
    request_.query = *std::move(query);
  }
  return true;
}

bool RequestParser::ParseHeaderLine(std::string_view line) {
  if (line.front() == ' ' || line.front() == '\t') {
    return Fail(400, "obs-fold (a header line starting with whitespace) is not accepted");
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) {
    return Fail(400, absl::StrCat("header line without a colon: \"", Excerpt(line), "\""));
  }
  const std::string_view name = line.substr(0, colon);
  if (!name.empty() && (name.back() == ' ' || name.back() == '\t')) {
    return Fail(400, absl::StrCat("whitespace before the colon of header \"",
                                  Excerpt(TrimWhitespace(name)), "\""));
  }
  if (!IsToken(name)) return Fail(400, absl::StrCat("bad header name \"", Excerpt(name), "\""));
  const std::string_view value = TrimWhitespace(line.substr(colon + 1));
  for (char c : value) {
    if (!IsFieldValueChar(c)) {
      return Fail(400, absl::StrCat("control character in header \"", Excerpt(name), "\""));
    }
  }
  if (request_.headers.size() >= limits_.max_headers) {
    return Fail(431, absl::StrCat("more than ", limits_.max_headers, " header fields"));
  }
  Header h;
  h.name.reserve(name.size());
  for (char c : name) h.name.push_back(base::AsciiLower(c));
  h.value = std::string(value);
  request_.headers.push_back(std::move(h));
  return true;
}

bool RequestParser::CheckFraming() {
  size_t hosts = 0, lengths = 0, encodings = 0;
  bool chunked = false, close = false, keep_alive = false, expect = false;
  uint64_t length = 0;
  for (const Header& h : request_.headers) {
    if (h.name == "host") {
      ++hosts;
    } else if (h.name == "content-length") {
      if (++lengths > 1) return Fail(400, "Content-Length given twice");
      if (!base::ParseUint64(h.value, length) || h.value.size() > 18) {
        return Fail(400, absl::StrCat("bad Content-Length \"", Excerpt(h.value), "\""));
      }
    } else if (h.name == "transfer-encoding") {
      ++encodings;
      std::string lower;
      for (char c : h.value) lower.push_back(base::AsciiLower(c));
      chunked |= lower.find("chunked") != std::string::npos;
    } else if (h.name == "expect") {
      // The only expectation defined (RFC 9110 10.1.1); its token is
      // case-insensitive.
      if (!base::EqualsIgnoreCase(h.value, "100-continue")) {
        return Fail(417, absl::StrCat("unsupported expectation \"", Excerpt(h.value),
                                      "\" (only 100-continue is)"));
      }
      expect = true;
    } else if (h.name == "connection") {
      std::string_view rest = h.value;
      while (!rest.empty()) {
        const size_t comma = rest.find(',');
        const std::string_view token = TrimWhitespace(rest.substr(0, comma));
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
        close |= base::EqualsIgnoreCase(token, "close");
        keep_alive |= base::EqualsIgnoreCase(token, "keep-alive");
      }
    }
  }
  if (encodings > 0 && lengths > 0) {
    return Fail(400, "both Content-Length and Transfer-Encoding (ambiguous framing)");
  }
  if (chunked) {
    return Fail(411, "chunked request bodies are not accepted; send Content-Length");
  }
  if (encodings > 0) return Fail(501, "Transfer-Encoding is not implemented; send Content-Length");
  if (hosts > 1) return Fail(400, "Host given twice");
  if (hosts == 0 && request_.version_minor == 1) {
    return Fail(400, "no Host header (HTTP/1.1 requires one)");
  }
  request_.keep_alive = !close && (request_.version_minor == 1 || keep_alive);
  const bool large = !limits_.large_path.empty() && request_.path == limits_.large_path;
  const size_t max = large ? limits_.max_large_request_bytes : limits_.max_request_bytes;
  const size_t room = head_.size() >= max ? 0 : max - head_.size();
  if (length > room || head_.size() > max) {
    return Fail(
        413,
        absl::StrCat("request of ", head_.size() + length, " bytes is larger than the limit (http.",
                     large ? "max_inject_bytes" : "max_request_bytes", " = ", max, ")"));
  }
  body_left_ = static_cast<size_t>(length);
  // A 1.0 client does not know 100 (RFC 9110 15.2); no body, nothing to wait for.
  expect_continue_ = expect && request_.version_minor == 1 && body_left_ > 0;
  request_.body.reserve(body_left_);
  state_ = State::kBody;
  if (body_left_ == 0) FeedBody({});
  return true;
}

Request RequestParser::TakeRequest() {
  Request out = std::move(request_);
  request_ = Request();
  state_ = State::kHead;
  if (head_.capacity() > 4096) {
    head_ = std::string();
  } else {
    head_.clear();
  }
  leading_empty_ = 0;
  prev_cr_ = false;
  line_start_ = 0;
  body_left_ = 0;
  expect_continue_ = false;
  continue_sent_ = false;
  return out;
}

}  // namespace sluice::http
