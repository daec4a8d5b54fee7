#include "sluice/server/shard.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "shard_pickup.h"
#include "sluice/base/check.h"
#include "sluice/base/cidr.h"
#include "sluice/base/clock.h"
#include "sluice/base/limits.h"
#include "sluice/base/strings.h"
#include "sluice/diag/diag.h"
#include "sluice/dkim/signer.h"
#include "sluice/pickup/ingester.h"
#include "sluice/server/client_limiter.h"
#include "sluice/server/connection.h"
#include "sluice/server/control_socket.h"
#include "sluice/server/http_listener.h"
#include "sluice/server/metrics_collector.h"
#include "sluice/tls/credentials.h"
#include "sluice/tls/tls.h"

namespace sluice::server {
namespace {

constexpr uint64_t kTickMs = 250;  // timeouts, spool space, stop progress
// How soon the loop looks again while finals wait for a log write that
// another shard's write (holding the file's token) delays.
constexpr int kFinalsPollMs = 1;
constexpr uint16_t kBufferGroup = 1;

absl::Status Errno(std::string_view what) {
  return absl::Status(absl::ErrnoToStatusCode(errno),
                      absl::StrCat(std::string(what), ": ", std::strerror(errno)));
}

// A message recovered after a clean stop: its recipients that had failed
// keep their failures and wait for their due time (spool/retry_state.h).
// One note per domain and distinct state; recipients never tried (or
// without saved state) go at once, as before.
std::vector<ShardNote> SplitByRetryState(std::vector<ShardNote> notes,
                                         const std::vector<spool::RetryEntry>& retry) {
  absl::flat_hash_map<uint32_t, const spool::RetryEntry*> state;
  for (const spool::RetryEntry& e : retry) {
    for (uint32_t r : e.recipients) state[r] = &e;
  }
  std::vector<ShardNote> out;
  for (const ShardNote& n : notes) {
    const size_t first = out.size();
    for (uint32_t r : n.recipients) {
      const auto it = state.find(r);
      const uint16_t failures = it == state.end() ? 0 : it->second->failures;
      const uint64_t due = it == state.end() ? 0 : it->second->next_attempt_us;
      size_t k = first;
      while (k < out.size() && (out[k].failures != failures || out[k].due_us != due)) ++k;
      if (k == out.size()) {
        ShardNote split = n;
        split.recipients.clear();
        split.failures = failures;
        split.due_us = due;
        out.push_back(std::move(split));
      }
      out[k].recipients.push_back(r);
    }
  }
  return out;
}

}  // namespace

struct Shard::Listener {
  Shard* shard;
  int fd = -1;
  bool armed = false;
  tls::ListenerPolicy policy;  // implicit TLS, require_tls, require_auth
  sockaddr_storage peer{};
  socklen_t peer_size = sizeof(sockaddr_storage);
  struct Done final : io::Completion {
    Listener* l;
    void OnComplete(int result, uint32_t flags) override { l->shard->OnAccept(l, result, flags); }
  } done;
};

// A connection refused at accept: its one reply is sent, then it is closed
// whatever happened to the send (a client that already reset makes the
// send fail; a close linked to it would be cancelled and the descriptor
// leak).
struct Shard::Refusal final : io::Completion {
  Shard* shard = nullptr;
  int fd = -1;
  std::string reply;
  void OnComplete(int, uint32_t) override {
    shard->ring_->Close(nullptr, fd);
    shard->refusals_.erase(this);
    delete this;
  }
};

Shard::Shard(int index, const config::Config& config, int log_fd, base::QueueId id_floor,
             std::atomic<int64_t>& open_connections, io::Mailboxes<ShardNote>& mailboxes)
    : index_(index),
      config_(config),
      log_fd_(log_fd),
      open_connections_(open_connections),
      ids_(index),
      mailboxes_(mailboxes),
      too_many_connections_(
          absl::StrCat("421 4.7.0 ", config.hostname, " Error: too many connections\r\n")) {
  ids_.RaiseFloor(id_floor);
}

Shard::~Shard() {
  DropPickup();
  // HTTP connections and fan-outs still in flight: kept, as DropPickup does.
  if (http_ && !http_->idle()) (void)http_.release();
  http_.reset();
  for (Connection* c : connections_) delete c;
  for (Connection* c : dying_) delete c;
  for (Connection* c : dead_) delete c;
  for (Refusal* r : refusals_) {
    close(r->fd);
    delete r;
  }
  for (auto& l : listeners_) {
    if (l->fd >= 0) close(l->fd);
  }
  if (spool_dir_fd_ >= 0) close(spool_dir_fd_);
}

absl::Status Shard::Init() {
  auto ring = io::Ring::Create(limits::kRingEntries);
  if (!ring.ok()) return ring.status();
  ring_ = std::move(*ring);
  mailboxes_.UseRing(index_, ring_.get(), &message_wake_done_);
  auto buffers = ring_->CreateBufferRing(kBufferGroup, limits::kRecvBufferCount,
                                         static_cast<uint32_t>(limits::kRecvBufferSize));
  if (!buffers.ok()) return buffers.status();
  buffers_ = std::move(*buffers);

  const std::string dir = absl::StrCat(config_.spool_dir, "/", index_);
  spool_dir_fd_ = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (spool_dir_fd_ < 0) return Errno(absl::StrCat("open spool directory ", dir));
  spool_ = std::make_unique<spool::SpoolWriter>(*ring_, *buffers_, spool_dir_fd_,
                                                [this] { return NextQueueId(); });
  spool_->set_memory_budget(config_.receive_memory_per_shard);
  log_ = std::make_unique<log::AccountingLog>(*ring_, log_fd_);
  ledger_ = std::make_unique<delivery::Ledger>(*ring_, config_.spool_dir, index_, journal_sequence_,
                                               [this] { return spool_->segment_name(); });
  spool_->set_stored_hook([this](const spool::StoredRecord& r) {
    ledger_->Add(r.id,
                 delivery::RecordRef{static_cast<uint16_t>(index_), r.file, r.offset, r.length},
                 r.recipients);
  });
  if (config_.delivery_enabled) {
    if (dkim_keys_ != nullptr) dkim_signer_ = std::make_unique<dkim::Signer>(*dkim_keys_);
    engine_ = std::make_unique<delivery::Engine>(*ring_, config_, *this, config_.hostname,
                                                 dkim_signer_.get());
    if (auto s = engine_->Init(); !s.ok()) return s;
    // Before any job arrives: a held or suspended domain's recovered mail
    // must not leave at start-up.
    if (admin_store_ != nullptr) {
      engine_->ApplyAdminState(admin_store_->Snapshot(), [this](std::string_view domain) {
        return OwnerShard(domain, mailboxes_.shards()) == index_;
      });
    }
  }

  if (auto s = OpenListeners(); !s.ok()) return s;
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
  if (auto s = InitPickup(); !s.ok()) return s;
  now_ms_ = base::MonotonicMillis();
  CheckSpoolSpace(/*inline_now=*/true);
  if (metrics_board_ != nullptr) PublishMetrics();  // a scrape at once sees every shard
  return absl::OkStatus();
}

absl::Status Shard::OpenListeners() {
  // Plain listeners, then the implicit-TLS ones (tls.listen / --listen-tls).
  std::vector<std::pair<base::SocketAddress, bool>> addresses;
  for (const base::SocketAddress& addr : config_.listen_addresses)
    addresses.emplace_back(addr, false);
  if (credentials_ != nullptr) {
    for (const base::SocketAddress& addr : credentials_->implicit_tls_addresses()) {
      addresses.emplace_back(addr, true);
    }
  }
  for (const auto& [addr, implicit_tls] : addresses) {
    auto l = std::make_unique<Listener>();
    l->shard = this;
    l->done.l = l.get();
    if (credentials_ != nullptr) l->policy = credentials_->PolicyFor(addr, implicit_tls);
    l->fd = socket(addr.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l->fd < 0) return Errno("socket");
    int one = 1;
    setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (setsockopt(l->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
      return Errno("SO_REUSEPORT");
    }
    if (addr.storage.ss_family == AF_INET6) {
      setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    }
    if (bind(l->fd, addr.get(), addr.size) != 0) {
      return Errno(absl::StrCat("bind ", addr.ToString()));
    }
    if (listen(l->fd, 4096) != 0) return Errno(absl::StrCat("listen ", addr.ToString()));
    listeners_.push_back(std::move(l));
  }
  return absl::OkStatus();
}

base::QueueId Shard::NextQueueId() { return ids_.Next(base::WallMicros()); }

void Shard::ArmAccept(Listener* l) {
  if (stopping_ || l->armed) return;
  // The peer address of a multishot accept is not reported per connection;
  // getpeername() on the new socket supplies it.
  ring_->AcceptMultishot(&l->done, l->fd);
  l->armed = true;
}

void Shard::Refuse(int fd, std::string reply) {
  ++stats_.connections_refused;
  auto* r = new Refusal();
  r->shard = this;
  r->fd = fd;
  r->reply = std::move(reply);
  refusals_.insert(r);
  ring_->Send(r, fd, r->reply.data(), r->reply.size());
}

void Shard::OnAccept(Listener* l, int result, uint32_t flags) {
  if (!io::HasMore(flags)) l->armed = false;
  if (result >= 0) {
    Accepted(l, result);
  } else if (result != -ECANCELED && result != -EINVAL && result != -EBADF) {
    // EMFILE/ENFILE and the like: the accept stays usable; re-arm below.
    SLUICE_LOG(kWarning, "server.accept_failed", "accept failed; still listening",
               {{"error", std::strerror(-result)}});
  }
  if (!l->armed && !stopping_) ArmAccept(l);
}

void Shard::Accepted(Listener* l, int fd) {
  if (stopping_) {
    close(fd);
    return;
  }
  if (open_connections_.fetch_add(1, std::memory_order_relaxed) >=
      static_cast<int64_t>(config_.max_connections)) {
    open_connections_.fetch_sub(1, std::memory_order_relaxed);
    return Refuse(fd, too_many_connections_);
  }
  sockaddr_storage peer{};
  socklen_t peer_size = sizeof peer;
  getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_size);
  const base::IpAddress ip = base::IpAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&peer));
  const bool relay_allowed = config_.relay_networks.Contains(ip);
  // Clients outside relay_from are limited per address (Postfix exempts
  // $mynetworks from its anvil limits the same way).
  const bool limited = client_limiter_ != nullptr && !relay_allowed;
  if (limited) {
    const ClientLimiter::Verdict v = client_limiter_->Admit(ip, now_ms_);
    if (v != ClientLimiter::Verdict::kAdmitted) {
      open_connections_.fetch_sub(1, std::memory_order_relaxed);
      const bool fast = v == ClientLimiter::Verdict::kTooFast;
      return Refuse(fd, absl::StrCat("421 4.7.0 ", config_.hostname, " Error: too ",
                                     fast ? "many connections per minute" : "many connections",
                                     " from ", ip.ToString(), "\r\n"));
    }
  }
  ++stats_.connections_accepted;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  auto* c = new Connection(*this, fd, ip.ToString(), relay_allowed, l->policy);
  c->peer = ip;
  c->counted_by_limiter = limited;
  c->shard_slot = connections_.size();
  connections_.push_back(c);
  c->Start();
}

