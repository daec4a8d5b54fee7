// Maps the bytes of one segment file into spans: verified records, records
// already retired, damaged records, unreadable bytes and an unfinished tail.
// Recovery (spool_directory.h) then acts on the map; this part only reads.
//
// Records are found along the preambles' lengths while each leads to a
// record that verifies (the footer there states the same length, and
// footer, envelope and body check out), and where that breaks, by their
// footers: every "SLQEND01" whose footer CRC checks states where its record
// starts (RecordLengthFromFooter), and the first record from the break on
// that verifies is the next one, whatever its preamble says. So one flipped
// bit in a preamble's magic or length costs nothing, and after damage the
// map resynchronises on the next record that verifies. The length field is
// never trusted alone. An intact segment is read once; the search after a
// break is bounded (segment_map.cc: kBudgetPerByte), so message bodies full
// of crafted footers cannot make a start-up take hours.
//
// The preamble's magic is still what tells a queued record ("SLUICEQ1")
// from a retired one ("SLUICEX1": delivered, or set aside earlier). The two
// differ in 2 bits: a damaged magic nearer one than the other is read as
// that one; one equally near both is set aside (never delivered twice,
// never lost).
//
// Only bytes after the last verified record of the directory's newest
// segment, with no record after them, can be an unfinished write; any other
// bytes that do not verify are damage, to be set aside.
//
// Trusts nothing in the bytes. Limit: a message body that itself holds a
// complete, valid record image is never read as a record while the record
// around it has its preamble and footer intact (damaged or not); if either
// of those is damaged too, the image is found like any other record.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/spool/message_file.h"

namespace sluice::spool {

enum class SpanKind {
  kQueued,      // a verified record with an intact preamble
  kRepairable,  // a verified queued record whose preamble is damaged
  kRetired,     // a retired record or a neutralised span: skip
  kDamaged,     // a record whose extent is known but which fails its checks
  kUnreadable,  // bytes between records that hold no record
  kUnfinished,  // the newest segment's tail after its last record
};

struct SegmentSpan {
  SpanKind kind = SpanKind::kUnreadable;
  uint64_t offset = 0;
  uint64_t length = 0;
  std::string why;    // kDamaged / kUnreadable: the reason, for the .why note
  Envelope envelope;  // kQueued / kRepairable
};

// `newest`: the segment is its directory's newest, the only one that can
// have an unfinished tail. The spans cover `bytes` in order, without gaps.
std::vector<SegmentSpan> MapSegment(std::string_view bytes, bool newest,
                                    const DecodeOptions& options);

}  // namespace sluice::spool
