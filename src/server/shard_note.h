// What shards tell each other through io::Mailboxes: small values, moved
// through a bounded ring. A queued or recovered message's home shard (the one
// owning its spool directory) sends one kJob per recipient domain to the
// domain's owner (OwnerShard), whose delivery engine queues it; the owner
// sends kFinal back when recipients are delivered, bounced or expired, and
// the home shard's ledger makes that durable.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/base/queue_id.h"

namespace sluice::server {

struct ShardNote {
  enum class Kind : uint8_t {
    kJob,    // to a domain's owner: deliver `recipients` of `id` at `domain`
    kFinal,  // to a record's home: `recipients` of `id` reached a final outcome
  };
  Kind kind = Kind::kJob;
  base::QueueId id;
  uint16_t dir = 0;                  // the spool directory holding the record
  std::string domain;                // kJob: lower-case
  std::string file;                  // kJob: the record's file in `dir`
  uint64_t offset = 0;               // kJob
  uint64_t length = 0;               // kJob (0: to the end of the file)
  std::vector<uint32_t> recipients;  // indexes into the envelope's recipients
  // kJob, after a clean restart (spool/retry_state.h): the transient
  // failures these recipients had, and when their next attempt is due.
  uint16_t failures = 0;
  uint64_t due_us = 0;  // wall clock; 0: now
};

// The shard that owns a destination domain. FNV-1a: stable across threads,
// runs and builds, so a domain's queue always lives in the same shard.
inline int OwnerShard(std::string_view domain, int shards) {
  uint64_t h = 14695981039346656037ull;
  for (char c : domain) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return static_cast<int>(h % static_cast<uint64_t>(shards));
}

}  // namespace sluice::server
