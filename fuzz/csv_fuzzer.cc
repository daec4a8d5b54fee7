// pickup::CsvReader and pickup::BatchBuilder on arbitrary bytes (a dropped
// recipients file is untrusted), with small limits so record-size,
// field-count, value and recipient limits are reached.
//
// Checks: the records do not depend on how the input is split into chunks
// (the first byte picks a split point); every record respects the limits;
// line numbers never go backwards; the builder's packed recipients decode
// (spool::DecodeEnvelope) into exactly the accepted recipients, each with
// one value per template field, none with CR, LF or NUL, none longer than
// the value limit.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/pickup/batch.h"
#include "sluice/pickup/csv.h"
#include "sluice/spool/message_file.h"

#define FUZZ_CHECK(c) ((c) ? (void)0 : std::abort())

using namespace sluice;

namespace {

struct Rec {
  size_t line;
  std::vector<std::string> fields;
  std::string error;
  bool operator==(const Rec&) const = default;
};

std::vector<Rec> Read(std::string_view in, size_t split, const pickup::CsvLimits& limits) {
  std::vector<Rec> out;
  pickup::CsvReader r(limits, [&](const pickup::CsvRecord& rec) {
    Rec x{rec.line, {}, rec.error};
    for (std::string_view f : rec.fields) x.fields.emplace_back(f);
    out.push_back(std::move(x));
  });
  if (split == 0) {
    r.Feed(in);
  } else {
    for (size_t i = 0; i < in.size(); i += split) r.Feed(in.substr(i, split));
  }
  r.Finish();
  return out;
}

const pickup::PreparedTemplate& Template() {
  static const pickup::PreparedTemplate* t = [] {
    auto* p = new pickup::PreparedTemplate;
    pickup::BatchError e;
    pickup::BatchLimits l;
    if (!pickup::PrepareTemplate("t.eml",
                                 "To: {{name}} <{{email}}>\r\nSubject: {{s}}\r\n\r\n{{s}}{{s}}\r\n",
                                 l, *p, e)) {
      std::abort();
    }
    return p;
  }();
  return *t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t split = data[0] % 17;
  const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  pickup::CsvLimits limits;
  limits.max_record_size = 300;
  limits.max_fields = 6;
  const std::vector<Rec> whole = Read(in, 0, limits);
  FUZZ_CHECK(Read(in, split, limits) == whole);
  size_t last_line = 0;
  for (const Rec& r : whole) {
    FUZZ_CHECK(r.line >= last_line);
    last_line = r.line;
    if (!r.error.empty()) {
      FUZZ_CHECK(r.fields.empty());
      continue;
    }
    FUZZ_CHECK(!r.fields.empty() && r.fields.size() <= limits.max_fields);
    size_t bytes = 0;
    for (const std::string& f : r.fields) bytes += f.size();
    FUZZ_CHECK(bytes <= limits.max_record_size);
  }

  pickup::BatchLimits bl;
  bl.max_record_size = 300;
  bl.max_columns = 6;
  bl.max_value_length = 40;
  bl.max_recipients = 50;
  bl.max_line_length = 100;
  bl.max_reported_lines = 5;
  const pickup::PreparedTemplate& t = Template();
  pickup::BatchBuilder b(t, "t.eml", "r.csv", bl);
  bool ok = true;
  for (size_t i = 0; ok && i < in.size(); i += split == 0 ? in.size() : split) {
    ok = b.Feed(in.substr(i, split == 0 ? in.size() : split));
  }
  ok = ok && b.Finish();
  if (!ok) {
    FUZZ_CHECK(!b.error().reason.empty());
    return 0;
  }
  FUZZ_CHECK(b.accepted() > 0 && b.accepted() <= bl.max_recipients);
  FUZZ_CHECK(b.notes().size() <= bl.max_reported_lines && b.notes().size() <= b.skipped());
  const std::vector<std::string_view> addresses = b.Addresses();
  FUZZ_CHECK(addresses.size() == b.accepted());
  spool::Envelope e;
  e.id = base::QueueId(uint64_t{1} << 20);
  e.merge_fields = t.compiled.fields;
  e.packed_recipients = b.TakePacked();
  e.packed_count = b.accepted();
  auto d = spool::DecodeEnvelope(spool::EncodeEnvelope(std::move(e)));
  FUZZ_CHECK(d.ok() && d->recipients.size() == addresses.size());
  for (size_t i = 0; i < addresses.size(); ++i) {
    const spool::Recipient& r = d->recipients[i];
    FUZZ_CHECK(r.address == addresses[i]);
    FUZZ_CHECK(r.values.size() == t.compiled.fields.size());
    for (const std::string& v : r.values) {
      FUZZ_CHECK(v.size() <= bl.max_value_length);
      FUZZ_CHECK(v.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos);
    }
  }
  return 0;
}
