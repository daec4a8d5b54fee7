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
//
// Its parts, each in its own file (docs/ARCHITECTURE.md, "Shards and the
// loop"): the listeners and admission (shard_listener.h), the connection
// table (shard_connections.h), the note router over the cross-shard
// mailboxes (shard_notes.h), the stop protocol (shard_stop.h, shard_stop.cc),
// the spool space check (shard_space.h) and the pickup host
// (shard_pickup.h). This file wires them: start-up, the loop, the tick,
// reload, and what the connections and the engine ask of the shard.
//
// Private to server/: only src/server includes it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "shard_connections.h"
#include "shard_listener.h"
#include "shard_note.h"
#include "shard_notes.h"
#include "shard_space.h"
#include "shard_stop.h"
#include "sluice/base/limits.h"
#include "sluice/base/queue_id.h"
#include "sluice/config/config.h"
#include "sluice/delivery/engine.h"
#include "sluice/delivery/ledger.h"
#include "sluice/io/helper_pool.h"
#include "sluice/io/loop.h"
#include "sluice/io/mailbox.h"
#include "sluice/log/accounting_log.h"
#include "sluice/metrics/snapshot.h"
#include "sluice/metrics/top_destinations.h"
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

class Shard final : public delivery::EngineHost {
 public:
  Shard(int index, const config::Config& config, int log_fd, base::QueueId id_floor,
        std::atomic<int64_t>& open_connections, io::Mailboxes<ShardNote>& mailboxes);
  ~Shard() override;

  // Sets up the loop, buffers, spool and listeners. Runs on the shard thread.
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
  void set_stop_barrier(std::atomic<int>* barrier) { stop_.set_barrier(barrier); }
  // Thread-safe: asks the loop to stop.
  void RequestStop();
  // Thread-safe (the main thread's reload, server/config_reload.h): the loop
  // takes `next` at its next wake-up, copies it over its own Config (only
  // reloadable keys can differ: the reload checked), lets the engine
  // re-derive what it computed from it, then sets reload_applied() to
  // `generation`. A newer request before then replaces this one.
  void RequestReload(std::shared_ptr<const config::Config> next, uint64_t generation);
  uint64_t reload_applied() const { return reload_applied_.load(std::memory_order_acquire); }

  // For connections and the shard's other parts: the loop's interface (the
  // io_uring backend, io::Ring, is named only where Init makes it).
  io::Loop& loop() { return *loop_; }
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
  bool spool_available() const { return space_.available() && !notes_.outbox_full(); }
  base::QueueId NextQueueId();
  uint64_t now_ms() const { return now_ms_; }
  bool stopping() const { return stop_.stopping(); }
  void Starved(Connection* c) { connections_.Starved(c); }
  // TLS/AUTH: set by the server before Init(); null means neither is offered.
  void set_credentials(tls::Credentials* c) { credentials_ = c; }
  // Per-client-address limits, shared by the shards; null: none.
  void set_client_limiter(ClientLimiter* l) { listener_.set_client_limiter(l); }
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
  uint64_t spool_free_bytes() const { return space_.free_bytes(); }
  uint64_t spool_size_bytes() const { return space_.size_bytes(); }
  size_t inbound_open() const { return connections_.size(); }
  // The inbound connections (shard_connections.h); the listener adds to it.
  ConnectionTable& connections() { return connections_; }
  // The connection is done; it is freed after the next submission.
  void Closed(Connection* c);
  // Takes every note waiting in this shard's mailboxes. Only from the shard's
  // own thread, or after it has joined.
  void DrainNotes();

  ShardStats& stats() { return stats_; }
  const ShardStats& stats() const { return stats_; }
  // Tells each destination's owner shard about a queued message.
  void AnnounceQueued(base::QueueId id, const std::vector<std::string>& recipients) {
    notes_.AnnounceQueued(id, recipients);
  }
  // The same for a batch: its addresses as views (no string per recipient).
  void AnnounceQueued(base::QueueId id, const std::vector<std::string_view>& recipients) {
    notes_.AnnounceQueued(id, recipients);
  }
  const absl::flat_hash_map<std::string, OwnedDomain>& owned_domains() const {
    return notes_.owned_domains();
  }
  // Null with --no-delivery.
  delivery::Engine* engine() { return engine_.get(); }
  delivery::Ledger& ledger() { return *ledger_; }

