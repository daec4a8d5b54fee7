// The HTTP/1.1 request parser: any bytes, fed whole and in pieces whose sizes
// come from the input itself, must give the same requests or the same error;
// nothing read may exceed the limits, and an error is one of the statuses
// the parser documents.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/http/request_parser.h"
#include "sluice/http/response.h"

#define FUZZ_CHECK(c) ((c) ? (void)0 : std::abort())

using namespace sluice;

namespace {

struct Outcome {
  std::vector<std::string> requests;  // method, path, body of each, joined
  int error = 0;
};

Outcome Run(std::string_view in, const http::Limits& limits, size_t step) {
  http::RequestParser p(limits);
  Outcome out;
  std::string pending;
  for (size_t at = 0; at < in.size(); at += step) {
    pending.append(in.substr(at, step));
    while (!pending.empty()) {
      const size_t used = p.Feed(pending);
      FUZZ_CHECK(used <= pending.size());
      pending.erase(0, used);
      if (p.failed()) break;
      if (p.awaiting_continue()) {
        // Expect: 100-continue: the head is there, no body yet; the
        // listener answers 100 and reads on, as here.
        FUZZ_CHECK(p.in_request() && !p.has_request() && p.head().body.empty());
        p.ContinueSent();
        FUZZ_CHECK(!p.awaiting_continue());
      }
      if (!p.has_request()) {
        FUZZ_CHECK(pending.empty());
        break;
      }
      http::Request r = p.TakeRequest();
      FUZZ_CHECK(r.headers.size() <= limits.max_headers);
      FUZZ_CHECK(r.body.size() <= limits.max_request_bytes);
      FUZZ_CHECK(!r.path.empty() && r.path.find('\0') == std::string::npos);
      FUZZ_CHECK(r.version_minor == 0 || r.version_minor == 1);
      out.requests.push_back(r.method + " " + r.path + " " + r.body + (r.keep_alive ? "+" : "-"));
    }
    if (p.failed()) {
      const int s = p.error().status;
      FUZZ_CHECK(s == 400 || s == 411 || s == 413 || s == 414 || s == 417 || s == 431 || s == 501 ||
                 s == 505);
      FUZZ_CHECK(!p.error().message.empty());
      FUZZ_CHECK(p.Feed("GET / HTTP/1.1\r\n") == 0);
      // The error body is valid ASCII JSON whatever the message holds.
      for (char c : http::JsonError(s, p.error().message).body) {
        FUZZ_CHECK(c == '\n' || (c >= 0x20 && c < 0x7f));
      }
      out.error = s;
      break;
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t step = 1 + data[0] % 17;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  http::Limits limits;
  limits.max_request_line = 256;
  limits.max_head_bytes = 1024;
  limits.max_headers = 8;
  limits.max_request_bytes = 2048;
  const Outcome whole = Run(in, limits, in.empty() ? 1 : in.size());
  const Outcome pieces = Run(in, limits, step);
  FUZZ_CHECK(whole.requests == pieces.requests);
  FUZZ_CHECK(whole.error == pieces.error);
  return 0;
}
