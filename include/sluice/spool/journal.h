// The delivery journal: per-recipient final outcomes of messages that are
// still partly queued.
//
// A message whose recipients all reach a final outcome together (the bulk
// case: one recipient, or one domain answering for all) needs no journal: its
// record is tombstoned in place (spool_directory.h's kTombstone) and that is
// the durable fact. Only when some recipients are final while others still
// wait does the owning shard append "recipient i of message m is final" here,
// so that after a crash recovery neither delivers nor bounces them again.
//
// File: "<spool>/<n>/journal-<seq>.jnl", a sequence of 24-byte entries:
//   u64 queue id | u32 recipient index | "SJR1" | u32 reserved (0) | u32 CRC-32C
// (over the 20 bytes before it), little-endian. Entries are appended and
// fdatasynced once per loop turn; a torn tail (a crash mid-append) simply
// ends the journal. A journal file is deleted once every message it mentions
// is gone; recovery compacts whatever is left.
//
// Pure code plus blocking helpers for start-up (recovery runs before the
// shards' loops).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "sluice/base/queue_id.h"

namespace sluice::spool {

inline constexpr size_t kJournalEntrySize = 24;
inline constexpr std::string_view kJournalPrefix = "journal-";
inline constexpr std::string_view kJournalSuffix = ".jnl";

struct JournalEntry {
  base::QueueId id;
  uint32_t recipient = 0;
  friend bool operator==(const JournalEntry&, const JournalEntry&) = default;
};

void AppendJournalEntry(std::string& out, const JournalEntry& entry);

// Entries up to the first one that does not check out (a torn or damaged
// tail); `valid_bytes` (optional) is how far that is.
std::vector<JournalEntry> ParseJournal(std::string_view bytes, size_t* valid_bytes = nullptr);

// "journal-<seq>.jnl" with seq zero-padded to 8 digits; 0 if `name` is not one.
std::string JournalFileName(uint64_t seq);
uint64_t JournalSequence(std::string_view name);

struct JournalScan {
  std::vector<JournalEntry> entries;
  std::vector<std::string> files;  // absolute paths of every journal read
  uint64_t highest_sequence = 0;   // per directory scanned, the max
};

// Reads every journal in directory `dir` (blocking; start-up only).
absl::StatusOr<JournalScan> ReadJournals(const std::string& dir);

}  // namespace sluice::spool
