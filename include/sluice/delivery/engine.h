// The delivery engine of one shard: the "owner" side of delivery.
//
// Each recipient domain is owned by one shard (server/shard_note.h's
// OwnerShard). Jobs (message, domain, recipient indexes) arrive here through
// the mailboxes; the engine keeps them in the pure queue::QueueSet (per-domain
// queues, shaping gates, retry heap), resolves the domain with the shard's
// dns::Resolver (or follows a configured route), opens OutboundConnections
// within the shaping limits, reads each message's record back from the spool
// and hands it to the connection's smtp::ClientSession.
//
// Outcomes: delivered, bounced (5xx, null MX, NXDOMAIN) and expired
// recipients are final; the engine writes the accounting record, queues a DSN
// to the sender for bounced and expired ones (never for a <> sender, never
// for a DSN), and tells the record's home shard (Host::ReportFinal) once the
// DSN is durable. Transient failures are deferred on the retry schedule, in
// memory; a clean stop saves that schedule (RetryState, spool/retry_state.h)
// for the next start, a crash loses it: every recovered job is tried again
// at once.
//
// Nothing here blocks: the shard's loop calls Pump() every turn (it only
// touches domains whose wake-up time has come), Tick() from its timer and
// NextWakeupMs() to bound its sleep.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "sluice/base/histogram.h"
#include "sluice/base/queue_id.h"
#include "sluice/config/config.h"
#include "sluice/delivery/admin_state.h"
#include "sluice/delivery/file_names.h"
#include "sluice/delivery/ledger.h"
#include "sluice/delivery/outbound_connection.h"
#include "sluice/delivery/own_addresses.h"
#include "sluice/delivery/record_cache.h"
#include "sluice/dkim/signer.h"
#include "sluice/dns/resolver.h"
#include "sluice/io/loop.h"
#include "sluice/log/accounting_log.h"
#include "sluice/queue/queue_set.h"
#include "sluice/spool/message_file.h"

namespace sluice::delivery {

// What the engine needs from its shard.
class EngineHost {
 public:
  virtual ~EngineHost() = default;
  // Recipients of message `id` (record in spool directory `dir`) are final.
  virtual void ReportFinal(base::QueueId id, uint16_t dir, std::vector<uint32_t> recipients) = 0;
  // Spools a locally generated message (a DSN) from <> and announces it;
  // `done(ok)` once it is durable (or failed).
  virtual void QueueLocal(std::string recipient, std::string message, bool eight_bit,
                          std::function<void(bool)> done) = 0;
  virtual log::AccountingLog& accounting() = 0;
  // This shard owns `domain` (lower case): its jobs come here. A record is
  // read with only the recipients of owned domains (a million-recipient
  // batch costs each shard its own share).
  virtual bool OwnsDomain(std::string_view /*domain*/) const { return true; }
};

struct EngineStats {
  uint64_t jobs_received = 0;
  uint64_t delivered = 0;  // recipients
  uint64_t deferred = 0;
  uint64_t bounced = 0;
  uint64_t expired = 0;
  uint64_t deleted = 0;  // recipients removed by `queue delete` (no DSN)
  uint64_t dsns = 0;
  uint64_t connections_opened = 0;
  uint64_t connection_failures = 0;
  uint64_t record_errors = 0;
  uint64_t dkim_signed = 0;             // messages signed (a merge recipient's copy is one)
  uint64_t dkim_reused = 0;             // jobs that sent a signature made for an earlier job
  uint64_t tls_handshakes = 0;          // outbound STARTTLS handshakes completed
  uint64_t tls_handshake_failures = 0;  // outbound STARTTLS that broke (4.7.5)
  // Acceptance to final outcome (delivered, bounced, expired), per recipient.
  base::Histogram delivery_latency{base::kDeliveryBoundsUs};
};

struct AttemptOutcome;  // outcome.h (private to delivery/)

class Engine final : public ConnectionDelegate {
 public:
  // `dkim`: the shard's signer (nullptr or no signers: mail goes unsigned).
  Engine(io::Loop& ring, const config::Config& config, EngineHost& host, std::string hostname,
         dkim::Signer* dkim = nullptr);
  ~Engine() override;

  absl::Status Init();

