// The outcome step of one delivery attempt, as a pure function.
//
// An attempt of one job (a message's recipients for one domain) ends with a
// reply per recipient, or with one reply for all of them (a connection that
// failed, a DNS failure, the administrator's bounce). DecideOutcome turns
// that into what the engine must do: which recipients are final (delivered,
// bounced, deleted, expired), which wait for a retry and when (the queue's
// RetrySchedule), the accounting records to write in order, and whether a
// DSN goes to the sender. DsnInputFor fills the DSN's fields. Neither
// touches a ring, a socket, a file or a clock: the engine (engine_outcome.cc)
// applies the decision, and tests/delivery/outcome_test.cc checks it.
//
// Trusts: the job, its results and the envelope are what the engine holds
// (an index past the envelope's recipients gives an empty address). Limits:
// none of its own; the DSN's are dsn/dsn.h's.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/dsn/dsn.h"
#include "sluice/log/accounting_log.h"
#include "sluice/queue/retry_schedule.h"
#include "sluice/queue/types.h"
#include "sluice/smtp/client_session.h"
#include "sluice/smtp/reply_parser.h"
#include "sluice/spool/message_file.h"

namespace sluice::delivery {

// A reply the relay makes up itself (local: no remote MTA said it).
smtp::Reply MakeReply(int code, std::string_view enhanced, std::string text, bool local = true);
// "550 5.1.1 text; more text": the reply as a receiver would quote it.
std::string Diagnostic(const smtp::Reply& r);
// The DSN Status: field for a failed recipient's last reply.
std::string StatusOf(const smtp::Reply& r, bool expired);

// A recipient (index into the envelope) with the reply that decided it.
struct Final {
  uint32_t index = 0;
  smtp::Reply reply;
};

// Each recipient's reply, in the job's order; nullopt: it got none of its
// own (the attempt ended first), so the attempt's decisive reply applies.
using RecipientResults = std::vector<std::optional<std::pair<smtp::Outcome, smtp::Reply>>>;

struct AttemptInput {
  const queue::Job* job = nullptr;            // recipients, failures so far, queued_at
  const RecipientResults* results = nullptr;  // one per job recipient (or empty: none)
  smtp::Reply decisive;  // ended the attempt; every recipient's for a detached job
  // Already out of its queue (the administrator's bounce or delete): no
  // retry decision, the queue is not told.
  bool reported = false;
  bool deleted = false;  // `queue delete`: Deletion records, never a DSN
  // Null: the record could not be read (no addresses, no DSN).
  const spool::Envelope* envelope = nullptr;
  std::string_view body;  // what followed the added headers (DSN detection)
  const queue::RetrySchedule* retry = nullptr;
  uint64_t now_us = 0;
};

// One accounting record to write: its type, the recipient and the reply.
struct RecordEntry {
  log::DeliveryType type;
  uint32_t index;
  smtp::Reply reply;
};

enum class DsnVerdict : uint8_t {
  kNone,       // nothing failed
  kSend,       // a DSN to the envelope sender
  kDeleted,    // `queue delete`: the administrator asked for silence
  kNoRecord,   // the record was unreadable: no sender to tell
  kUntrusted,  // an unauthenticated outsider's sender: a DSN would be backscatter
  kBounce,     // null sender, or the message is a DSN itself: never bounce a bounce
};

struct AttemptOutcome {
  std::vector<RecordEntry> records;  // in the order to write them
  std::vector<uint32_t> delivered;   // final now
  std::vector<Final> failed;         // bounced, deleted or expired: final once the DSN is durable
  // The recipients that failed transiently, as DomainQueue::Report wants
  // them (it makes the same retry decision: the engine checks they agree).
  // They wait for `retry_at` unless `expired`.
  queue::Job pending;
  std::string defer_reason;  // Diagnostic of the first transient reply
  size_t transient = 0;      // recipients that failed transiently (even if they expired)
  bool expired = false;      // the transient ones reached the message's lifetime
  queue::Micros retry_at = queue::kNever;  // when `pending` is tried again
  DsnVerdict dsn = DsnVerdict::kNone;

  // Nothing of the job is left to try.
  bool done() const { return expired || pending.recipients.empty(); }
};

// The decision for one attempt. Pure: same input, same outcome.
AttemptOutcome DecideOutcome(const AttemptInput& in);

// The DSN for `outcome.failed` (verdict kSend): `envelope`'s sender is told
// by `reporting_mta`; `mx` is the host that gave the remote replies.
dsn::DsnInput DsnInputFor(const AttemptOutcome& outcome, const spool::Envelope& envelope,
                          const std::string& original, const std::string& reporting_mta,
                          const std::string& mx, uint64_t max_age_us, uint64_t now_us);

}  // namespace sluice::delivery