void Shard::Closed(Connection* c) {
  // Swap-remove from the table; starved entries are dropped too.
  const size_t slot = c->shard_slot;
  SLUICE_CHECK(slot < connections_.size() && connections_[slot] == c);
  connections_[slot] = connections_.back();
  connections_[slot]->shard_slot = slot;
  connections_.pop_back();
  starved_.erase(std::remove(starved_.begin(), starved_.end(), c), starved_.end());
  open_connections_.fetch_sub(1, std::memory_order_relaxed);
  if (c->counted_by_limiter) client_limiter_->Release(c->peer);
  dying_.push_back(c);
}

void Shard::ArmWake() {
  ring_->Read(&wake_done_, mailboxes_.wake_fd(index_), &wake_value_, sizeof wake_value_, 0);
}

void Shard::DrainNotes() {
  stats_.notes_received += mailboxes_.Drain(index_, [this](ShardNote note) {
    if (note.kind == ShardNote::Kind::kFinal) {
      // Only while the loop runs: after it the ledger can no longer write.
      if (ledger_) ledger_->Final(note.id, note.recipients.data(), note.recipients.size());
      return;
    }
    OwnedDomain& d = owned_domains_[note.domain];
    ++d.messages;
    d.recipients += note.recipients.size();
    if (engine_) {
      engine_->AddJob(note.id, delivery::RecordRef{note.dir, note.file, note.offset, note.length},
                      note.domain, note.recipients, note.failures, note.due_us);
    }
  });
}

