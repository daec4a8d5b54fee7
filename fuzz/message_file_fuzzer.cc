// spool::ParseFile and DecodeEnvelope on arbitrary bytes. The input is also
// parsed a second time with its checksums made valid (preamble, footer magic,
// version and CRCs patched in), so the fuzzer gets past the CRC-32C checks
// into the offset arithmetic and the envelope decoder. A decoded envelope
// must survive EncodeEnvelope/DecodeEnvelope unchanged, and so must the same
// envelope with its recipients packed (PackRecipient, the batch path),
// merge fields, values, campaign and tenant included. Decoding without the
// values (DecodeOptions) must give the same verdict and addresses.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

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

bool SameRecipients(const spool::Envelope& a, const spool::Envelope& b) {
  if (a.recipients.size() != b.recipients.size()) return false;
  for (size_t i = 0; i < a.recipients.size(); ++i) {
    if (a.recipients[i].address != b.recipients[i].address ||
        a.recipients[i].values != b.recipients[i].values) {
      return false;
    }
  }
  return true;
}

bool Same(const spool::Envelope& a, const spool::Envelope& b) {
  return a.id == b.id && a.sender == b.sender && a.helo == b.helo && a.body_size == b.body_size &&
         a.added_headers == b.added_headers && a.origin == b.origin && a.campaign == b.campaign &&
         a.tenant == b.tenant && a.merge_fields == b.merge_fields && SameRecipients(a, b);
}

void CheckRoundTrip(const spool::Envelope& e) {
  FUZZ_CHECK(e.merge_fields.size() <= spool::kMaxMergeFields);
  for (const spool::Recipient& r : e.recipients)
    FUZZ_CHECK(r.values.size() == e.merge_fields.size());
  auto again = spool::DecodeEnvelope(spool::EncodeEnvelope(e));
  FUZZ_CHECK(again.ok() && Same(*again, e));
  // The batch path: recipients packed, encoded by move.
  spool::Envelope packed = e;
  packed.recipients.clear();
  for (const spool::Recipient& r : e.recipients) {
    std::vector<std::string_view> values(r.values.begin(), r.values.end());
    spool::PackRecipient(packed.packed_recipients, r.address, values);
    ++packed.packed_count;
  }
  FUZZ_CHECK(packed.recipient_count() == e.recipients.size());
  auto unpacked = spool::DecodeEnvelope(spool::EncodeEnvelope(std::move(packed)));
  FUZZ_CHECK(unpacked.ok() && Same(*unpacked, e));
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
  auto env = spool::DecodeEnvelope(raw);
  if (env.ok()) CheckRoundTrip(*env);
  // Without the values: the same verdict and the same addresses.
  auto bare = spool::DecodeEnvelope(raw, spool::DecodeOptions{.merge_values = false});
  FUZZ_CHECK(bare.ok() == env.ok());
  if (env.ok()) {
    FUZZ_CHECK(bare->recipients.size() == env->recipients.size());
    for (size_t i = 0; i < env->recipients.size(); ++i) {
      FUZZ_CHECK(bare->recipients[i].address == env->recipients[i].address &&
                 bare->recipients[i].values.empty());
    }
  }
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
