// A shard: one thread, pinned to one core, running its own io_uring loop.
// It owns its listeners (SO_REUSEPORT), its receive buffer ring, its
// connections, its spool directory writer, its accounting-log buffer and its
// timers; nothing in it is shared with other shards or locked.
//
// The loop, once per turn: wait for completions (bounded by the next timer),
// run their callbacks, then publish recycled buffers, re-arm starved
// receives, start the group directory fsync and flush the log buffer.
//
// Stopping (RequestStop from any thread): stop accepting, ask every session
// to finish its message and say 421, wait up to the grace period for
// sessions and spool writes to end, then cut what is left and return.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "sluice/base/limits.h"
#include "sluice/base/queue_id.h"
#include "sluice/config/config.h"
#include "sluice/delivery/engine.h"
#include "sluice/delivery/ledger.h"
#include "sluice/io/helper_pool.h"
#include "sluice/io/mailbox.h"
#include "sluice/io/ring.h"
#include "sluice/log/accounting_log.h"
#include "sluice/metrics/snapshot.h"
#include "sluice/metrics/top_destinations.h"
#include "sluice/server/shard_note.h"
#include "sluice/spool/retry_state.h"
#include "sluice/spool/spool_writer.h"

namespace sluice::tls {
class Credentials;       // TLS/AUTH state shared by the shards (tls/credentials.h)
class BearerTokenStore;  // HTTP admin tokens shared by the shards (tls/bearer_tokens.h)
}  // namespace sluice::tls

namespace sluice::dkim {
class KeyStore;  // DKIM keys shared by the shards (dkim/signer.h)
class Signer;
}  // namespace sluice::dkim

namespace sluice::pickup {
class IngestHost;  // pickup/ingest_host.h
class Ingester;    // pickup/ingester.h: shard 0 runs it
}  // namespace sluice::pickup

namespace sluice::server {

class ClientLimiter;
class Connection;
class ControlSocket;
class HttpListener;

// A message found in the spool at start-up, for its home shard.
struct RecoveredMessage {
  base::QueueId id;
  delivery::RecordRef where;
  std::vector<std::string> recipients;  // every envelope recipient, in order
  std::vector<uint32_t> pending;        // indexes not yet final (the journal said)
  // Some recipients are final: their entries are in the compacted journal of
  // this shard's directory (server.cc's RecoverJournals), which the ledger
  // adopts and removes once every such message is retired.
  bool journaled = false;
  // Jobs of this message that had failed before the last clean stop
  // (spool/retry_state.h): their recipients keep their failures and wait
  // for their next attempt.
  std::vector<spool::RetryEntry> retry;
};

// Counters a shard keeps; read by tests and the admin side later.
struct ShardStats {
  uint64_t connections_accepted = 0;
  uint64_t connections_refused = 0;
  uint64_t replies_refused = 0;  // 4xx/5xx replies to clients (Rejection records)
  uint64_t messages_queued = 0;
  uint64_t messages_failed = 0;
  uint64_t messages_rejected = 0;  // DATA/BDAT answered 4xx/5xx
  uint64_t notes_received = 0;
  uint64_t tls_handshakes = 0;          // inbound (STARTTLS or implicit) completed
  uint64_t tls_handshake_failures = 0;  // inbound that failed to start or complete
};

// What a shard knows about the destinations it owns (the seed of the
// delivery engine's per-domain queues).
struct OwnedDomain {
  uint64_t messages = 0;
  uint64_t recipients = 0;
};

class Shard final : public delivery::EngineHost {
 public:
  Shard(int index, const config::Config& config, int log_fd, base::QueueId id_floor,
        std::atomic<int64_t>& open_connections, io::Mailboxes<ShardNote>& mailboxes);
  ~Shard() override;

