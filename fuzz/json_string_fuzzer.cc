// The accounting log's JSON string escaper on any bytes. Checks that the
// output is strict UTF-8 with no raw control byte, is exactly one strict
// JSON string literal, and decodes to the input's well-formed characters
// with every other byte b as U+00b (so nothing is dropped or invented). The
// checker (tests/log/strict_json.h) is written apart from the escaper.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "sluice/log/json.h"
#include "strict_json.h"

#define FUZZ_CHECK(c) ((c) ? (void)0 : std::abort())

using namespace sluice;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string out = "prefix";
  log::AppendJsonString(out, in);
  const std::string_view literal = std::string_view(out).substr(6);
  FUZZ_CHECK(out.compare(0, 6, "prefix") == 0);
  FUZZ_CHECK(log::strict::IsUtf8(literal));
  for (char c : literal) FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20);
  const auto text = log::strict::DecodeString(literal);
  FUZZ_CHECK(text.has_value());
  FUZZ_CHECK(*text == log::strict::ExpectedText(in));
  // Well-formed input is copied, except what must be escaped.
  for (size_t i = 0; i < in.size();) {
    const size_t n = log::WellFormedUtf8Length(in, i);
    FUZZ_CHECK(n == (log::strict::DecodeUtf8(in, i) ? log::strict::DecodeUtf8(in, i)->second : 0));
    i += n == 0 ? 1 : n;
  }
  return 0;
}
