// One recipient domain's queue on its shard: ready jobs, deferred jobs, and
// the shaping gate through which all work leaves.
//
// Jobs live in a slab (a vector of 40-byte Jobs with a free list); the ready
// FIFO holds 4-byte slot numbers and the deferred min-heap 16-byte
// (time, slot) entries, so a deferred one-recipient job costs about 60 bytes
// plus the slab's growth slack.
//
// A delivery loop over one domain (all pure; the caller does the I/O):
//   if (q.MayOpenConnection(now).ok) c = q.OpenConnection(now) ... connect
//   while (auto job = q.TakeReady(c, now)) { send it; q.Report(c, *job, reply, now); }
//   MaySend(c, now) says why it stopped: no work, rate (wait until .at), or the
//   per-connection message limit (close c; a new one may open at once).
//   q.CloseConnection(c)
// After any of these the owner calls QueueSet::Reschedule (or the QueueSet
// wrappers), so the domain's wake-up time is right.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "sluice/queue/retry_schedule.h"
#include "sluice/queue/shaping.h"
#include "sluice/queue/types.h"

namespace sluice::queue {

enum class Gate : uint8_t {
  kYes,             // go ahead
  kNoWork,          // nothing ready
  kSuspended,       // the domain is suspended by the administrator
  kWait,            // a rate limit: try again at `.at`
  kSlotsFull,       // every connection slot is taken: wait for a close
  kConnectionDone,  // this connection sent its maximum of messages: close it
  kBusy,            // this connection has a job in flight
};

struct GateDecision {
  Gate gate = Gate::kNoWork;
  Micros at = kNever;  // for kWait
  bool ok() const { return gate == Gate::kYes; }
};

struct DomainStats {
  size_t ready = 0;              // jobs
  size_t deferred = 0;           // jobs
  size_t in_flight = 0;          // jobs
  size_t held = 0;               // jobs
  size_t recipients = 0;         // in ready + deferred + held jobs
  uint32_t connections = 0;      // open, this domain
  Micros oldest = kNever;        // queued_at of the oldest ready/deferred/held job
  Micros next_attempt = kNever;  // earliest deferred job
  uint32_t scale_permille = 1000;
  bool suspended = false;
  Micros suspended_until = kNever;  // when `suspended`: kNever = until resumed
  bool held_all = false;            // `queue hold --domain`
};

struct ReportResult {
  enum Kind : uint8_t { kDone, kDeferred, kExpired } kind = kDone;
  Micros next_attempt = kNever;  // kDeferred
  std::optional<Job> expired;    // kExpired: the recipients to record as Expiration
  bool backoff = false;          // the reply slowed the destination down
};

class DomainQueue {
 public:
  // `params` and `retry` must outlive the queue (QueueSet owns both).
  DomainQueue(std::string domain, const ShapeParams& params, const RetrySchedule* retry,
              Micros now = 0);
  DomainQueue(std::string domain, const ShapeParams&& params, const RetrySchedule* retry,
              Micros now = 0) = delete;
  DomainQueue(const DomainQueue&) = delete;
  DomainQueue& operator=(const DomainQueue&) = delete;

  const std::string& domain() const { return domain_; }
  ShapingGate& gate() { return gate_; }
  ShapingGate* shared_gate() const { return shared_; }
  // Adds (or with null removes) the MX host's shared budget. Only while no
  // connection is open, since open ones hold slots of the old gate.
  void BindSharedGate(ShapingGate* gate);

  // Work in.
  void Enqueue(Job job);
  void EnqueueDeferred(Job job, Micros when);

  // Moves deferred jobs whose time has come to the ready FIFO.
  void Promote(Micros now);
  // The earliest time this domain can make progress: a deferred job comes
  // due, or (with ready work) a token or a connection slot appears. kNever
  // when it waits only for an event (a connection slot freed, a resume).
  Micros NextWakeup(Micros now);

  // The shaping gate.
  GateDecision MayOpenConnection(Micros now) const;
  ConnectionId OpenConnection(Micros now);  // CHECKs MayOpenConnection
  void CloseConnection(ConnectionId c);
  GateDecision MaySend(ConnectionId c, Micros now) const;
  // The next ready job if MaySend(c) allows it; takes the message token and
  // counts the message against the connection.
  std::optional<Job> TakeReady(ConnectionId c, Micros now);

  // Outcome of a job taken with TakeReady (c may be kNoConnection for a job
  // that never reached a connection). `job.recipients` must hold only the
  // recipients still pending, i.e. those that got a transient failure; when
  // it is empty the job is done (delivered or bounced). `reply` is the reply
  // that decided the attempt: a 2xx counts as a success for recovery, a 421
  // or a matching pattern triggers backoff.
  ReportResult Report(ConnectionId c, Job job, const Reply& reply, Micros now);
  // A reply that ends a connection before any job (421 banner, refused
  // connect): backoff only. True if it triggered a backoff.
  bool ReportConnectionReply(const Reply& reply, Micros now);

  // Administration. A suspension stops new deliveries until `until` (kNever:
  // until Resume); it lifts itself when NextWakeup sees its time has passed.
  void Suspend(Micros until = kNever) {
    suspended_ = true;
    suspended_until_ = until;
  }
  void Resume() {
    suspended_ = false;
    suspended_until_ = kNever;
  }
  bool suspended() const { return suspended_; }
  bool suspended_at(Micros now) const { return suspended_ && now < suspended_until_; }
  // Every deferred job becomes ready now (oldest retry time first).
  void Flush();
  // Removes and returns every queued (not in-flight) job, held ones too:
  // `queue bounce|delete --domain`.
  std::vector<Job> DrainAll();
  // Takes every ready job without a connection or a token; they count as in
  // flight until reported with kNoConnection. For outcomes that decide a whole
  // destination at once: a DNS failure, no MX host reachable.
  std::vector<Job> TakeAllReady();
  // Removes and returns the queued (and held) jobs of one message:
  // `queue bounce|delete --id`.
  std::vector<Job> RemoveMessage(base::QueueId id);