  // delivery::EngineHost
  void ReportFinal(base::QueueId id, uint16_t dir, std::vector<uint32_t> recipients) override;
  void QueueLocal(std::string recipient, std::string message, bool eight_bit,
                  std::function<void(bool)> done) override;

 private:
  static constexpr uint64_t kTickMs = 250;  // timeouts, spool space, stop progress

  // Init, in order: the loop and buffers; the spool, log, ledger and
  // engine; the listeners, control socket, HTTP listener and pickup.
  absl::Status InitLoop();
  absl::Status InitStorage();
  absl::Status InitDelivery();
  absl::Status InitFrontends();
  void OnWake(int result, uint32_t flags);
  // Another shard's MSG_RING wake (io/mailbox.h): notes are waiting.
  void OnMessageWake(int result, uint32_t flags);
  void ArmWake();
  // Writes the shard's eventfd (any thread): OnWake runs.
  void Wake();
  // Run's parts: what happens before the first turn; one turn's waiting
  // and completions; the work at the end of every turn.
  void StartRunning();
  void RunTurn();
  void EndTurn();
  void Tick();
  // The stop protocol's steps (shard_stop.cc, shard_stop.h).
  void BeginStop();
  // Once per turn: true when the shard may leave its loop.
  bool StopTurn();
  // This shard's own work has ended (or `late`: the grace period is over
  // and what is left is cut).
  bool OwnWorkEnded(bool late) const;
  // Shard 0 with a pickup directory: the ingester (shard_pickup.cc), set up
  // in Init, freed in the destructor (or kept if work is still in flight).
  absl::Status InitPickup();
  void DropPickup();
  // Writes the engine's retry state for the next start (end of Run).
  void SaveRetryState();
  void ApplyReload();

  const int index_;
  // This shard's own copy: connections, the engine and the pickup ingester
  // read it on this thread; only ApplyReload (this thread) changes it.
  config::Config config_;
  const int log_fd_;
  base::QueueIdGenerator ids_;

  std::unique_ptr<io::Loop> loop_;  // an io::Ring, made by Init
  std::unique_ptr<io::BufferRing> buffers_;
  int spool_dir_fd_ = -1;
  std::unique_ptr<spool::SpoolWriter> spool_;
  std::unique_ptr<log::AccountingLog> log_;
  ShardListener listener_;
  ConnectionTable connections_;

  io::Mailboxes<ShardNote>& mailboxes_;
  NoteRouter notes_;
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
  io::MemberCompletion<Shard, &Shard::OnWake> wake_done_{this};
  io::MemberCompletion<Shard, &Shard::OnMessageWake> message_wake_done_{this};
  StopProtocol stop_;
  struct PendingReload {
    std::shared_ptr<const config::Config> config;
    uint64_t generation = 0;
  };
  // Written by the main thread, taken in OnWake: never on a hot path.
  std::atomic<std::shared_ptr<const PendingReload>> pending_reload_;
  std::atomic<uint64_t> reload_applied_{0};

  tls::Credentials* credentials_ = nullptr;      // TLS/AUTH, shared, owned by the server
  delivery::AdminStore* admin_store_ = nullptr;  // shared, owned by the server
  const dkim::KeyStore* dkim_keys_ = nullptr;    // shared, owned by the server
  std::unique_ptr<dkim::Signer> dkim_signer_;    // this shard's, used by engine_
  uint64_t now_ms_ = 0;
  uint64_t next_tick_ms_ = 0;
  SpoolSpace space_;
  metrics::MetricsBoard* metrics_board_ = nullptr;  // shared, owned by the server
  io::HelperPool* helpers_ = nullptr;               // shared, owned by the server
  io::HelperPool* pickup_thread_ = nullptr;  // shard 0 with a pickup dir; owned by the server
  uint64_t next_metrics_ms_ = 0;
  std::vector<metrics::DestinationSample> metrics_scratch_;  // reused by every snapshot
  ShardStats stats_;
};

}  // namespace sluice::server
