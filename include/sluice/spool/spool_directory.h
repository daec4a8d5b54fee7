// The spool directory as a whole: layout, start-up recovery and listing.
//
// Layout: <root>/<n>/ holds the files of shard directory n (n = 0, 1, ...):
// segments "<id>.seg", message files "<id>.msg", unfinished "<id>.tmp".
// <root>/corrupt/ holds what recovery set aside, each with a ".why" note.
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

struct RecoveryReport {
  std::vector<QueuedMessage> messages;  // sorted by id
  size_t temporary_removed = 0;         // .tmp files and torn segment tails
  std::vector<std::string> corrupt;     // "path: reason", already moved aside
  base::QueueId newest;                 // the highest id seen, for the id generator
  std::vector<int> directories;         // shard directory numbers present
};

struct ScanOptions {
  bool repair = false;       // remove *.tmp, move corrupt files to corrupt/
  bool verify_body = false;  // read whole files and check the body CRC
  bool merge_values = true;  // keep merge records' per-recipient values (DecodeOptions)
};

// Creates <root> and <root>/<n> for n < shards, and <root>/corrupt.
absl::Status PrepareSpool(const std::string& root, int shards);

absl::StatusOr<RecoveryReport> ScanSpool(const std::string& root, const ScanOptions& options);

// Reads one record's bytes (ParseFile verifies them).
absl::StatusOr<std::string> ReadRecord(const RecordLocation& where);

// Finds queue id `id` under root (any shard directory, file or segment).
absl::StatusOr<RecordLocation> FindMessage(const std::string& root, base::QueueId id);

// Marks a record in a segment as set aside (its magic becomes kTombstone),
// so later scans skip it.
inline constexpr std::string_view kTombstone = "SLUICEX1";

}  // namespace sluice::spool