  // Holds (`queue hold`). A held job sits outside the ready FIFO and the
  // deferred heap: nothing delivers, retries or expires it until it is
  // released, and then it is ready at once. A job is held while its domain
  // is held as a whole (HoldAll) or its message id is in the shard's held
  // set (`held_ids`, owned by the QueueSet; consulted on every enqueue, so a
  // held message's in-flight job that defers is held when it comes back).
  void set_held_ids(const absl::flat_hash_set<base::QueueId>* ids) { held_ids_ = ids; }
  // Returns the recipients newly held.
  size_t HoldAll();
  size_t HoldMessage(base::QueueId id);
  // Ends the domain's hold; held jobs whose message is not held by id become
  // ready. Returns their recipients.
  size_t ReleaseAll();
  // Held jobs of `id` become ready unless the whole domain is held. The
  // caller has taken `id` out of the held set first.
  size_t ReleaseMessage(base::QueueId id);
  bool held_all() const { return hold_all_; }

  // Every queued job, ready or deferred (not those in flight), with the time
  // it is due (0: ready now): what a clean stop saves (spool/retry_state.h).
  // Held jobs are included as due now: the hold itself is saved apart.
  void ForEachQueued(absl::FunctionRef<void(const Job&, Micros due)> fn) const;
  // Every queued job with its state and due time (kHeld: 0): `queue messages`.
  void ForEachJob(absl::FunctionRef<void(const Job&, JobState, Micros due)> fn) const;

  // Error texts of failed attempts, interned per domain (Job::last_error):
  // a domain's deferrals mostly share a handful of texts. At most
  // kMaxErrorTexts distinct ones; past that the last slot is overwritten,
  // so the rarest errors may show the newest of them. Forgotten when the
  // queue holds no job at all.
  uint16_t InternError(std::string_view text);
  std::string_view ErrorText(uint16_t index) const;
  static constexpr size_t kMaxErrorTexts = 32;

  DomainStats Stats() const;  // O(jobs) for `oldest`: an admin call
  // Recipients in queued (ready, deferred, held) jobs: kept as jobs come
  // and go, O(1) (metrics read it for every domain every second).
  size_t queued_recipients() const { return queued_recipients_; }
  // queued_at of the oldest queued job (kNever: none). O(1) unless the job
  // that was the oldest has left since the last call: then one pass over
  // the queued jobs finds the new one (so a busy domain costs a pass per
  // metrics snapshot, an idle backlog nothing).
  Micros OldestQueued();
  size_t ready_count() const { return ready_.size() - ready_head_; }
  size_t deferred_count() const { return deferred_.size(); }
  size_t in_flight() const { return in_flight_; }
  uint32_t open_connections() const { return open_; }
  size_t held_count() const { return held_.size(); }
  bool empty() const {
    return ready_count() == 0 && deferred_.empty() && held_.empty() && in_flight_ == 0;
  }

  // QueueSet's bookkeeping: the time this queue is filed under in the wake-up heap.
  Micros scheduled_at = kNever;

 private:
  struct Deferred {
    Micros when;
    uint32_t slot;
  };
  struct Conn {
    uint32_t sent = 0;
    bool open = false;
    bool busy = false;
  };
  uint32_t Store(Job job);
  Job Release(uint32_t slot);
  // Takes a job leaving the queue out of queued_recipients_ and oldest_.
  void Forget(const Job& job);
  uint32_t MessageLimit() const;
  Micros MessageAvailableAt(Micros now) const;
  Micros ConnectionAvailableAt(Micros now) const;
  bool HasIdleUsableConnection() const;
  bool IsHeld(base::QueueId id) const {
    return hold_all_ || (held_ids_ != nullptr && !held_ids_->empty() && held_ids_->contains(id));
  }
  // Moves the queued jobs `pick` selects into held_; returns their recipients.
  size_t HoldWhere(absl::FunctionRef<bool(const Job&)> pick);
  // Moves the held jobs `pick` selects to the ready FIFO; returns recipients.
  size_t ReleaseWhere(absl::FunctionRef<bool(const Job&)> pick);

  std::string domain_;
  ShapingGate gate_;
  ShapingGate* shared_ = nullptr;
  const RetrySchedule* retry_;
  std::vector<Job> slots_;
  std::vector<uint32_t> free_;
  std::vector<uint32_t> ready_;  // FIFO from ready_head_
  size_t ready_head_ = 0;
  std::vector<Deferred> deferred_;  // min-heap on when
  std::vector<Conn> conns_;
  uint32_t open_ = 0;
  uint32_t idle_usable_ = 0;  // open, not busy, below the message limit
  size_t in_flight_ = 0;
  bool suspended_ = false;
  Micros suspended_until_ = kNever;
  std::vector<uint32_t> held_;  // slots of held jobs
  bool hold_all_ = false;
  const absl::flat_hash_set<base::QueueId>* held_ids_ = nullptr;
  std::vector<std::string> errors_;  // Job::last_error - 1
  size_t queued_recipients_ = 0;
  Micros oldest_ = kNever;     // a lower bound while oldest_stale_
  bool oldest_stale_ = false;  // the job that was oldest_ left
};

}  // namespace sluice::queue