  // Sets up the ring, buffers, spool and listeners. Runs on the shard thread.
  absl::Status Init();
  // Messages found in the spool at start-up that this shard announces to
  // their destinations' owners when it starts running.
  void AdoptRecovered(std::vector<RecoveredMessage> messages, uint64_t journal_sequence) {
    recovered_ = std::move(messages);
    journal_sequence_ = journal_sequence;
  }
  // Claimed pickup files a crash left unfinished (absolute paths); shard 0
  // processes them again when it starts (pickup/ingester.h).
  void AdoptClaimed(std::vector<std::string> paths) { claimed_ = std::move(paths); }
  // Runs until stopped. Runs on the shard thread.
  void Run();
  // Shared by all shards: how many have not yet posted their last note
  // while stopping (starts at the shard count).
  void set_stop_barrier(std::atomic<int>* barrier) { stop_barrier_ = barrier; }
  // Thread-safe: asks the loop to stop.
  void RequestStop();
  // Thread-safe (the main thread's reload, server/config_reload.h): the loop
  // takes `next` at its next wake-up, copies it over its own Config (only
  // reloadable keys can differ: the reload checked), lets the engine
  // re-derive what it computed from it, then sets reload_applied() to
  // `generation`. A newer request before then replaces this one.
  void RequestReload(std::shared_ptr<const config::Config> next, uint64_t generation);
  uint64_t reload_applied() const { return reload_applied_.load(std::memory_order_acquire); }

  // For connections.
  io::Ring& ring() { return *ring_; }
  io::BufferRing& buffers() { return *buffers_; }
  spool::SpoolWriter& spool() { return *spool_; }
  uint64_t segment_flushes() const { return spool_ ? spool_->segment_flushes() : 0; }
  log::AccountingLog& accounting() override { return *log_; }
  bool OwnsDomain(std::string_view domain) const override {
    return OwnerShard(domain, mailboxes_.shards()) == index_;
  }
  const config::Config& config() const { return config_; }
  int index() const { return index_; }
  // False when the spool is short of space or this shard's undelivered
  // cross-shard notes reached limits::kOutboxMax: new mail waits (452).
  bool spool_available() const { return spool_available_ && outbox_.size() < limits::kOutboxMax; }
  base::QueueId NextQueueId();
  uint64_t now_ms() const { return now_ms_; }
  bool stopping() const { return stopping_; }
  void Starved(Connection* c) { starved_.push_back(c); }
  // TLS/AUTH: set by the server before Init(); null means neither is offered.
  void set_credentials(tls::Credentials* c) { credentials_ = c; }
  // Per-client-address limits, shared by the shards; null: none.
  void set_client_limiter(ClientLimiter* l) { client_limiter_ = l; }
  tls::Credentials* credentials() const { return credentials_; }
  // Suspensions and holds kept across restarts (delivery/admin_state.h):
  // set by the server before Init(), which applies them; null in tests.
  void set_admin_store(delivery::AdminStore* s) { admin_store_ = s; }
  delivery::AdminStore* admin_store() const { return admin_store_; }
  int shard_count() const { return mailboxes_.shards(); }
  // HTTP admin tokens: set by the server before Init(); null: the admin API
  // answers 403 (server/http_api.h).
  void set_http_tokens(const tls::BearerTokenStore* t) { http_tokens_ = t; }
  const tls::BearerTokenStore* http_tokens() const { return http_tokens_; }
  // The HTTP listener (http.listen); null when off.
  HttpListener* http() { return http_.get(); }
  // DKIM keys: set by the server before Init(); null means mail goes unsigned.
  void set_dkim_keys(const dkim::KeyStore* k) { dkim_keys_ = k; }
  // Where every shard publishes its metrics snapshot (metrics/snapshot.h):
  // set by the server before Run(), shared, owned by the server; null: this
  // shard publishes nothing (a scrape it answers still sees itself).
  void set_metrics_board(metrics::MetricsBoard* b) { metrics_board_ = b; }
  // Blocking or CPU-heavy work goes there, never onto this thread
  // (io/helper_pool.h): PBKDF2 for AUTH, statvfs of the spool. Null in
  // tests that build a shard without one: the work then runs inline.
  void set_helpers(io::HelperPool* h) { helpers_ = h; }
  io::HelperPool* helpers() const { return helpers_; }
  // The pickup directory's own thread (pickup/ingester.h): set by the server
  // before Init() on shard 0 when a pickup directory is configured.
  void set_pickup_thread(io::HelperPool* p) { pickup_thread_ = p; }
  metrics::MetricsBoard* metrics_board() const { return metrics_board_; }
  // Builds this shard's snapshot now (server/metrics_collector.h) and
  // publishes it when there is a board. Shard thread only.
  std::shared_ptr<const metrics::ShardSnapshot> PublishMetrics();
  // From the last spool space check (every tick): statvfs of the shard's
  // spool directory.
  uint64_t spool_free_bytes() const { return spool_free_bytes_; }
  uint64_t spool_size_bytes() const { return spool_size_bytes_; }
  size_t inbound_open() const { return connections_.size(); }
  // The connection is done; it is freed after the next submission.
  void Closed(Connection* c);
  // Takes every note waiting in this shard's mailboxes. Only from the shard's
  // own thread, or after it has joined.
  void DrainNotes();

