// AUTH's decoding: the AUTH argument, base64 responses and PLAIN's fields.
// Checks that decoding is canonical (re-encoding gives the input back) and
// that PLAIN's fields respect their limits and hold no NUL.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "sluice/base/base64.h"
#include "sluice/smtp/sasl.h"

#define FUZZ_CHECK(c) ((c) ? (void)0 : std::abort())

using namespace sluice;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  const smtp::AuthArgument a = smtp::ParseAuthArgument(in);
  if (a.has_initial) FUZZ_CHECK(a.initial.data() >= in.data() && a.initial.size() < in.size());

  if (auto decoded = base::Base64Decode(in)) {
    FUZZ_CHECK(base::Base64Encode(*decoded) == in);  // one encoding per byte string
  }
  if (auto decoded = smtp::DecodeSaslResponse(in)) {
    if (auto c = smtp::ParsePlain(*decoded)) {
      FUZZ_CHECK(!c->user.empty() && !c->password.empty());
      FUZZ_CHECK(c->user.size() <= smtp::kSaslFieldMax &&
                 c->password.size() <= smtp::kSaslFieldMax);
      FUZZ_CHECK(c->user.find('\0') == std::string::npos);
    }
  }
  // The raw input as a PLAIN message too (the decoded form).
  if (auto c = smtp::ParsePlain(in)) {
    FUZZ_CHECK(c->authzid.size() + c->user.size() + c->password.size() + 2 == in.size());
  }
  return 0;
}
