// The webhook client's response parser and URL parser: any bytes. A
// complete response never claims more bytes than it was given and has a
// final status; every prefix of a complete response is incomplete or the
// same error; a URL that parses has a host and a target starting with '/'.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "sluice/http/response_parser.h"
#include "sluice/http/url.h"

#define FUZZ_CHECK(c) ((c) ? (void)0 : std::abort())

using namespace sluice;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  auto r = http::ParseResponse(in, 4096);
  if (r.ok() && r->has_value()) {
    FUZZ_CHECK((*r)->consumed <= in.size());
    FUZZ_CHECK((*r)->status >= 200 && (*r)->status <= 599);
    auto shorter = http::ParseResponse(in.substr(0, (*r)->consumed), 4096);
    FUZZ_CHECK(shorter.ok() && shorter->has_value() && (*shorter)->status == (*r)->status);
  }
  auto url = http::ParseUrl(in);
  if (url.ok()) {
    FUZZ_CHECK(!url->host.empty() && !url->target.empty() && url->target[0] == '/');
    FUZZ_CHECK(url->port != 0);
  }
  return 0;
}