void Shard::OnWake(int, uint32_t) {
  DrainNotes();
  if (helpers_ != nullptr) helpers_->Drain(index_);
  if (pickup_thread_ != nullptr) pickup_thread_->Drain(index_);
  if (stop_requested_.load(std::memory_order_acquire) && !stopping_) BeginStop();
  ApplyReload();
  ArmWake();
}

void Shard::OnMessageWake(int, uint32_t) { DrainNotes(); }

void Shard::RequestStop() {
  stop_requested_.store(true, std::memory_order_release);
  const uint64_t one = 1;
  ssize_t n = write(mailboxes_.wake_fd(index_), &one, sizeof one);
  (void)n;
}

void Shard::RequestReload(std::shared_ptr<const config::Config> next, uint64_t generation) {
  pending_reload_.store(
      std::make_shared<const PendingReload>(PendingReload{std::move(next), generation}),
      std::memory_order_release);
  const uint64_t one = 1;
  ssize_t n = write(mailboxes_.wake_fd(index_), &one, sizeof one);
  (void)n;
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

void Shard::AnnounceQueued(base::QueueId id, const std::vector<std::string>& recipients) {
  const std::optional<delivery::RecordRef> where = ledger_->Find(id);
  SLUICE_CHECK(where.has_value());  // the stored hook ran before the commit callback
  std::vector<uint32_t> all(recipients.size());
  for (uint32_t i = 0; i < all.size(); ++i) all[i] = i;
  AnnounceJobs(id, *where, recipients, all);
}

void Shard::AnnounceQueued(base::QueueId id, const std::vector<std::string_view>& recipients) {
  const std::optional<delivery::RecordRef> where = ledger_->Find(id);
  SLUICE_CHECK(where.has_value());  // the stored hook ran before the commit callback
  std::vector<uint32_t> all(recipients.size());
  for (uint32_t i = 0; i < all.size(); ++i) all[i] = i;
  AnnounceJobs(
      id, *where, [&](uint32_t i) { return recipients[i]; }, all);
}

void Shard::AnnounceJobs(base::QueueId id, const delivery::RecordRef& where,
                         const std::vector<std::string>& recipients,
                         const std::vector<uint32_t>& indexes,
                         const std::vector<spool::RetryEntry>* retry) {
  AnnounceJobs(
      id, where, [&](uint32_t i) { return std::string_view(recipients[i]); }, indexes, retry);
}

void Shard::AnnounceJobs(base::QueueId id, const delivery::RecordRef& where,
                         absl::FunctionRef<std::string_view(uint32_t)> recipient,
                         const std::vector<uint32_t>& indexes,
                         const std::vector<spool::RetryEntry>* retry) {
  // One note per distinct domain. A message has few domains, scanned
  // linearly; a batch may have thousands, found through a map once the
  // list grows (a linear scan would cost recipients x domains).
  std::vector<ShardNote> notes;
  absl::flat_hash_map<std::string, size_t> by_domain;
  std::string domain;
  for (uint32_t i : indexes) {
    const std::string_view r = recipient(i);
    const size_t at = r.rfind('@');
    domain.assign(at == std::string_view::npos ? std::string_view() : r.substr(at + 1));
    for (char& c : domain) c = base::AsciiLower(c);
    size_t k = notes.size();
    if (notes.size() <= 8) {
      for (size_t j = 0; j < notes.size(); ++j) {
        if (notes[j].domain == domain) k = j;
      }
    } else {
      if (by_domain.empty()) {
        for (size_t j = 0; j < notes.size(); ++j) by_domain.emplace(notes[j].domain, j);
      }
      auto it = by_domain.find(domain);
      if (it != by_domain.end()) k = it->second;
    }
    if (k == notes.size()) {
      if (!by_domain.empty()) by_domain.emplace(domain, k);
      ShardNote n;
      n.kind = ShardNote::Kind::kJob;
      n.id = id;
      n.dir = where.dir;
      n.domain = domain;
      n.file = where.file;
      n.offset = where.offset;
      n.length = where.length;
      notes.push_back(std::move(n));
    }
    notes[k].recipients.push_back(i);
  }
  if (retry != nullptr && !retry->empty()) notes = SplitByRetryState(std::move(notes), *retry);
  for (ShardNote& n : notes) {
    const int owner = OwnerShard(n.domain, mailboxes_.shards());
    Post(owner, std::move(n));
  }
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
  // The engine has just buffered this outcome's records: the ledger hears
  // of it once they reached the file (a crash in between then repeats the
  // attempt rather than leaving a recipient no record accounts for).
  const uint64_t mark = log_->mark();
  if (finals_waiting_log_.empty() && log_->Reached(mark)) {
    return SendFinal(id, dir, std::move(recipients));
  }
  finals_waiting_log_.push_back(WaitingFinal{mark, id, dir, std::move(recipients)});
}

void Shard::ReleaseFinals() {
  // Past the stop deadline this shard promised to post no more notes: what
  // still waits is attempted again after the restart.
  if (posted_last_) return;
  while (!finals_waiting_log_.empty() && log_->Reached(finals_waiting_log_.front().log_mark)) {
    WaitingFinal& f = finals_waiting_log_.front();
    SendFinal(f.id, f.dir, std::move(f.recipients));
    finals_waiting_log_.pop_front();
  }
}

void Shard::SendFinal(base::QueueId id, uint16_t dir, std::vector<uint32_t> recipients) {
  const int home = dir % mailboxes_.shards();
  if (home == index_) {
    ledger_->Final(id, recipients.data(), recipients.size());
    return;
  }
  ShardNote n;
  n.kind = ShardNote::Kind::kFinal;
  n.id = id;
  n.dir = dir;
  n.recipients = std::move(recipients);
  Post(home, std::move(n));
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

void Shard::Post(int target, ShardNote note) {
  // Order per target is kept: once anything waits in the outbox, new notes
  // queue behind it.
  if (outbox_.empty() && mailboxes_.Post(index_, target, std::move(note))) return;
  outbox_.emplace_back(target, std::move(note));
}

void Shard::FlushOutbox() {
  size_t sent = 0;
  for (; sent < outbox_.size(); ++sent) {
    auto& [target, note] = outbox_[sent];
    if (!mailboxes_.Post(index_, target, std::move(note))) break;
  }
  outbox_.erase(outbox_.begin(), outbox_.begin() + static_cast<long>(sent));
}

void Shard::BeginStop() {
  stopping_ = true;
  stop_deadline_ms_ = now_ms_ + uint64_t{config_.shutdown_grace_s} * 1000;
  for (auto& l : listeners_) {
    // Closing the listener socket ends the multishot accept.
    if (l->armed) {
      ring_->Cancel(nullptr, &l->done);
    }
    shutdown(l->fd, SHUT_RDWR);
  }
  if (pickup_) pickup_->Stop();
  if (engine_) engine_->BeginStop();
  if (control_) control_->Stop();
  if (http_) http_->Stop();
  // Shutdown() may destroy the connection: iterate over a copy.
  std::vector<Connection*> all = connections_;
  for (Connection* c : all) c->Shutdown();
}

namespace {

struct SpaceFigures {
  bool ok = false;
  uint64_t free_bytes = 0;
  uint64_t size_bytes = 0;
};

SpaceFigures StatSpool(const std::string& dir) {
  struct statvfs st;
  if (statvfs(dir.c_str(), &st) != 0) return {};
  return {true, static_cast<uint64_t>(st.f_bavail) * st.f_frsize,
          static_cast<uint64_t>(st.f_blocks) * st.f_frsize};
}

}  // namespace

void Shard::CheckSpoolSpace(bool inline_now) {
  std::string dir = absl::StrCat(config_.spool_dir, "/", index_);
  if (inline_now || helpers_ == nullptr) {
    const SpaceFigures f = StatSpool(dir);
    return ApplySpoolSpace(f.ok, f.free_bytes, f.size_bytes);
  }
  if (space_check_in_flight_) return;  // a slow disk: one check at a time
  auto result = std::make_shared<SpaceFigures>();
  io::HelperPool::Job job;
  job.work = [result, dir = std::move(dir)] { *result = StatSpool(dir); };
  job.done = [this, result] {
    space_check_in_flight_ = false;
    ApplySpoolSpace(result->ok, result->free_bytes, result->size_bytes);
  };
  // No free slot: the figures stay as they are until the next tick.
  space_check_in_flight_ = helpers_->Submit(index_, std::move(job));
}

void Shard::ApplySpoolSpace(bool ok, uint64_t free_bytes, uint64_t size_bytes) {
  if (!ok) {
    spool_available_ = false;
    return;
  }
  spool_available_ = free_bytes >= config_.spool_min_free_bytes;
  spool_free_bytes_ = free_bytes;
  spool_size_bytes_ = size_bytes;
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
  CheckSpoolSpace();
  if (metrics_board_ != nullptr && now_ms_ >= next_metrics_ms_) {
    PublishMetrics();
    next_metrics_ms_ = now_ms_ + metrics::kSnapshotIntervalMs;
  }
  if (pickup_) pickup_->Tick(now_ms_);
  std::vector<Connection*> all = connections_;
  if (engine_) engine_->Tick(now_ms_);
  ledger_->Tick();
  if (stopping_ && now_ms_ >= stop_deadline_ms_) {
    for (Connection* c : all) c->ForceClose();
    if (engine_) engine_->AbortAll();
    return;
  }
  for (Connection* c : all) c->CheckTimeouts(now_ms_);
}

void Shard::Run() {
  for (auto& l : listeners_) ArmAccept(l.get());
  if (http_) http_->Start();
  ArmWake();
  for (RecoveredMessage& m : recovered_) {
    ledger_->Add(m.id, m.where, static_cast<uint32_t>(m.pending.size()), m.journaled);
    if (!m.pending.empty()) AnnounceJobs(m.id, m.where, m.recipients, m.pending, &m.retry);
  }
  recovered_.clear();
  recovered_.shrink_to_fit();
  if (pickup_) {
    pickup_->Start();
    pickup_->Pump();
  }
  next_tick_ms_ = now_ms_ + kTickMs;
  while (true) {
    int wait_ms = static_cast<int>(next_tick_ms_ > now_ms_ ? next_tick_ms_ - now_ms_ : 0);
    if (engine_) wait_ms = engine_->NextWakeupMs(now_ms_, wait_ms);
    if (pickup_ && pickup_->has_work()) wait_ms = 0;  // files waiting: do not sleep
    // Finals wait for a log write, which another shard's may delay (the
    // file's writer token): look again soon rather than at the next tick.
    if (!finals_waiting_log_.empty()) wait_ms = std::min(wait_ms, kFinalsPollMs);
    ring_->RunOnce(wait_ms);
    ReleaseFinals();
    // RunOnce submitted every SQE of the last turn: its dead can go.
    for (Connection* c : dead_) delete c;
    dead_.swap(dying_);
    dying_.clear();
    now_ms_ = base::MonotonicMillis();
    if (now_ms_ >= next_tick_ms_) {
      Tick();
      next_tick_ms_ = now_ms_ + kTickMs;
    }
    // End of the turn: give buffers back, re-arm starved receives, share one
    // directory fsync among this turn's commits, write the log lines.
    buffers_->Publish();
    if (!starved_.empty() && buffers_->available_estimate() > 0) {
      std::vector<Connection*> starved;
      starved.swap(starved_);
      for (Connection* c : starved) c->ArmReceive();
    }
    if (pickup_) pickup_->Pump();
    if (engine_) engine_->Pump(now_ms_);
    spool_->Flush();
    ledger_->Flush();
    log_->Flush();
    if (!outbox_.empty()) FlushOutbox();
    // Stopping, in two steps. First this shard's own work ends: sessions,
    // spool writes, deliveries, and the notes it still has to post. From then
    // on it sends no note; it says so on the shared barrier. It leaves only
    // when every shard got that far (so no final outcome can still be on its
    // way here) and its ledger has made the last ones durable. Past the
    // deadline it goes regardless: what is not durable is delivered again
    // after the restart, never lost.
    const bool late = now_ms_ >= stop_deadline_ms_;
    if (stopping_ && !posted_last_ && connections_.empty() && spool_->in_flight() == 0 &&
        (!pickup_ || pickup_->idle() || late) && (!engine_ || engine_->idle() || late) &&
        (!http_ || http_->idle() || late) && (outbox_.empty() || late) &&
        (finals_waiting_log_.empty() || late)) {
      posted_last_ = true;
      if (stop_barrier_ != nullptr) stop_barrier_->fetch_sub(1, std::memory_order_acq_rel);
    }
    if (posted_last_) {
      const bool others_done =
          stop_barrier_ == nullptr || stop_barrier_->load(std::memory_order_acquire) == 0;
      if (others_done) DrainNotes();  // the last finals, if any came in this turn
      if ((others_done || now_ms_ >= stop_deadline_ms_ + kTickMs * 8) && ledger_->idle() &&
          log_->idle()) {
        break;
      }
    }
  }
  SaveRetryState();
  // Let the last closes and log writes reach the kernel.
  ring_->Submit();
  tls::ReleaseThreadState();
}

}  // namespace sluice::server
