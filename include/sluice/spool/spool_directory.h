// The spool directory as a whole: layout, start-up recovery and listing.
//
// Layout: <root>/<n>/ holds the files of shard directory n (n = 0, 1, ...),
// <root>/corrupt/ holds files set aside by recovery with a ".why" note.
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

struct QueuedMessage {
  std::string path;
  int directory = 0;  // shard directory number
  uint64_t file_size = 0;
  Envelope envelope;
};

struct RecoveryReport {
  std::vector<QueuedMessage> messages;  // sorted by id
  size_t temporary_removed = 0;
  std::vector<std::string> corrupt;  // "path: reason", already moved aside
  base::QueueId newest;              // the highest id seen, for the id generator
  std::vector<int> directories;      // shard directory numbers present
};

struct ScanOptions {
  bool repair = false;       // remove *.tmp, move corrupt files to corrupt/
  bool verify_body = false;  // read whole files and check the body CRC
};

// Creates <root> and <root>/<n> for n < shards, and <root>/corrupt.
absl::Status PrepareSpool(const std::string& root, int shards);

absl::StatusOr<RecoveryReport> ScanSpool(const std::string& root, const ScanOptions& options);

// Reads one message file fully and verifies it.
absl::StatusOr<std::string> ReadMessageFile(const std::string& path);

// Finds the file of queue id `id` under root (any shard directory).
absl::StatusOr<std::string> FindMessage(const std::string& root, base::QueueId id);

}  // namespace sluice::spool
