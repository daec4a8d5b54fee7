// spool::ParseFile and DecodeEnvelope on arbitrary bytes. The input is also
// parsed a second time with its checksums made valid (preamble, footer magic,
// version and CRCs patched in), so the fuzzer gets past the CRC-32C checks
// into the offset arithmetic and the envelope decoder. A decoded envelope
// must survive EncodeEnvelope/DecodeEnvelope unchanged.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "sluice/base/crc32c.h"
#include "sluice/spool/message_file.h"

#define FUZZ_CHECK(c) ((c) ? (void)0 : std::abort())

using namespace sluice;

namespace {

void Put32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
uint64_t Get(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

void CheckRoundTrip(const spool::Envelope& e) {
  auto again = spool::DecodeEnvelope(spool::EncodeEnvelope(e));
  FUZZ_CHECK(again.ok() && again->id == e.id && again->sender == e.sender &&
             again->helo == e.helo && again->body_size == e.body_size &&
             again->added_headers == e.added_headers &&
             again->recipients.size() == e.recipients.size());
}

void Parse(std::string_view bytes) {
  auto parsed = spool::ParseFile(bytes);
  if (!parsed.ok()) return;
  FUZZ_CHECK(parsed->body.data() == bytes.data() + 8 &&
             parsed->body.size() == parsed->envelope.body_size);
  CheckRoundTrip(parsed->envelope);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view raw(reinterpret_cast<const char*>(data), size);
  if (auto env = spool::DecodeEnvelope(raw); env.ok()) CheckRoundTrip(*env);
  Parse(raw);

  if (size < 48) return 0;
  std::unique_ptr<char[]> file(new char[size]);  // exact size for ASan
  std::memcpy(file.get(), data, size);
  char* footer = file.get() + size - 40;
  std::memcpy(file.get(), "SLUICEQ1", 8);
  std::memcpy(footer, "SLQEND01", 8);
  Put32(footer + 28, spool::kFormatVersion);
  const uint64_t offset = Get(footer + 8, 8), env_size = Get(footer + 16, 4);
  if (offset >= 8 && offset <= size - 40 && env_size <= size - 40 - offset) {
    Put32(footer + 20, base::Crc32c(0, file.get() + offset, env_size));
    Put32(footer + 24, base::Crc32c(0, file.get() + 8, offset - 8));
  }
  Put32(footer + 36, base::Crc32c(0, footer, 36));
  Parse(std::string_view(file.get(), size));
  return 0;
}
