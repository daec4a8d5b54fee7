// The retry state carried across a clean restart.
//
// Transient failures are scheduled in memory (queue::DomainQueue): writing
// every deferral to disk would cost an append per recipient per retry round
// for days. Instead, when a shard stops cleanly its delivery engine writes
// every queued job that has failed before: its message, its recipients, its
// failures so far and when its next attempt is due. The next start reads
// these files before anything else and removes them, so a restart (a deploy,
// an upgrade) neither retries the whole deferred queue at once against
// receivers that asked for a pause nor resets the attempt counts the
// accounting log reports. After a crash there is no file: every recovered
// job is tried at once, its attempts counted from 1 again (docs/ARCHITECTURE.md).
//
// File: "<spool>/<n>/retry.state" (n: the shard that wrote it), a sequence
// of entries, each little-endian:
//   "SRS1" | u64 queue id | u16 failures | u16 reserved (0) | u32 count |
//   u64 next attempt (µs since the epoch; 0: due now) | count × u32 recipient
//   index | u32 CRC-32C of everything before it in the entry
// Parsing stops at the first entry that does not check out. Pure code plus
// blocking helpers for start-up and the end of a shard's run.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sluice/base/queue_id.h"

namespace sluice::spool {

inline constexpr std::string_view kRetryStateName = "retry.state";
// A job holds at most a transaction's recipients; anything larger is damage.
inline constexpr uint32_t kRetryEntryMaxRecipients = 1u << 20;

struct RetryEntry {
  base::QueueId id;
  uint16_t failures = 0;         // transient failures so far (>= 1)
  uint64_t next_attempt_us = 0;  // wall clock; 0: due now
  std::vector<uint32_t> recipients;
  friend bool operator==(const RetryEntry&, const RetryEntry&) = default;
};

void AppendRetryEntry(std::string& out, const RetryEntry& entry);

// Entries up to the first one that does not check out; `valid_bytes`
// (optional) is how far that is.
std::vector<RetryEntry> ParseRetryState(std::string_view bytes, size_t* valid_bytes = nullptr);

// Writes `bytes` to `dir`/retry.state durably: a temporary file, fdatasync,
// rename, directory fsync (blocking: the end of a shard's run).
absl::Status WriteRetryState(const std::string& dir, std::string_view bytes);

// Reads `dir`/retry.state (none: no entries) and removes it, so that state
// is never applied twice: if this run crashes, the next one starts afresh.
absl::StatusOr<std::vector<RetryEntry>> TakeRetryState(const std::string& dir);

}  // namespace sluice::spool
