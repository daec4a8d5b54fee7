// An incremental HTTP/1.1 request parser (RFC 9110, RFC 9112): bytes in,
// complete requests out. Pure: no sockets, no files, no clock; fuzzed alone
// (fuzz/http_request_fuzzer.cc).
//
// What it trusts: nothing. Every byte comes from a stranger on the network.
// What it accepts: origin-form targets ("/path?query"), HTTP/1.0 and 1.1,
// bodies framed by Content-Length only. It refuses, each with its own status
// and a message naming the problem (ParseError):
//   400  malformed request line or header, bare CR, bare LF, NUL or another
//        control character, obs-fold (a header line that starts with a space),
//        whitespace before a header's colon, a bad or duplicated
//        Content-Length, Content-Length together with Transfer-Encoding, no
//        Host (HTTP/1.1) or two of them, a bad percent-escape
//   411  Transfer-Encoding: chunked (send Content-Length instead)
//   417  an Expect other than 100-continue (RFC 9110 10.1.1)
//   501  any other Transfer-Encoding
//   414  a request line longer than Limits::max_request_line
//   431  a header section (request line and headers) longer than
//        Limits::max_head_bytes, or more than Limits::max_headers fields
//   413  a request (head and body) longer than Limits::max_request_bytes
//   505  an HTTP version other than 1.0 and 1.1
// After an error the parser consumes nothing more: the connection must answer
// and close (the framing of whatever follows is unknown).
//
// Expect: 100-continue (RFC 9110 10.1.1): the parser only reports it. Once
// the head of such a request is parsed and no byte of its body has arrived,
// awaiting_continue() is true and head() holds the request line and
// headers, so the caller can decide before the body is sent: answer
// "100 Continue" (ContinueSent()) and read on, or send the final status
// and close. A client that sends its body without waiting is simply read.
//
// Pipelining: Feed() stops at the end of a complete request, so the bytes of
// the next one stay with the caller until it has taken this one. Memory is
// bounded by the limits: the head is copied (at most max_head_bytes), the
// body is copied (at most max_request_bytes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::http {

struct Limits {
  // RFC 9112 3 recommends supporting request lines of at least 8,000 octets.
  size_t max_request_line = 8 * 1024;
  // Request line and header fields with their CRLFs and the empty line.
  // 32 KiB holds any sane set of headers (nginx's default large buffers
  // are 4 x 8 KiB); the admin and metrics requests need a few hundred bytes.
  size_t max_head_bytes = 32 * 1024;
  // Header fields per request; an HTTP client sends a dozen at most.
  size_t max_headers = 64;
  // The whole request: head and body (http.max_request_bytes).
  size_t max_request_bytes = 64 * 1024;
  // One path may take larger requests (the injection API: a whole message,
  // http.max_inject_bytes); "" for none.
  std::string large_path;
  size_t max_large_request_bytes = 0;
};

// Leading empty lines skipped before a request line (RFC 9112 2.2: a server
// SHOULD ignore at least one; clients that pipeline sometimes send a CRLF
// after a body). More is garbage.
inline constexpr size_t kMaxLeadingEmptyLines = 4;

struct Header {
  std::string name;   // lower case
  std::string value;  // leading and trailing whitespace removed
};

struct Request {
  std::string method;  // as sent (case-sensitive, RFC 9110 9.1)
  std::string target;  // as sent: "/path?query"
  std::string path;    // percent-decoded
  std::string raw_query;
  std::vector<std::pair<std::string, std::string>> query;  // decoded, '+' is a space
  int version_minor = 1;                                   // HTTP/1.<minor>
  std::vector<Header> headers;
  std::string body;
  bool keep_alive = true;  // after the response, the connection stays open

  // The first field named `lower_name` (lower case), or nullptr.
  const std::string* FindHeader(std::string_view lower_name) const;
  // The first query (or form) parameter named `name`, or nullptr.
  const std::string* Param(std::string_view name) const;
};

struct ParseError {
  int status = 400;
  std::string message;  // says what was wrong, for the JSON error body
};

class RequestParser {
 public:
  explicit RequestParser(Limits limits = {}) : limits_(limits) {}

  // Takes bytes until a request is complete or an error is found; returns
  // how many it consumed (the rest belongs to the next request). Feeding
  // while has_request() or failed() consumes nothing.
  size_t Feed(std::string_view bytes);

  bool has_request() const { return state_ == State::kDone; }
  bool failed() const { return state_ == State::kFailed; }
  const ParseError& error() const { return error_; }
  // True once any byte of a request arrived and it is not complete yet (an
  // idle keep-alive connection has none: the header timeout applies then).
  bool in_request() const {
    return state_ == State::kHead ? !head_.empty() : state_ == State::kBody;
  }

  // The request line and headers, once the head is parsed (while the body
  // arrives, and after a framing error found in the head: the 413 of a too
  // large request names its path).
  const Request& head() const { return request_; }
  // An HTTP/1.1 request with "Expect: 100-continue" and a body is parsed up
  // to its body, no body byte has arrived and nobody answered it yet.
  bool awaiting_continue() const {
    return state_ == State::kBody && expect_continue_ && !continue_sent_ && request_.body.empty();
  }
  // The caller sent "100 Continue" (or decided not to): awaiting_continue()
  // turns false for this request.
  void ContinueSent() { continue_sent_ = true; }

  // The complete request; the parser starts on the next one.
  Request TakeRequest();

  void set_limits(const Limits& limits) { limits_ = limits; }
  const Limits& limits() const { return limits_; }

 private:
  enum class State : uint8_t { kHead, kBody, kDone, kFailed };
  size_t FeedHead(std::string_view bytes);
  size_t FeedBody(std::string_view bytes);
  // The head is complete in head_: parses it into request_.
  bool ParseHead();
  bool ParseRequestLine(std::string_view line);
  bool ParseHeaderLine(std::string_view line);
  bool CheckFraming();
  bool Fail(int status, std::string message);

  Limits limits_;
  State state_ = State::kHead;
  std::string head_;
  size_t leading_empty_ = 0;  // CRLFs skipped before this request
  bool prev_cr_ = false;      // the last head byte was CR
  size_t line_start_ = 0;     // where the current head line starts in head_
  size_t body_left_ = 0;
  bool expect_continue_ = false;  // this request asked for 100 Continue
  bool continue_sent_ = false;
  Request request_;
  ParseError error_;
};

// Percent-decoding (RFC 3986 2.1). `plus_is_space`: the query and form
// encoding (application/x-www-form-urlencoded). Fails on a '%' without two
// hex digits and on a decoded NUL.
std::optional<std::string> PercentDecode(std::string_view in, bool plus_is_space);
// "a=1&b=x+y" -> {{"a","1"},{"b","x y"}}; nullopt on a bad escape.
std::optional<std::vector<std::pair<std::string, std::string>>> ParseQuery(std::string_view in);

}  // namespace sluice::http
