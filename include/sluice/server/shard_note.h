// What shards tell each other through io::Mailboxes: small values, moved
// through a bounded ring. Today: "message ID holds N recipients at DOMAIN",
// sent to the shard that owns DOMAIN (OwnerShard) when a message is queued
// or recovered. The delivery engine builds its per-domain queues from these.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "sluice/base/queue_id.h"

namespace sluice::server {

struct ShardNote {
  base::QueueId id;
  uint32_t recipients = 0;
  std::string domain;  // lower-case
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