  ShardStats& stats() { return stats_; }
  const ShardStats& stats() const { return stats_; }
  // Tells each destination's owner shard about a queued message.
  void AnnounceQueued(base::QueueId id, const std::vector<std::string>& recipients);
  // The same for a batch: its addresses as views (no string per recipient).
  void AnnounceQueued(base::QueueId id, const std::vector<std::string_view>& recipients);
  const absl::flat_hash_map<std::string, OwnedDomain>& owned_domains() const {
    return owned_domains_;
  }
  // Null with --no-delivery.
  delivery::Engine* engine() { return engine_.get(); }
  delivery::Ledger& ledger() { return *ledger_; }

  // delivery::EngineHost
  void ReportFinal(base::QueueId id, uint16_t dir, std::vector<uint32_t> recipients) override;
  void QueueLocal(std::string recipient, std::string message, bool eight_bit,
                  std::function<void(bool)> done) override;

 private:
  struct Listener;
  struct Refusal;
  void OnAccept(Listener* l, int result, uint32_t flags);
  void Accepted(Listener* l, int fd);
  // Sends `reply` and closes `fd` (a connection past a limit).
  void Refuse(int fd, std::string reply);
  void ArmAccept(Listener* l);
  void OnWake(int result, uint32_t flags);
  // Another shard's MSG_RING wake (io/mailbox.h): notes are waiting.
  void OnMessageWake(int result, uint32_t flags);
  void ArmWake();
  void Tick();
  void BeginStop();
  // Binds this shard's SO_REUSEPORT listeners (plain, then implicit TLS).
  absl::Status OpenListeners();
  // Shard 0 with a pickup directory: the ingester (shard_pickup.cc), set up
  // in Init, freed in the destructor (or kept if work is still in flight).
  absl::Status InitPickup();
  void DropPickup();
  // Refreshes spool_available_ and the space figures: inline at start-up,
  // on a helper thread once running (a statvfs can block on a busy disk).
  void CheckSpoolSpace(bool inline_now = false);
  void ApplySpoolSpace(bool ok, uint64_t free_bytes, uint64_t size_bytes);
  void Post(int target, ShardNote note);
  // `retry`: a recovered message's saved retry state (RecoveredMessage).
  void AnnounceJobs(base::QueueId id, const delivery::RecordRef& where,
                    const std::vector<std::string>& recipients,
                    const std::vector<uint32_t>& indexes,
                    const std::vector<spool::RetryEntry>* retry = nullptr);
  // recipient(i) is the address of envelope recipient i.
  void AnnounceJobs(base::QueueId id, const delivery::RecordRef& where,
                    absl::FunctionRef<std::string_view(uint32_t)> recipient,
                    const std::vector<uint32_t>& indexes,
                    const std::vector<spool::RetryEntry>* retry = nullptr);
  // Writes the engine's retry state for the next start (end of Run).
  void SaveRetryState();
  void OnNote(ShardNote note);
  void FlushOutbox();
  // Hands a final outcome to its home shard's ledger (ReportFinal, once
  // this shard's log has written the outcome's records).
  void SendFinal(base::QueueId id, uint16_t dir, std::vector<uint32_t> recipients);
  // Sends the finals whose records reached the accounting log file.
  void ReleaseFinals();
  void ApplyReload();