  // A job from a home shard: `recipients` of message `id` are for `domain`.
  // A job recovered after a clean stop carries the transient failures it
  // had and when its next attempt is due (wall clock µs; 0: now).
  void AddJob(base::QueueId id, const RecordRef& where, const std::string& domain,
              const std::vector<uint32_t>& recipients, uint16_t failures = 0, uint64_t due_us = 0);
  // Every queued job that has failed before, as spool/retry_state.h entries:
  // what a clean stop leaves for the next start.
  std::string RetryState();

  // Every loop turn: starts the work whose time has come.
  void Pump(uint64_t now_ms);
  // From the shard's timer: session timeouts, idle connections, DNS timers.
  void Tick(uint64_t now_ms);
  // Milliseconds until the engine next needs the loop (capped at max_ms).
  int NextWakeupMs(uint64_t now_ms, int max_ms);

  // Stop: no new connections; idle ones say QUIT, busy ones finish their
  // message. idle() once every connection is gone.
  void BeginStop();

  // A configuration reload: the shard has changed the Config this engine
  // reads (`before` is what it held). Re-derives what was computed from it:
  // the outbound options (new connections), the shaping gates of every
  // queue (queue::QueueSet::SetPolicy), the retry schedule, and the next
  // hop of each known destination: one whose route, port or TLS policy
  // changed is resolved again and its connections QUIT once idle.
  void Reconfigure(const config::Config& before);
  void AbortAll();
  bool idle() const;

  // Administration (the shard's control socket, server/control_socket.h).
  // Each call is an admin command's work on this shard: O(jobs) at most.
  // What the administrator chose survives restarts through AdminStore; the
  // control socket writes it there, the engine only applies it.
  //
  // Start-up: applies the saved suspensions and domain holds of the domains
  // this shard owns (`owned`), and every held message id.
  void ApplyAdminState(const AdminState& state,
                       absl::FunctionRef<bool(std::string_view domain)> owned);
  std::string ListJson();
  size_t Flush(std::string_view domain);  // "" = every domain; returns domains touched
  // Suspends `domain` (also before any mail for it arrived) until `until_us`
  // (0: until resumed). Returns the recipients queued for it now.
  size_t Suspend(std::string_view domain, uint64_t until_us, std::string reason);
  bool Resume(std::string_view domain);  // false: it was not suspended
  // Suspensions in force: a JSON array of {domain, since_us, until_us, reason, recipients}.
  std::string SuspensionsJson();
  // What an id/domain command selects: a message, or a destination domain.
  struct Selector {
    std::optional<base::QueueId> id;
    std::string domain;  // when !id
  };
  struct Touched {
    size_t recipients = 0;  // queued recipients acted on
    size_t in_flight = 0;   // recipients being attempted now: not touched
  };
  // Bounces (DSN to the sender) or deletes (no DSN; a Deletion record per
  // recipient) the queued jobs selected.
  Touched BounceQueued(const Selector& what);
  Touched DeleteQueued(const Selector& what);
  // Holds / releases the selected mail (queue::DomainQueue holds). Release of
  // a message or domain that is not held returns nullopt.
  Touched Hold(const Selector& what);
  std::optional<Touched> Release(const Selector& what);
  // Every queued and in-flight job (at most `max`): a JSON array of
  // {id, domain, state, recipients, attempts, next_us, error}; "truncated"
  // is set when more were left out.
  // `only`: the jobs of that message alone.
  std::string JobsJson(size_t max, std::optional<base::QueueId> only, bool& truncated);
  // Pending recipients per domain and age bucket: bucket i holds ages below
  // edges_s[i] (and at least edges_s[i-1]); the last bucket the rest.
  std::string ShapeJson(const std::vector<uint64_t>& edges_s);

  const EngineStats& stats() const { return stats_; }
  // Messages with queued or in-flight jobs, and the record file names they
  // use: both go to 0 once every message is finished (tests).
  size_t messages() const { return messages_.size(); }
  size_t interned_file_names() const { return file_names_.size(); }
  size_t queued_domains() { return queues_.domain_count(); }
  // Metrics (server/metrics_collector.h): every domain queue of this shard,
  // the outbound connections open, and the resolver (null before Init).
  void ForEachQueue(absl::FunctionRef<void(queue::DomainQueue&)> f) {
    queues_.ForEach([&](queue::DomainQueue& q) { f(q); });
  }
  size_t outbound_open() const { return connections_.size(); }
  const dns::Resolver* resolver() const { return resolver_.get(); }

