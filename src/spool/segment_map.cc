// Maps a segment's bytes into spans by footer-found, verified records
// (spool/segment_map.h). Pure code: bytes in, spans out.
#include "sluice/spool/segment_map.h"

#include <algorithm>
#include <bit>
#include <optional>

#include "absl/strings/str_cat.h"
#include "little_endian.h"
#include "sluice/spool/spool_directory.h"

namespace sluice::spool {
namespace {

// A damaged magic is read as a queued or a retired one only this near it
// (in bits); the two magics are 2 bits apart.
constexpr int kMaxMagicDamageBits = 2;

struct Verified {
  uint64_t start = 0;
  uint64_t length = 0;
  Envelope envelope;
};

// Every record in `all` whose footer, envelope and body verify, found from
// its footer. Sorted by start; at one start the longest first.
std::vector<Verified> FindVerifiedRecords(std::string_view all, const DecodeOptions& options) {
  std::vector<Verified> found;
  for (size_t f = all.find(kFooterMagic);
       f != std::string_view::npos && f + kFooterSize <= all.size();
       f = all.find(kFooterMagic, f + 1)) {
    auto footer = DecodeFooter(all.substr(f, kFooterSize));
    if (!footer.ok()) continue;
    auto length = RecordLengthFromFooter(*footer);
    if (!length.ok() || *length > f + kFooterSize) continue;
    const uint64_t start = f + kFooterSize - *length;
    auto parsed = ParseRecordContent(all.substr(start, *length), options);
    if (!parsed.ok()) continue;
    found.push_back(Verified{start, *length, std::move(parsed->envelope)});
  }
  std::sort(found.begin(), found.end(), [](const Verified& a, const Verified& b) {
    return a.start != b.start ? a.start < b.start : a.length > b.length;
  });
  return found;
}

int BitDistance(std::string_view a, std::string_view b) {
  int bits = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    bits += std::popcount(static_cast<unsigned>(static_cast<uint8_t>(a[i] ^ b[i])));
  }
  return bits;
}

// A verified record: queued or retired, as its magic says.
SegmentSpan Classify(std::string_view all, Verified& r) {
  SegmentSpan span;
  span.offset = r.start;
  span.length = r.length;
  const std::string_view magic = all.substr(r.start, kMagic.size());
  const uint64_t declared = GetU64(all.data() + r.start + kMagic.size());
  const int to_queued = BitDistance(magic, kMagic);
  const int to_retired = BitDistance(magic, kTombstone);
  if (to_retired < to_queued && to_retired <= kMaxMagicDamageBits) {
    span.kind = SpanKind::kRetired;
  } else if (to_queued < to_retired && to_queued <= kMaxMagicDamageBits) {
    span.kind = to_queued == 0 && declared == r.length ? SpanKind::kQueued : SpanKind::kRepairable;
    span.envelope = std::move(r.envelope);
  } else {
    span.kind = SpanKind::kDamaged;
    span.why = "record verifies but its magic is damaged: queued or retired cannot be told";
  }
  return span;
}

bool PreambleMagicAt(std::string_view all, uint64_t pos) {
  if (all.size() - pos < kMagic.size()) return false;
  const std::string_view magic = all.substr(pos, kMagic.size());
  return magic == kMagic || magic == kTombstone;
}

// A record that does not verify but whose intact preamble states a length
// ending exactly at `limit` (the next verified record or the end) or at
// another preamble, before `limit`: that record alone is damaged (or, with
// the retired magic, skipped). Nothing verified lies inside it.
std::optional<SegmentSpan> DamagedRecordAt(std::string_view all, uint64_t pos, uint64_t limit,
                                           const DecodeOptions& options) {
  if (limit - pos < kPreambleSize || !PreambleMagicAt(all, pos)) return std::nullopt;
  const bool retired = all.substr(pos, kTombstone.size()) == kTombstone;
  const uint64_t length = GetU64(all.data() + pos + kMagic.size());
  if (length < kPreambleSize + kFooterSize || length > limit - pos) return std::nullopt;
  if (pos + length != limit && !PreambleMagicAt(all, pos + length)) return std::nullopt;
  SegmentSpan span;
  span.offset = pos;
  span.length = length;
  if (retired) {
    span.kind = SpanKind::kRetired;
    return span;
  }
  span.kind = SpanKind::kDamaged;
  auto parsed = ParseFile(all.substr(pos, length), options);
  span.why =
      parsed.ok() ? "record found only by its preamble" : std::string(parsed.status().message());
  return span;
}

}  // namespace

std::vector<SegmentSpan> MapSegment(std::string_view all, bool newest,
                                    const DecodeOptions& options) {
  std::vector<Verified> records = FindVerifiedRecords(all, options);
  std::vector<SegmentSpan> spans;
  size_t next = 0;
  uint64_t pos = 0;
  while (pos < all.size()) {
    // Records starting inside an earlier one are images inside its body.
    while (next < records.size() && records[next].start < pos) ++next;
    if (next < records.size() && records[next].start == pos) {
      spans.push_back(Classify(all, records[next]));
      pos += records[next].length;
      ++next;
      continue;
    }
    const uint64_t limit = next < records.size() ? records[next].start : all.size();
    if (auto damaged = DamagedRecordAt(all, pos, limit, options)) {
      pos += damaged->length;
      spans.push_back(std::move(*damaged));
      continue;
    }
    SegmentSpan span;
    span.offset = pos;
    span.length = limit - pos;
    if (limit == all.size() && newest) {
      span.kind = SpanKind::kUnfinished;
    } else {
      span.kind = SpanKind::kUnreadable;
      span.why =
          absl::StrCat(span.length, " bytes that hold no verifiable record, before ",
                       limit == all.size() ? "the end of an older segment" : "the next record");
    }
    spans.push_back(std::move(span));
    pos = limit;
  }
  return spans;
}

}  // namespace sluice::spool