  const int index_;
  // This shard's own copy: connections, the engine and the pickup ingester
  // read it on this thread; only ApplyReload (this thread) changes it.
  config::Config config_;
  const int log_fd_;
  std::atomic<int64_t>& open_connections_;
  base::QueueIdGenerator ids_;

  std::unique_ptr<io::Ring> ring_;
  std::unique_ptr<io::BufferRing> buffers_;
  int spool_dir_fd_ = -1;
  std::unique_ptr<spool::SpoolWriter> spool_;
  std::unique_ptr<log::AccountingLog> log_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::vector<Connection*> connections_;  // index kept in Connection
  std::vector<Connection*> starved_;
  // Closed connections are freed only after the SQEs they prepared (a
  // cancel naming their address, say) were submitted, so a new connection
  // can never be mistaken for an old one at the same address.
  std::vector<Connection*> dying_;  // closed this turn
  std::vector<Connection*> dead_;   // closed last turn: safe to free now

  io::Mailboxes<ShardNote>& mailboxes_;
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
  std::vector<RecoveredMessage> recovered_;
  uint64_t journal_sequence_ = 0;
  std::unique_ptr<delivery::Ledger> ledger_;
  std::unique_ptr<delivery::Engine> engine_;
  std::unique_ptr<ControlSocket> control_;
  std::unique_ptr<HttpListener> http_;                  // http.listen; null when off
  const tls::BearerTokenStore* http_tokens_ = nullptr;  // shared, owned by the server
  // The pickup directory: shard 0 only, when configured.
  std::unique_ptr<pickup::IngestHost> pickup_host_;  // this shard, as the ingester sees it
  std::unique_ptr<pickup::Ingester> pickup_;
  std::vector<std::string> claimed_;
  uint64_t wake_value_ = 0;
  const std::string too_many_connections_;  // the reply, sent from this buffer
  io::MemberCompletion<Shard, &Shard::OnWake> wake_done_{this};
  io::MemberCompletion<Shard, &Shard::OnMessageWake> message_wake_done_{this};
  std::atomic<bool> stop_requested_{false};
  struct PendingReload {
    std::shared_ptr<const config::Config> config;
    uint64_t generation = 0;
  };
  // Written by the main thread, taken in OnWake: never on a hot path.
  std::atomic<std::shared_ptr<const PendingReload>> pending_reload_;
  std::atomic<uint64_t> reload_applied_{0};
  bool stopping_ = false;
  bool posted_last_ = false;  // stopping: this shard will post no more notes
  std::atomic<int>* stop_barrier_ = nullptr;
  uint64_t stop_deadline_ms_ = 0;

  tls::Credentials* credentials_ = nullptr;      // TLS/AUTH, shared, owned by the server
  ClientLimiter* client_limiter_ = nullptr;      // shared, owned by the server
  absl::flat_hash_set<Refusal*> refusals_;       // replies in flight to refused connections
  delivery::AdminStore* admin_store_ = nullptr;  // shared, owned by the server
  const dkim::KeyStore* dkim_keys_ = nullptr;    // shared, owned by the server
  std::unique_ptr<dkim::Signer> dkim_signer_;    // this shard's, used by engine_
  uint64_t now_ms_ = 0;
  uint64_t next_tick_ms_ = 0;
  bool spool_available_ = true;
  uint64_t spool_free_bytes_ = 0;
  uint64_t spool_size_bytes_ = 0;
  metrics::MetricsBoard* metrics_board_ = nullptr;  // shared, owned by the server
  io::HelperPool* helpers_ = nullptr;               // shared, owned by the server
  bool space_check_in_flight_ = false;              // a statvfs job is on a helper
  io::HelperPool* pickup_thread_ = nullptr;  // shard 0 with a pickup dir; owned by the server
  uint64_t next_metrics_ms_ = 0;
  std::vector<metrics::DestinationSample> metrics_scratch_;  // reused by every snapshot
  ShardStats stats_;
};

}  // namespace sluice::server
