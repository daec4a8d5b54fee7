// The shard (shard.h): start-up, the loop, the tick, reload, and what its
// connections and its delivery engine ask of it. Its parts live beside it:
// shard_listener.cc, shard_connections.cc, shard_notes.cc, shard_stop.cc,
// shard_space.cc, shard_pickup.cc.
#include "shard.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "sluice/base/clock.h"
#include "sluice/base/limits.h"
#include "sluice/diag/diag.h"
#include "sluice/dkim/signer.h"
#include "sluice/io/ring.h"
#include "sluice/pickup/ingester.h"
#include "sluice/server/connection.h"
#include "sluice/server/control_socket.h"
#include "sluice/server/http_listener.h"
#include "sluice/server/metrics_collector.h"
#include "sluice/tls/tls.h"

namespace sluice::server {
namespace {

// How soon the loop looks again while finals wait for a log write that
// another shard's write (holding the file's token) delays.
constexpr int kFinalsPollMs = 1;
constexpr uint16_t kBufferGroup = 1;

absl::Status Errno(std::string_view what) {
  return absl::Status(absl::ErrnoToStatusCode(errno),
                      absl::StrCat(std::string(what), ": ", std::strerror(errno)));
}

}  // namespace

Shard::Shard(int index, const config::Config& config, int log_fd, base::QueueId id_floor,
             std::atomic<int64_t>& open_connections, io::Mailboxes<ShardNote>& mailboxes)
    : index_(index),
      config_(config),
      log_fd_(log_fd),
      ids_(index),
      listener_(*this, open_connections),
      mailboxes_(mailboxes),
      notes_(index, mailboxes),
      space_(index, config_) {
  ids_.RaiseFloor(id_floor);
}

Shard::~Shard() {
  DropPickup();
  // HTTP connections and fan-outs still in flight: kept, as DropPickup does.
  if (http_ && !http_->idle()) (void)http_.release();
  http_.reset();
  connections_.DeleteAll();
  listener_.Close();
  if (spool_dir_fd_ >= 0) close(spool_dir_fd_);
}

absl::Status Shard::Init() {
  if (auto s = InitLoop(); !s.ok()) return s;
  if (auto s = InitStorage(); !s.ok()) return s;
  if (auto s = InitDelivery(); !s.ok()) return s;
  if (auto s = InitFrontends(); !s.ok()) return s;
  now_ms_ = base::MonotonicMillis();
  space_.Check(helpers_, /*inline_now=*/true);
  if (metrics_board_ != nullptr) PublishMetrics();  // a scrape at once sees every shard
  return absl::OkStatus();
}

absl::Status Shard::InitLoop() {
  // The one place that names the io_uring backend; the rest sees io::Loop.
  auto ring = io::Ring::Create(limits::kRingEntries);
  if (!ring.ok()) return ring.status();
  loop_ = std::move(*ring);
  mailboxes_.UseRing(index_, loop_.get(), &message_wake_done_);
  auto buffers = loop_->CreateBufferRing(kBufferGroup, limits::kRecvBufferCount,
                                         static_cast<uint32_t>(limits::kRecvBufferSize));
  if (!buffers.ok()) return buffers.status();
  buffers_ = std::move(*buffers);
  return absl::OkStatus();
}

absl::Status Shard::InitStorage() {
  const std::string dir = absl::StrCat(config_.spool_dir, "/", index_);
  spool_dir_fd_ = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (spool_dir_fd_ < 0) return Errno(absl::StrCat("open spool directory ", dir));
  spool_ = std::make_unique<spool::SpoolWriter>(*loop_, *buffers_, spool_dir_fd_,
                                                [this] { return NextQueueId(); });
  spool_->set_memory_budget(config_.receive_memory_per_shard);
  log_ = std::make_unique<log::AccountingLog>(*loop_, log_fd_);
  ledger_ = std::make_unique<delivery::Ledger>(*loop_, config_.spool_dir, index_, journal_sequence_,
                                               [this] { return spool_->segment_name(); });
  spool_->set_stored_hook([this](const spool::StoredRecord& r) {
    ledger_->Add(r.id,
                 delivery::RecordRef{static_cast<uint16_t>(index_), r.file, r.offset, r.length},
                 r.recipients);
  });
  notes_.Attach(ledger_.get(), log_.get());
  return absl::OkStatus();
}

absl::Status Shard::InitDelivery() {
  if (config_.delivery_enabled) {
    if (dkim_keys_ != nullptr) dkim_signer_ = std::make_unique<dkim::Signer>(*dkim_keys_);
    engine_ = std::make_unique<delivery::Engine>(*loop_, config_, *this, config_.hostname,
                                                 dkim_signer_.get());
    notes_.set_engine(engine_.get());
    if (auto s = engine_->Init(); !s.ok()) return s;
    // Before any job arrives: a held or suspended domain's recovered mail
    // must not leave at start-up.
    if (admin_store_ != nullptr) {
      engine_->ApplyAdminState(admin_store_->Snapshot(), [this](std::string_view domain) {
        return OwnerShard(domain, mailboxes_.shards()) == index_;
      });
    }
  }
  return absl::OkStatus();
}

absl::Status Shard::InitFrontends() {
  if (auto s = listener_.Open(); !s.ok()) return s;
  if (!config_.control_dir.empty()) {
    mkdir(config_.control_dir.c_str(), 0700);  // EEXIST is fine; bind reports the rest
    control_ = std::make_unique<ControlSocket>(
        *this, absl::StrCat(config_.control_dir, "/", index_, ".sock"));
    if (auto s = control_->Init(); !s.ok()) return s;
  }
  if (!config_.http_addresses.empty()) {
    http_ = std::make_unique<HttpListener>(*this, config_.http_addresses[0]);
    if (auto s = http_->Init(); !s.ok()) return s;
  }
  return InitPickup();
}

base::QueueId Shard::NextQueueId() { return ids_.Next(base::WallMicros()); }

void Shard::Closed(Connection* c) {
  connections_.Remove(c);
  listener_.Release(*c);
}

void Shard::Wake() {
  const uint64_t one = 1;
  ssize_t n = write(mailboxes_.wake_fd(index_), &one, sizeof one);
  (void)n;
}

void Shard::ArmWake() {
  loop_->Read(&wake_done_, mailboxes_.wake_fd(index_), &wake_value_, sizeof wake_value_, 0);
}

void Shard::DrainNotes() { stats_.notes_received += notes_.Drain(); }

void Shard::OnWake(int, uint32_t) {
  DrainNotes();
  if (helpers_ != nullptr) helpers_->Drain(index_);
  if (pickup_thread_ != nullptr) pickup_thread_->Drain(index_);
  if (stop_.requested() && !stop_.stopping()) BeginStop();
  ApplyReload();
  ArmWake();
}

void Shard::OnMessageWake(int, uint32_t) { DrainNotes(); }

void Shard::RequestReload(std::shared_ptr<const config::Config> next, uint64_t generation) {
  pending_reload_.store(
      std::make_shared<const PendingReload>(PendingReload{std::move(next), generation}),
      std::memory_order_release);
  Wake();
}

void Shard::ApplyReload() {
  const std::shared_ptr<const PendingReload> p =
      pending_reload_.exchange(nullptr, std::memory_order_acq_rel);
  if (p == nullptr) return;
  const config::Config before = config_;
  config_ = *p->config;
  if (engine_) engine_->Reconfigure(before);
  reload_applied_.store(p->generation, std::memory_order_release);
}

void Shard::SaveRetryState() {
  if (!engine_) return;
  const std::string state = engine_->RetryState();
  if (state.empty()) return;
  const std::string dir = absl::StrCat(config_.spool_dir, "/", index_);
  if (absl::Status s = spool::WriteRetryState(dir, state); !s.ok()) {
    // Not a loss: the next start tries these jobs at once instead.
    SLUICE_LOG(kWarning, "spool.retry_state_not_saved",
               "retry state not saved; the next start retries these jobs at once",
               {{"error", s.message()}});
  }
}

void Shard::ReportFinal(base::QueueId id, uint16_t dir, std::vector<uint32_t> recipients) {
  notes_.ReportFinal(id, dir, std::move(recipients));
}

void Shard::QueueLocal(std::string recipient, std::string message, bool eight_bit,
                       std::function<void(bool)> done) {
  const base::QueueId id = NextQueueId();
  spool::SpoolWriter::Message* m = spool_->Begin(id);
  const uint64_t size = message.size();
  spool_->AppendOwned(m, std::move(message));
  spool::Envelope env;
  env.arrival_micros = id.micros();
  env.client_ip = "127.0.0.1";
  env.helo = config_.hostname;
  env.protocol = "DSN";
  env.sender = "";
  env.eight_bit = eight_bit;
  env.recipients.push_back(spool::Recipient{recipient});
  spool_->Commit(m, std::move(env),
                 [this, id, size, recipient, done = std::move(done)](const absl::Status& s) {
                   if (!s.ok()) {
                     SLUICE_LOG(kError, "dsn.queue_failed", "cannot queue a DSN",
                                {{"to", recipient}, {"error", s.message()}});
                     return done(false);
                   }
                   ++stats_.messages_queued;
                   const std::vector<std::string> rcpts = {recipient};
                   const std::string id_text = id.ToString();
                   log::ReceptionRecord r;
                   r.ts_micros = base::WallMicros();
                   r.id = id_text;
                   r.sender = "";
                   r.recipients = &rcpts;
                   r.size = size;
                   r.client = "127.0.0.1";
                   r.helo = config_.hostname;
                   r.protocol = "DSN";
                   log_->Reception(r);
                   AnnounceQueued(id, rcpts);
                   done(true);
                 });
}

std::shared_ptr<const metrics::ShardSnapshot> Shard::PublishMetrics() {
  std::shared_ptr<const metrics::ShardSnapshot> s =
      CollectSnapshot(*this, base::WallMicros(), metrics_scratch_);
  if (metrics_board_ != nullptr) metrics_board_->Publish(index_, s);
  return s;
}

void Shard::Tick() {
  diag::Tick();  // summaries of rate-limited diagnostic keys
  if (http_) http_->Tick(now_ms_);
  space_.Check(helpers_);
  if (metrics_board_ != nullptr && now_ms_ >= next_metrics_ms_) {
    PublishMetrics();
    next_metrics_ms_ = now_ms_ + metrics::kSnapshotIntervalMs;
  }
  if (pickup_) pickup_->Tick(now_ms_);
  std::vector<Connection*> all = connections_.Snapshot();
  if (engine_) engine_->Tick(now_ms_);
  ledger_->Tick();
  if (stop_.stopping() && stop_.late(now_ms_)) {
    for (Connection* c : all) c->ForceClose();
    if (engine_) engine_->AbortAll();
    return;
  }
  for (Connection* c : all) c->CheckTimeouts(now_ms_);
}

void Shard::Run() {
  StartRunning();
  do {
    RunTurn();
    EndTurn();
  } while (!StopTurn());
  SaveRetryState();
  // Let the last closes and log writes reach the kernel.
  loop_->Submit();
  tls::ReleaseThreadState();
}

void Shard::StartRunning() {
  listener_.Start();
  if (http_) http_->Start();
  ArmWake();
  for (RecoveredMessage& m : recovered_) {
    ledger_->Add(m.id, m.where, static_cast<uint32_t>(m.pending.size()), m.journaled);
    if (!m.pending.empty()) notes_.AnnounceJobs(m.id, m.where, m.recipients, m.pending, &m.retry);
  }
  recovered_.clear();
  recovered_.shrink_to_fit();
  if (pickup_) {
    pickup_->Start();
    pickup_->Pump();
  }
  next_tick_ms_ = now_ms_ + kTickMs;
}

void Shard::RunTurn() {
  int wait_ms = static_cast<int>(next_tick_ms_ > now_ms_ ? next_tick_ms_ - now_ms_ : 0);
  if (engine_) wait_ms = engine_->NextWakeupMs(now_ms_, wait_ms);
  if (pickup_ && pickup_->has_work()) wait_ms = 0;  // files waiting: do not sleep
  // Finals wait for a log write, which another shard's may delay (the
  // file's writer token): look again soon rather than at the next tick.
  if (notes_.finals_waiting()) wait_ms = std::min(wait_ms, kFinalsPollMs);
  loop_->RunOnce(wait_ms);
  // Past the stop deadline this shard promised to post no more notes: what
  // still waits is attempted again after the restart.
  if (!stop_.posted_last()) notes_.ReleaseFinals();
  // RunOnce submitted every SQE of the last turn: its dead can go.
  connections_.FreeClosed();
  now_ms_ = base::MonotonicMillis();
  if (now_ms_ >= next_tick_ms_) {
    Tick();
    next_tick_ms_ = now_ms_ + kTickMs;
  }
}

void Shard::EndTurn() {
  // End of the turn: give buffers back, re-arm starved receives, share one
  // directory fsync among this turn's commits, write the log lines.
  buffers_->Publish();
  if (connections_.has_starved() && buffers_->available_estimate() > 0) {
    connections_.RearmStarved();
  }
  if (pickup_) pickup_->Pump();
  if (engine_) engine_->Pump(now_ms_);
  spool_->Flush();
  ledger_->Flush();
  log_->Flush();
  if (!notes_.outbox_empty()) notes_.FlushOutbox();
}

}  // namespace sluice::server
