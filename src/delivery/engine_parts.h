// The engine's private types, shared by its pieces (engine.cc and the
// engine_*.cc files beside it): a destination with its connections, a
// queued message's place in the spool, a job on its way, the limits they
// share. Not for other modules: include/sluice/delivery/engine.h only names
// them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "outcome.h"
#include "sluice/delivery/engine.h"

namespace sluice::delivery {

inline constexpr size_t kFileCache = 64;         // open spool files kept for reading records
inline constexpr size_t kMaxTargets = 20;        // addresses tried per connection
inline constexpr size_t kBodyPiece = 16 * 1024;  // body bytes handed to the session at once
// Records read at once for jobs decided without a connection (LoadDetached).
inline constexpr size_t kMaxDetachedLoads = 64;

struct Engine::Destination {
  std::string domain;
  config::OutboundTls tls = config::OutboundTls::kOpportunistic;
  uint64_t plaintext_until_ms = 0;  // opportunistic TLS failed here: clear for a while
  queue::DomainQueue* q = nullptr;
  std::vector<Target> targets;
  uint16_t port = 25;
  bool routed = false;      // a [[route]] next hop, not the domain's MX hosts
  uint64_t expires_ms = 0;  // 0: not resolved
  bool resolving = false;
  bool stale = false;  // a reload changed the next hop while resolving: again
  // A connection failed before its session was ready while others were
  // still open or opening: no new connection until one of them is ready or
  // ends (they tell whether the host answers and how many it takes).
  bool doubtful = false;
  std::vector<OutboundConnection*> conns;
};

// 20 bytes per queued message: the file name is interned (a segment holds
// thousands of records), the rest is the record's place.
struct Engine::Message {
  uint32_t file = 0;  // index into file_names_ (one user of it)
  uint32_t jobs = 0;
  uint32_t offset = 0;  // segments rotate at 64 MiB
  uint32_t length = 0;
  uint16_t dir = 0;
};

// One job on its way: on a connection, or decided without one (DNS failure,
// unreachable destination, administrator's bounce).
struct Engine::Active {
  queue::Job job;
  std::string domain;
  OutboundConnection* conn = nullptr;
  bool detached = false;   // decided without a connection: `preset` is every result
  bool abandoned = false;  // its connection ended before the message started
  bool reported = false;   // already out of the queue (administrator's bounce)
  bool counted = false;    // detached: `preset` already reached the shaping gate
  bool deleted = false;    // `queue delete`: recorded as Deletion, no DSN
  smtp::Reply preset;
  std::string mx, ip;  // detached: the host that failed, if any
  RecordPtr record;    // shared with every job of the message (record_cache.h)
  const spool::ParsedFile* parsed = nullptr;  // into record
  // What goes out after the added headers: the spooled body, or for a mail
  // merge this recipient's rendering of the stored template.
  std::string_view body;
  std::string rendered;
  // DKIM-Signature fields sent before the added headers (SignBody), and
  // their {"d","s"} list for the accounting record.
  std::string_view signatures;
  std::string_view signatures_json;
  dkim::Signed own_signatures;  // a merge recipient's (others live in the record)
  RecipientResults results;
  size_t body_pos = 0;
  bool body_ended = false;
};

}  // namespace sluice::delivery
