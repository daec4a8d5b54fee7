// Maps a segment's bytes into spans (spool/segment_map.h): a walk along the
// preambles' lengths while they lead to verified records, a search by
// footers from wherever they stop. Pure code: bytes in, spans out.
#include "segment_map.h"

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

// Bytes the search after a break may verify per segment, as a multiple of
// its size plus a floor. An intact segment needs no search (each record is
// checked once, along the preambles); a body full of crafted footers must
// not make a start-up take hours. When it runs out, what is left unfound
// is set aside (never cut).
constexpr uint64_t kBudgetPerByte = 8;
constexpr uint64_t kBudgetFloor = 1 << 20;

// A record whose extent is known: verified, or (damaged) only bounded by a
// preamble and a footer that agree on its length.
struct Verified {
  uint64_t start = 0;
  uint64_t length = 0;
  Envelope envelope;
  bool damaged = false;
  std::string why;  // damaged: what failed
};

int BitDistance(std::string_view a, std::string_view b) {
  int bits = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    bits += std::popcount(static_cast<unsigned>(static_cast<uint8_t>(a[i] ^ b[i])));
  }
  return bits;
}

bool PreambleMagicAt(std::string_view all, uint64_t pos) {
  if (all.size() - pos < kMagic.size()) return false;
  const std::string_view magic = all.substr(pos, kMagic.size());
  return magic == kMagic || magic == kTombstone;
}

class Mapper {
 public:
  Mapper(std::string_view all, bool newest, const DecodeOptions& options)
      : all_(all),
        newest_(newest),
        options_(options),
        budget_(all.size() * kBudgetPerByte + kBudgetFloor) {}

  std::vector<SegmentSpan> Run() {
    uint64_t pos = 0;
    std::optional<Verified> next;         // found by the search, ahead of pos
    uint64_t nothing_after = UINT64_MAX;  // the search found nothing from here on
    while (pos < all_.size()) {
      if (!next) {
        if (auto here = ByPreamble(pos)) {
          pos += Emit(*here);
          continue;
        }
        if (pos < nothing_after) {
          next = ByFooter(pos);
          if (!next) nothing_after = pos;
        }
      }
      if (next && next->start == pos) {
        pos += next->damaged ? EmitDamaged(*next) : Emit(*next);
        next.reset();
        continue;
      }
      const uint64_t limit = next ? next->start : all_.size();
      if (auto damaged = DamagedRecordAt(pos, limit)) {
        pos += damaged->length;
        spans_.push_back(std::move(*damaged));
        continue;
      }
      Unverified(pos, limit);
      pos = limit;
    }
    return std::move(spans_);
  }

 private:
  // Verifies the record [start, start + length) as its CRCs cover it.
  // The search's checks are `budgeted`. The walk along the preambles is
  // not: it checks once at each record boundary, where the bytes are ours
  // (a preamble Sluice wrote) unless damage moved the boundary.
  std::optional<Verified> Verify(uint64_t start, uint64_t length, bool budgeted = true) {
    if (budgeted) {
      if (length > budget_) {
        exhausted_ = true;
        return std::nullopt;
      }
      budget_ -= length;
    }
    auto parsed = ParseRecordContent(all_.substr(start, length), options_);
    if (!parsed.ok()) return std::nullopt;
    return Verified{start, length, std::move(parsed->envelope)};
  }

  // The length of the record at `pos` when its preamble and the footer
  // where that puts it agree on it; 0 otherwise.
  uint64_t ExtentByPreamble(uint64_t pos) const {
    if (all_.size() - pos < kPreambleSize + kFooterSize) return 0;
    const uint64_t length = GetU64(all_.data() + pos + kMagic.size());
    if (length < kPreambleSize + kFooterSize || length > all_.size() - pos) return 0;
    auto footer = DecodeFooter(all_.substr(pos + length - kFooterSize, kFooterSize));
    if (!footer.ok()) return 0;
    auto stated = RecordLengthFromFooter(*footer);
    return stated.ok() && *stated == length ? length : 0;
  }

  // The record at `pos` as its preamble's length and the footer there say.
  std::optional<Verified> ByPreamble(uint64_t pos) {
    const uint64_t length = ExtentByPreamble(pos);
    if (length == 0) return std::nullopt;
    return Verify(pos, length, /*budgeted=*/false);
  }

