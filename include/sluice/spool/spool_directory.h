// The spool directory as a whole: layout, start-up recovery and listing.
//
// Layout: <root>/<n>/ holds the files of shard directory n (n = 0, 1, ...):
// segments "<id>.seg", message files "<id>.msg", unfinished "<id>.tmp".
// <root>/corrupt/ holds what recovery set aside, each with a ".why" note.
// <root>/lock is held by the one daemon using the spool (spool_lock.h).
//
// Recovery never deletes what it cannot prove unfinished: segments are
// mapped by verified records (segment_map.h); only the newest segment's
// tail after its last record is cut; everything else that does not verify
// is copied to corrupt/ and then neutralised in place (its preamble becomes
// a retired one spanning it), so it is never delivered and never lost.
// Shard directory n belongs to shard n % shards, so changing --shards
// between runs strands nothing.
//
// This file uses plain blocking POSIX calls on purpose: it runs before the
// shards start (recovery) or in the `sluice queue` command, never inside a
// shard's event loop.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "sluice/base/queue_id.h"
#include "sluice/spool/message_file.h"

namespace sluice::spool {

// Where a record lives: a whole message file (length 0) or a slice of a
// segment.
struct RecordLocation {
  std::string path;
  uint64_t offset = 0;
  uint64_t length = 0;
};

struct QueuedMessage {
  RecordLocation where;
  int directory = 0;  // shard directory number
  Envelope envelope;
};

// What a scan found that it could not take as it was, by kind. The names
// are stable (labels of a metric); see docs/ARCHITECTURE.md "Recovery".
struct RecoveryCounts {
  size_t unfinished_tails = 0;       // newest segment's tail after its last record: cut
  size_t temporary_files = 0;        // *.tmp: removed
  size_t empty_segments = 0;         // segments without a byte: removed
  size_t retired_segments = 0;       // segments of retired records only: removed
  size_t repaired_preambles = 0;     // verified record, damaged magic/length: rewritten
  size_t damaged_records = 0;        // a record that fails its checks: set aside alone
  size_t unreadable_spans = 0;       // bytes between records holding none: set aside
  size_t damaged_message_files = 0;  // *.msg that fail their checks: set aside
  size_t set_aside() const { return damaged_records + unreadable_spans + damaged_message_files; }
};
// "name=count" for every kind, in a fixed order, for the recovery log line.
std::string DescribeCounts(const RecoveryCounts& counts);

struct RecoveryReport {
  std::vector<QueuedMessage> messages;  // sorted by id
  size_t temporary_removed = 0;         // .tmp files and torn segment tails
  std::vector<std::string> corrupt;     // "path: reason", set aside (with repair)
  RecoveryCounts counts;
  base::QueueId newest;          // the highest id seen, for the id generator
  std::vector<int> directories;  // shard directory numbers present
};

struct ScanOptions {
  // Remove *.tmp, empty segments and the newest segment's unfinished tail;
  // copy what does not verify to corrupt/ (a ".why" note beside each) and
  // neutralise it in place; rewrite damaged preambles of verified records.
  // Only under the spool lock (spool_lock.h): nothing else may be writing.
  bool repair = false;
  bool verify_body = false;  // read whole files and check the body CRC
  bool merge_values = true;  // keep merge records' per-recipient values (DecodeOptions)
};

// Creates <root> and <root>/<n> for n < shards, and <root>/corrupt (with
// shards 0: the root and corrupt/ only, enough to take the lock).
absl::Status PrepareSpool(const std::string& root, int shards);

absl::StatusOr<RecoveryReport> ScanSpool(const std::string& root, const ScanOptions& options);

// Reads one record's bytes (ParseFile verifies them).
absl::StatusOr<std::string> ReadRecord(const RecordLocation& where);

// Finds queue id `id` under root (any shard directory, file or segment).
absl::StatusOr<RecordLocation> FindMessage(const std::string& root, base::QueueId id);

// Marks a record in a segment as retired, delivered or set aside (its magic
// becomes kTombstone), so later scans skip it.
inline constexpr std::string_view kTombstone = "SLUICEX1";

}  // namespace sluice::spool