  // ConnectionDelegate
  void OnReady(OutboundConnection& c) override;
  void OnBodyWanted(OutboundConnection& c) override;
  void OnRecipientResult(OutboundConnection& c, size_t index, smtp::Outcome outcome,
                         const smtp::Reply& reply) override;
  void OnMessageDone(OutboundConnection& c, const smtp::MessageResult& result) override;
  void OnFinished(OutboundConnection& c, const smtp::CloseInfo& info, bool ever_ready) override;
  void Released(OutboundConnection& c) override;

 private:
  struct Destination;
  struct Message;
  struct Active;

  Destination& DestinationFor(queue::DomainQueue& q);
  void Work(queue::DomainQueue& q, uint64_t now_us);
  // Asks up to `wanted` idle connections of other destinations to QUIT now
  // (those sharing `shared` only, when it is set): they hold slots `q` needs.
  void ReclaimIdle(const queue::DomainQueue& q, size_t wanted, const queue::ShapingGate* shared);
  size_t FreeSlots() const;
  // Another domain waits for a slot this idle connection of `q` holds.
  bool SlotWanted(const queue::DomainQueue& q) const;
  void Resolve(Destination& d);
  // Reconfigure: `d`'s next hop changed.
  void Retarget(Destination& d);
  void OnResolved(const std::string& domain, const dns::MxResult& result);
  // Fills d.targets from an ok result, leaving out (MX-is-me,
  // own_addresses.h) every target that is this relay and every MX host
  // named like it. False when nothing is left.
  bool SetTargets(Destination& d, const dns::MxResult& result);
  // Every ready job of `d` fails with 5.4.6: its mail would come back here.
  void FailLoop(Destination& d);
  // `counted`: the reply already reached the shaping gate (one event is one
  // backoff step, however many jobs it fails).
  void FailReady(queue::DomainQueue& q, const smtp::Reply& reply, bool permanent,
                 const std::string& mx, const std::string& ip, bool counted);
  void OpenConnection(Destination& d, queue::DomainQueue& q, uint64_t now_us);
  void StartJob(OutboundConnection& c, queue::Job job);
  void LoadRecord(Active* a, const RecordRef& where);
  // Jobs decided without a connection (a refused connect, a DNS failure,
  // `queue bounce`) still read their record for the accounting line and the
  // DSN. One failure can decide every ready job of a big domain at once; so
  // that their records are not all read and held together, they queue here
  // and at most kMaxDetachedLoads (64) load at a time.
  void LoadDetached(Active* a);
  // Takes the selected queued jobs out of their queues and decides them
  // without a connection: bounced (DSN) or deleted (no DSN).
  Touched DecideQueued(const Selector& what, bool deleted);
  // Recipients of the selected mail being attempted right now.
  size_t InFlight(const Selector& what) const;
  template <typename F>
  void ForEachActive(F&& f) const;
  void StartDetachedLoads();
  void OnRecord(Active* a, absl::StatusOr<RecordPtr> record);
  void PrepareBody(Active* a);
  // Adds the DKIM-Signature fields for the message PrepareBody made.
  void SignBody(Active* a);
  // The outcome step (engine_outcome.cc): DecideOutcome (outcome.h, pure)
  // says what the attempt means; these apply it.
  void FinishJob(OutboundConnection* c, Active* a, const smtp::Reply& decisive);
  // Tells the queue (retry or done) and checks it decided as the outcome did.
  void ReportAttempt(OutboundConnection* c, const Active& a, queue::DomainQueue& q,
                     const smtp::Reply& decisive, const AttemptOutcome& o, uint64_t now_us);
  void WriteRecords(const Active& a, const AttemptOutcome& o, const std::string& mx,
                    const std::string& ip, const std::string& tls, uint64_t now_us);
  // Bounced, deleted and expired recipients: a DSN (final once it is
  // durable) or final at once.
  void SettleFailed(const Active& a, const AttemptOutcome& o, uint16_t dir, const std::string& mx,
                    uint64_t now_us);
  // The job has left (done) or waits for a retry: the message's bookkeeping.
  void ReleaseJob(base::QueueId id, Message& m, bool done);
  void ReadRecord(const RecordRef& where, std::function<void(absl::StatusOr<std::string>)> done);
  // A recipient address whose domain this shard owns (EngineHost::OwnsDomain).
  bool Owns(std::string_view address) const;
  RecordRef WhereOf(const Message& m) const;
  void Record(log::DeliveryType type, base::QueueId id, const std::string& sender,
              const std::string& recipient, const std::string& domain, const std::string& mx,
              const std::string& ip, const smtp::Reply& reply, uint32_t attempt,
              const std::string& tls);