  // After a break at `pos`: the first record from `pos` on whose footer
  // and content verify, whatever its preamble says. A record bounded by its
  // preamble and footer that starts earlier and holds it wins, verified or
  // damaged (the first was an image inside its body).
  std::optional<Verified> ByFooter(uint64_t pos) {
    std::optional<Verified> found;
    for (size_t f = all_.find(kFooterMagic, pos + kPreambleSize);
         f != std::string_view::npos && f + kFooterSize <= all_.size() && !exhausted_;
         f = all_.find(kFooterMagic, f + 1)) {
      auto footer = DecodeFooter(all_.substr(f, kFooterSize));
      if (!footer.ok()) continue;
      auto length = RecordLengthFromFooter(*footer);
      if (!length.ok() || *length > f + kFooterSize || f + kFooterSize - *length < pos) continue;
      found = Verify(f + kFooterSize - *length, *length);
      if (found) break;
    }
    if (!found) return std::nullopt;
    for (uint64_t q = pos; q < found->start; ++q) {
      if (!PreambleMagicAt(all_, q)) continue;
      const uint64_t length = ExtentByPreamble(q);
      if (length == 0 || q + length <= found->start) continue;
      if (auto outer = Verify(q, length)) return outer;
      if (exhausted_) return std::nullopt;  // cannot tell: the walk goes on
      auto parsed = ParseFile(all_.substr(q, length), options_);
      return Verified{
          q,
          length,
          {},
          true,
          parsed.ok() ? "record holds another" : std::string(parsed.status().message())};
    }
    return found;
  }

  // A verified record: queued or retired, as its magic says.
  uint64_t Emit(Verified& r) {
    SegmentSpan span;
    span.offset = r.start;
    span.length = r.length;
    const std::string_view magic = all_.substr(r.start, kMagic.size());
    const uint64_t declared = GetU64(all_.data() + r.start + kMagic.size());
    const int to_queued = BitDistance(magic, kMagic);
    const int to_retired = BitDistance(magic, kTombstone);
    if (to_retired < to_queued && to_retired <= kMaxMagicDamageBits) {
      span.kind = SpanKind::kRetired;
    } else if (to_queued < to_retired && to_queued <= kMaxMagicDamageBits) {
      span.kind =
          to_queued == 0 && declared == r.length ? SpanKind::kQueued : SpanKind::kRepairable;
      span.envelope = std::move(r.envelope);
    } else {
      span.kind = SpanKind::kDamaged;
      span.why = "record verifies but its magic is damaged: queued or retired cannot be told";
    }
    spans_.push_back(std::move(span));
    return r.length;
  }

  uint64_t EmitDamaged(Verified& r) {
    SegmentSpan span;
    span.kind = all_.substr(r.start, kTombstone.size()) == kTombstone ? SpanKind::kRetired
                                                                      : SpanKind::kDamaged;
    span.offset = r.start;
    span.length = r.length;
    span.why = std::move(r.why);
    spans_.push_back(std::move(span));
    return r.length;
  }

  // A record that does not verify but whose intact preamble states a
  // length ending exactly at `limit` (the next verified record or the end)
  // or at another preamble before it: that record alone is damaged (or,
  // with the retired magic, skipped). Nothing verified lies inside it.
  std::optional<SegmentSpan> DamagedRecordAt(uint64_t pos, uint64_t limit) {
    if (limit - pos < kPreambleSize || !PreambleMagicAt(all_, pos)) return std::nullopt;
    const bool retired = all_.substr(pos, kTombstone.size()) == kTombstone;
    const uint64_t length = GetU64(all_.data() + pos + kMagic.size());
    if (length < kPreambleSize + kFooterSize || length > limit - pos) return std::nullopt;
    if (pos + length != limit && !PreambleMagicAt(all_, pos + length)) return std::nullopt;
    SegmentSpan span;
    span.offset = pos;
    span.length = length;
    if (retired) {
      span.kind = SpanKind::kRetired;
      return span;
    }
    span.kind = SpanKind::kDamaged;
    auto parsed = ParseFile(all_.substr(pos, length), options_);
    span.why =
        parsed.ok() ? "record found only by its preamble" : std::string(parsed.status().message());
    return span;
  }

  // Bytes up to `limit` that hold no record: the unfinished tail when they
  // end the newest segment (and the search did not give up), else damage.
  void Unverified(uint64_t pos, uint64_t limit) {
    SegmentSpan span;
    span.offset = pos;
    span.length = limit - pos;
    if (limit == all_.size() && newest_ && !exhausted_) {
      span.kind = SpanKind::kUnfinished;
    } else {
      span.kind = SpanKind::kUnreadable;
      span.why =
          absl::StrCat(span.length, " bytes that hold no verifiable record, before ",
                       limit == all_.size() ? "the end of an older segment" : "the next record",
                       exhausted_ ? " (the search gave up: verification budget spent)" : "");
    }
    spans_.push_back(std::move(span));
  }

  const std::string_view all_;
  const bool newest_;
  const DecodeOptions& options_;
  uint64_t budget_;
  bool exhausted_ = false;
  std::vector<SegmentSpan> spans_;
};

}  // namespace

std::vector<SegmentSpan> MapSegment(std::string_view all, bool newest,
                                    const DecodeOptions& options) {
  return Mapper(all, newest, options).Run();
}

}  // namespace sluice::spool
