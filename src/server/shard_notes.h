// The shard's side of the cross-shard mailboxes (io/mailbox.h, with the
// notes of shard_note.h): what it tells the other shards and what it hears.
//
// Out: a queued or recovered message's home shard sends one kJob per
// recipient domain to the domain's owner (OwnerShard); an owner sends kFinal
// to the record's home once the outcome's accounting records reached the log
// file (a crash in between repeats the attempt rather than leave a recipient
// no record accounts for). A post that finds the target's ring full waits in
// the outbox, in order; past limits::kOutboxMax new mail waits (452).
// In: kJob goes to the delivery engine (and the owned-domain counts), kFinal
// to the ledger.
//
// Shard thread only (Drain also after the shard joined). Owns the outbox,
// the finals waiting for the log and the owned-domain counts; the ledger,
// engine and log are the shard's (Attach).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "shard_note.h"
#include "sluice/base/limits.h"
#include "sluice/base/queue_id.h"
#include "sluice/delivery/engine.h"
#include "sluice/delivery/ledger.h"
#include "sluice/io/mailbox.h"
#include "sluice/log/accounting_log.h"
#include "sluice/spool/retry_state.h"

namespace sluice::server {

// What a shard knows about the destinations it owns (the seed of the
// delivery engine's per-domain queues).
struct OwnedDomain {
  uint64_t messages = 0;
  uint64_t recipients = 0;
};

class NoteRouter {
 public:
  NoteRouter(int index, io::Mailboxes<ShardNote>& mailboxes)
      : index_(index), mailboxes_(mailboxes) {}

  // The shard's ledger and accounting log, then its engine (none with
  // --no-delivery): set once in Shard::Init. Before, a kFinal that arrives
  // is dropped and a kJob only counted.
  void Attach(delivery::Ledger* ledger, log::AccountingLog* log) {
    ledger_ = ledger;
    log_ = log;
  }
  void set_engine(delivery::Engine* engine) { engine_ = engine; }

  // ---- out ----
  // Tells each destination's owner about a queued message (its record is in
  // the ledger: the stored hook ran before the commit callback).
  void AnnounceQueued(base::QueueId id, const std::vector<std::string>& recipients);
  // The same for a batch: its addresses as views (no string per recipient).
  void AnnounceQueued(base::QueueId id, const std::vector<std::string_view>& recipients);
  // The jobs of recipients `indexes` of message `id`. `retry`: a recovered
  // message's saved retry state (spool/retry_state.h), or null.
  void AnnounceJobs(base::QueueId id, const delivery::RecordRef& where,
                    const std::vector<std::string>& recipients,
                    const std::vector<uint32_t>& indexes,
                    const std::vector<spool::RetryEntry>* retry = nullptr);
  // A final outcome the engine has just buffered the records of: sent to
  // the record's home once they reached the log file (ReleaseFinals).
  void ReportFinal(base::QueueId id, uint16_t dir, std::vector<uint32_t> recipients);
  // Sends the finals whose records reached the accounting log file.
  void ReleaseFinals();
  bool finals_waiting() const { return !finals_waiting_log_.empty(); }
  // Posts what found a full ring, in order, as far as the rings take it.
  void FlushOutbox();
  bool outbox_empty() const { return outbox_.empty(); }
  bool outbox_full() const { return outbox_.size() >= limits::kOutboxMax; }

  // ---- in ----
  // Takes every note waiting in this shard's mailboxes; returns how many.
  uint64_t Drain();
  const absl::flat_hash_map<std::string, OwnedDomain>& owned_domains() const {
    return owned_domains_;
  }

 private:
  // recipient(i) is the address of envelope recipient i.
  void AnnounceJobs(base::QueueId id, const delivery::RecordRef& where,
                    absl::FunctionRef<std::string_view(uint32_t)> recipient,
                    const std::vector<uint32_t>& indexes,
                    const std::vector<spool::RetryEntry>* retry);
  // Hands a final outcome to its home shard's ledger (this one's, or a note).
  void SendFinal(base::QueueId id, uint16_t dir, std::vector<uint32_t> recipients);
  void Post(int target, ShardNote note);

  const int index_;
  io::Mailboxes<ShardNote>& mailboxes_;
  delivery::Ledger* ledger_ = nullptr;
  delivery::Engine* engine_ = nullptr;
  log::AccountingLog* log_ = nullptr;
  std::vector<std::pair<int, ShardNote>> outbox_;  // posts that found a full ring
  // Finals waiting for their accounting records to reach the file (in
  // order; about one turn's worth): log::AccountingLog::mark().
  struct WaitingFinal {
    uint64_t log_mark;
    base::QueueId id;
    uint16_t dir;
    std::vector<uint32_t> recipients;
  };
  std::deque<WaitingFinal> finals_waiting_log_;
  absl::flat_hash_map<std::string, OwnedDomain> owned_domains_;
};

}  // namespace sluice::server