  io::Loop& ring_;
  const config::Config& config_;
  EngineHost& host_;
  const std::string hostname_;
  std::string own_name_;  // hostname_ as dns::NormalizeDomain writes it
  OwnAddresses own_;      // filled by Init (getifaddrs)
  dkim::Signer* const dkim_;
  OutboundOptions options_;
  // STARTTLS client contexts: plain (opportunistic, required) and verifying.
  std::shared_ptr<const tls::Context> tls_plain_;
  std::shared_ptr<const tls::Context> tls_verify_;
  // The last TLS session per peer, offered on the next STARTTLS there.
  std::unique_ptr<TlsSessionCache> tls_sessions_ = std::make_unique<TlsSessionCache>(1024);
  OutboundTlsSetup TlsFor(const Destination& d);
  queue::QueueSet queues_;
  std::unique_ptr<dns::Resolver> resolver_;
  absl::flat_hash_map<std::string, std::unique_ptr<Destination>> destinations_;
  absl::flat_hash_map<base::QueueId, Message> messages_;
  FileNames file_names_;  // interned record file names of the queued messages
  // Loaded records, shared by a message's jobs; 64 MiB of idle ones kept.
  RecordCache records_{64u << 20, [this](std::string_view address) { return Owns(address); }};
  std::vector<OutboundConnection*> connections_;
  std::vector<OutboundConnection*> dying_;
  std::vector<OutboundConnection*> dead_;
  std::vector<queue::DomainQueue*> due_;
  // Domains with mail waiting for the shard's connection cap
  // (max_outbound_connections), in arrival order. A parked domain is left
  // out of the wake-up heap (Pump drops it when Due returns it), so it costs
  // nothing until a connection closes; then Pump reschedules one per free slot.
  std::deque<queue::DomainQueue*> parked_;
  absl::flat_hash_set<const queue::DomainQueue*> parked_set_;
  // Domains with mail waiting for a full by_mx budget, per shared gate. A
  // connection of another domain of that gate that runs out of work QUITs at
  // once instead of idling on the slot (OnReady).
  absl::flat_hash_map<const queue::ShapingGate*, absl::flat_hash_set<const queue::DomainQueue*>>
      shared_waiting_;
  absl::flat_hash_map<int, int> dir_fds_;
  // Segments kept open for reading records, by "dir/name" (at most
  // kFileCache idle ones). An entry with reads in flight is never closed: a
  // read SQE names its descriptor by number, which a new open could reuse.
  // Tick closes idle entries whose file the ledger unlinked, so a delivered
  // segment's disk space is not held by a cached descriptor.
  struct OpenFile {
    int fd = -1;
    uint32_t reads = 0;     // ReadOps and link checks using fd
    uint64_t last_use = 0;  // file_use_ at the last read
    bool checking = false;  // a statx through the ring is asking for st_nlink
  };
  absl::flat_hash_map<std::string, OpenFile> file_fds_;
  uint64_t file_use_ = 0;
  size_t link_checks_ = 0;  // statx ops in flight: the loop waits for them at a stop
  void EvictIdleFile();
  void CloseUnlinkedFiles();
  void OnLinkCount(const std::string& key, int result, uint32_t links);
  uint64_t now_ms_ = 0;
  size_t actives_ = 0;
  std::deque<Active*> detached_waiting_;
  size_t detached_loading_ = 0;
  bool starting_detached_ = false;
  std::string record_campaign_;  // of the job FinishJob is recording
  std::string record_tenant_;    // jobs being attempted (incl. record reads, detached ones)
  bool record_tls_resumed_ = false;
  std::string record_dkim_;  // the job's signatures as JSON (Delivery records)
  bool stopping_ = false;
  EngineStats stats_;
  // Suspensions with their reason, by domain (the queue holds the gate).
  absl::flat_hash_map<std::string, Suspension> suspensions_;
};

}  // namespace sluice::delivery
