// sluice-blast: an SMTP load generator on Sluice's io runtime. See
// docs/TOOLS.md. The protocol lives in ClientSession (pure); this file owns
// sockets, the ring, time, rate limiting and the report.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "sluice/base/cidr.h"
#include "sluice/base/strings.h"
#include "sluice/io/ring.h"
#include "sluice/tls/tls.h"
#include "tools/blast/client_session.h"
#include "tools/blast/message_factory.h"
#include "tools/common/histogram.h"

namespace sluice::tools {
namespace {

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

struct Options {
  base::SocketAddress target;
  bool have_target = false;
  int connections = 1;
  int threads = 1;
  uint64_t messages = 0;
  double duration_s = 0;
  double rate = 0;
  bool pipelining = true;
  bool bdat = false;
  bool json = false;
  bool expect_failures = false;
  bool starttls = false;
  bool tls_resume = false;      // offer each slot's last TLS session on its next connection
  uint64_t per_connection = 0;  // messages per session before QUIT and a new one (0: no limit)
  std::string tls_servername = "localhost";  // SNI; the certificate is not verified
  uint64_t max_reconnects = 1000;
  FactoryOptions factory;
};

Options g_opt;
std::unique_ptr<MessageFactory> g_factory;
std::shared_ptr<const tls::Context> g_tls;  // client context, with --starttls
std::atomic<bool> g_tls_reported{false};    // "STARTTLS not offered" printed once
std::atomic<uint64_t> g_next{0};
std::atomic<uint64_t> g_reconnects{0};
uint64_t g_start_ns = 0;
uint64_t g_deadline_ns = 0;

struct Totals {
  uint64_t ok = 0, failed = 0, bytes = 0, rcpt_ok = 0, rcpt_failed = 0;
  uint64_t connections = 0, connect_failed = 0, lost = 0, protocol_errors = 0;
  uint64_t tls_established = 0, tls_failed = 0, tls_resumed = 0;
  std::string tls_version, tls_cipher;  // of the first session that got TLS
  bool server_pipelining = false, server_chunking = false;
  std::map<int, uint64_t> reply_codes;   // every reply >= 400
  std::map<int, uint64_t> failed_codes;  // deciding code of each failed message (0: lost)
  LatencyHistogram latency;

  void Merge(const Totals& o) {
    ok += o.ok;
    failed += o.failed;
    bytes += o.bytes;
    rcpt_ok += o.rcpt_ok;
    rcpt_failed += o.rcpt_failed;
    connections += o.connections;
    connect_failed += o.connect_failed;
    lost += o.lost;
    protocol_errors += o.protocol_errors;
    tls_established += o.tls_established;
    tls_failed += o.tls_failed;
    tls_resumed += o.tls_resumed;
    if (tls_version.empty()) {
      tls_version = o.tls_version;
      tls_cipher = o.tls_cipher;
    }
    server_pipelining |= o.server_pipelining;
    server_chunking |= o.server_chunking;
    for (auto& [k, v] : o.reply_codes) reply_codes[k] += v;
    for (auto& [k, v] : o.failed_codes) failed_codes[k] += v;
    latency.Merge(o.latency);
  }
};

constexpr uint16_t kBufferGroup = 1;

class Worker;

class Conn final : public ClientHandler {
 public:
  // `slot`: which of the worker's connections this is; a session replacing
  // it (--messages-per-connection, a lost connection) takes the same slot
  // and, with --tls-resume, the slot's last TLS session.
  Conn(Worker& w, int slot);
  void Start();
  void ArmReceive();
  void Resume() {
    session_.Resume();
    MaybeSend();
    MaybeDestroy();
  }
  uint64_t wake_ns = 0;

  Next NextMessage(OutMessage& out) override;
  void DataSent(uint64_t) override { data_sent_ns_ = NowNs(); }
  void MessageDone(const MessageResult& r) override;
  void ReplySeen(const Reply& r) override;
  void StartTls() override;

 private:
  void OnConnect(int result, uint32_t flags);
  void OnReceive(int result, uint32_t flags);
  void OnSend(int result, uint32_t flags);
  void MaybeSend();
  void BeginShutdown();
  void MaybeDestroy();
  void FeedCiphertext(std::string_view data);
  void DriveHandshake();
  void TlsBroken(const std::string& why);

  Worker& w_;
  const int slot_;
  int fd_ = -1;
  ClientSession session_;
  std::string sending_;
  size_t sent_ = 0;
  bool connected_ = false, connect_in_flight_ = false, recv_armed_ = false, send_in_flight_ = false;
  bool shut_ = false, destroyed_ = false, any_message_ = false;
  uint64_t data_sent_ns_ = 0;
  int64_t held_id_ = -1;  // claimed but waiting for its rate slot
  uint64_t started_ = 0;  // messages this session took on
  bool rotate_ = false;   // QUIT because of --messages-per-connection, not for lack of work
  bool tls_saved_ = false;
  // After the 220 to STARTTLS every byte on the socket goes through this.
  std::unique_ptr<tls::Session> tls_;

  io::MemberCompletion<Conn, &Conn::OnConnect> connect_done_{this};
  io::MemberCompletion<Conn, &Conn::OnReceive> recv_done_{this};
  io::MemberCompletion<Conn, &Conn::OnSend> send_done_{this};
};

class Worker {
 public:
  Worker(int index, int connections) : index_(index), connections_(connections) {}

  void Run() {
    auto ring = io::Ring::Create(4096);
    if (!ring.ok()) Die(std::string(ring.status().message()));
    ring_ = std::move(*ring);
    auto buffers = ring_->CreateBufferRing(kBufferGroup, 512, 16384);
    if (!buffers.ok()) Die(std::string(buffers.status().message()));
    buffers_ = std::move(*buffers);
    saved_.resize(static_cast<size_t>(connections_));
    for (int i = 0; i < connections_; ++i) Open(i);
    while (live_ > 0) {
      int timeout = 100;
      const uint64_t now = NowNs();
      if (!waiting_.empty()) {
        uint64_t earliest = UINT64_MAX;
        for (Conn* c : waiting_) earliest = std::min(earliest, c->wake_ns);
        timeout = earliest <= now
                      ? 0
                      : static_cast<int>(std::min<uint64_t>((earliest - now) / 1000000 + 1, 100));
      }
      ring_->RunOnce(timeout);
      for (Conn* c : dead_) delete c;
      dead_.swap(dying_);
      dying_.clear();
      if (!waiting_.empty()) {
        const uint64_t t = NowNs();
        std::vector<Conn*> due;
        auto it = std::partition(waiting_.begin(), waiting_.end(),
                                 [t](Conn* c) { return c->wake_ns > t; });
        due.assign(it, waiting_.end());
        waiting_.erase(it, waiting_.end());
        for (Conn* c : due) c->Resume();
      }
      buffers_->Publish();
      if (!starved_.empty() && buffers_->available_estimate() > 0) {
        std::vector<Conn*> s;
        s.swap(starved_);
        for (Conn* c : s) c->ArmReceive();
      }
    }
    ring_->Submit();
    for (Conn* c : dead_) delete c;
    for (Conn* c : dying_) delete c;
    tls::ReleaseThreadState();  // wolfSSL's per-thread ECC cache
  }

  void Open(int slot) {
    ++live_;
    ++totals.connections;
    auto* c = new Conn(*this, slot);
    c->Start();
  }
  // A connection is gone. `lost`: it ended early (replaced up to
  // --max-reconnects times); `rotate`: it quit after its
  // --messages-per-connection (always replaced while work remains).
  void Closed(Conn* c, int slot, bool lost, bool rotate) {
    --live_;
    starved_.erase(std::remove(starved_.begin(), starved_.end(), c), starved_.end());
    waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), c), waiting_.end());
    dying_.push_back(c);
    if (Exhausted()) return;
    if (rotate ||
        (lost && g_reconnects.fetch_add(1, std::memory_order_relaxed) < g_opt.max_reconnects)) {
      Open(slot);
    }
  }
  // --tls-resume: the last TLS session each slot handed out.
  tls::SavedSession& saved(int slot) { return saved_[static_cast<size_t>(slot)]; }
  void Wait(Conn* c) { waiting_.push_back(c); }
  void Starved(Conn* c) { starved_.push_back(c); }
  static bool Exhausted() {
    if (g_opt.messages > 0 && g_next.load(std::memory_order_relaxed) >= g_opt.messages) return true;
    if (g_deadline_ns > 0 && NowNs() >= g_deadline_ns) return true;
    return false;
  }
  [[noreturn]] static void Die(const std::string& why) {
    std::fprintf(stderr, "sluice-blast: %s\n", why.c_str());
    std::exit(2);
  }

  io::Ring& ring() { return *ring_; }
  io::BufferRing& buffers() { return *buffers_; }
  Totals totals;

 private:
  int index_;
  int connections_;
  int live_ = 0;
  std::unique_ptr<io::Ring> ring_;
  std::unique_ptr<io::BufferRing> buffers_;
  std::vector<Conn*> dying_, dead_, starved_, waiting_;
  std::vector<tls::SavedSession> saved_;
};

Conn::Conn(Worker& w, int slot)
    : w_(w),
      slot_(slot),
      session_(ClientOptions{"blast.sluice.test", g_opt.pipelining, g_opt.bdat, g_opt.starttls},
               *this) {}

void Conn::Start() {
  fd_ = socket(g_opt.target.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) Worker::Die(absl::StrCat("socket: ", strerror(errno)));
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  w_.ring().Connect(&connect_done_, fd_, g_opt.target.get(), g_opt.target.size);
  connect_in_flight_ = true;
}

void Conn::OnConnect(int result, uint32_t) {
  connect_in_flight_ = false;
  if (result < 0) {
    ++w_.totals.connect_failed;
    if (w_.totals.connect_failed <= 3) {
      std::fprintf(stderr, "sluice-blast: connect %s: %s\n", g_opt.target.ToString().c_str(),
                   strerror(-result));
    }
    BeginShutdown();
    MaybeDestroy();
    return;
  }
  connected_ = true;
  ArmReceive();
}

void Conn::ArmReceive() {
  if (recv_armed_ || shut_) return;
  w_.ring().RecvMultishot(&recv_done_, fd_, w_.buffers());
  recv_armed_ = true;
}

void Conn::OnReceive(int result, uint32_t flags) {
  if (!io::HasMore(flags)) recv_armed_ = false;
  if (result > 0 && io::HasBuffer(flags)) {
    const uint16_t id = io::BufferId(flags);
    w_.buffers().Acquire(id);
    if (!shut_) {
      const std::string_view data(w_.buffers().data(id), static_cast<size_t>(result));
      if (tls_) {
        FeedCiphertext(data);
      } else {
        session_.Feed(data);
      }
    }
    w_.buffers().Release(id);
    if (session_.protocol_error()) ++w_.totals.protocol_errors;
    MaybeSend();
    if (!recv_armed_) ArmReceive();
  } else if (result == -ENOBUFS) {
    if (!shut_) w_.Starved(this);
  } else if (!recv_armed_ || result <= 0) {
    if (!session_.closed()) {
      ++w_.totals.lost;
      session_.ConnectionLost();
    }
    BeginShutdown();
  }
  MaybeDestroy();
}

void Conn::MaybeSend() {
  if (send_in_flight_ || shut_) return;
  if (sent_ == sending_.size()) {
    sending_.clear();
    sent_ = 0;
    if (tls_) {
      // Plaintext is encrypted only after the previous ciphertext left, so
      // the output stays bounded by one message.
      if (tls_->established() && !session_.output().empty()) {
        const absl::Status st = tls_->Write(session_.output());
        session_.output().clear();
        if (!st.ok()) return TlsBroken(std::string(st.message()));
      }
      sending_.swap(tls_->ciphertext_out());
    } else {
      sending_.swap(session_.output());
    }
  }
  if (sending_.empty()) {
    if (session_.closed()) BeginShutdown();
    return;
  }
  w_.ring().Send(&send_done_, fd_, sending_.data() + sent_, sending_.size() - sent_);
  send_in_flight_ = true;
}

void Conn::OnSend(int result, uint32_t) {
  send_in_flight_ = false;
  if (result < 0) {
    sending_.clear();
    sent_ = 0;
    if (!session_.closed()) {
      ++w_.totals.lost;
      session_.ConnectionLost();
    }
    BeginShutdown();
  } else {
    sent_ += static_cast<size_t>(result);
    MaybeSend();
  }
  MaybeDestroy();
}

void Conn::StartTls() {
  // The 220 to STARTTLS arrived, and nothing else was sent after STARTTLS:
  // the next bytes out are the ClientHello.
  auto s = tls::Session::NewClient(g_tls, g_opt.tls_servername);
  if (!s.ok()) return TlsBroken(std::string(s.status().message()));
  tls_ = std::move(*s);
  if (g_opt.tls_resume) tls_->Offer(w_.saved(slot_));  // an empty or stale one: a full handshake
  DriveHandshake();
}

void Conn::DriveHandshake() {
  switch (tls_->Handshake()) {
    case tls::Session::Progress::kFailed:
      return TlsBroken(std::string(tls_->error()));  // a copy: TlsBroken frees tls_
    case tls::Session::Progress::kEstablished:
      ++w_.totals.tls_established;
      if (tls_->resumed()) ++w_.totals.tls_resumed;
      if (w_.totals.tls_version.empty()) {
        w_.totals.tls_version = tls_->version();
        w_.totals.tls_cipher = tls_->cipher();
      }
      session_.TlsReady();  // EHLO again, over TLS
      return;
    case tls::Session::Progress::kInProgress:
      return;
  }
}

void Conn::FeedCiphertext(std::string_view data) {
  char plain[16384];
  while (tls_ && !session_.closed()) {
    const size_t took = tls_->PutCiphertext(data.data(), data.size());
    data.remove_prefix(took);
    if (!tls_->established()) {
      DriveHandshake();
      if (!tls_ || !tls_->established()) {
        if (data.empty()) return;
        if (took == 0) return TlsBroken("TLS input overflow during the handshake");
        continue;
      }
    }
    // Established: decrypt everything that is complete.
    size_t got_total = 0;
    for (;;) {
      absl::StatusOr<size_t> got = tls_->Read(plain, sizeof plain);
      if (!got.ok()) return TlsBroken(std::string(got.status().message()));
      if (*got == 0) break;
      got_total += *got;
      if (g_opt.tls_resume && !tls_saved_) {
        // The first reply over TLS was read, so a TLS 1.3 ticket sent after
        // the handshake has been taken in (tls::Session::Save). A resumed
        // session gives nothing: the slot keeps offering the one it has.
        tls::SavedSession saved = tls_->Save();
        tls_saved_ = !saved.empty() || tls_->resumed();
        if (!saved.empty()) w_.saved(slot_) = std::move(saved);
      }
      session_.Feed(std::string_view(plain, *got));
      if (session_.closed()) return;
    }
    if (tls_->peer_closed()) {
      if (!session_.closed()) {
        ++w_.totals.lost;
        session_.ConnectionLost();
      }
      return;
    }
    if (data.empty()) return;
    if (took == 0 && got_total == 0) return TlsBroken("TLS: no progress on the input");
  }
}

void Conn::TlsBroken(const std::string& why) {
  ++w_.totals.tls_failed;
  if (w_.totals.tls_failed <= 3) std::fprintf(stderr, "sluice-blast: TLS: %s\n", why.c_str());
  tls_.reset();
  sending_.clear();
  sent_ = 0;
  session_.output().clear();
  if (!session_.closed()) session_.ConnectionLost();
  BeginShutdown();
}

void Conn::BeginShutdown() {
  if (shut_) return;
  shut_ = true;
  if (session_.state() == ClientSession::State::kWaiting) session_.ConnectionLost();
  if (held_id_ >= 0) {
    // A claimed id that was never sent; it is counted as failed so totals add up.
    ++w_.totals.failed;
    ++w_.totals.failed_codes[0];
    held_id_ = -1;
  }
  if (connected_) shutdown(fd_, SHUT_RDWR);
  if (recv_armed_) {
    w_.ring().Cancel(nullptr, &recv_done_);
  }
}

void Conn::MaybeDestroy() {
  if (!shut_ || recv_armed_ || send_in_flight_ || connect_in_flight_ || destroyed_) return;
  destroyed_ = true;
  if (session_.server_pipelining()) w_.totals.server_pipelining = true;
  if (session_.server_chunking()) w_.totals.server_chunking = true;
  w_.ring().Close(nullptr, fd_);
  // Reconnect unless this session ended because the work ran out, or
  // because the server cannot do STARTTLS (every new session would end the
  // same way).
  const std::string& why = session_.close_reason();
  const bool no_tls = why.rfind("STARTTLS", 0) == 0;
  if (no_tls && !g_tls_reported.exchange(true)) {
    std::fprintf(stderr, "sluice-blast: %s\n", why.c_str());
  }
  const bool quit = why == "quit";
  w_.Closed(this, slot_, !quit && !no_tls, quit && rotate_);
}

Next Conn::NextMessage(OutMessage& out) {
  if (held_id_ < 0 && g_opt.per_connection > 0 && started_ >= g_opt.per_connection) {
    rotate_ = true;  // QUIT; MaybeDestroy opens the next session in this slot
    return Next::kDone;
  }
  uint64_t id;
  if (held_id_ >= 0) {
    id = static_cast<uint64_t>(held_id_);
  } else {
    if (g_deadline_ns > 0 && NowNs() >= g_deadline_ns) return Next::kDone;
    id = g_next.fetch_add(1, std::memory_order_relaxed);
    if (g_opt.messages > 0 && id >= g_opt.messages) return Next::kDone;
  }
  if (g_opt.rate > 0) {
    const uint64_t due =
        g_start_ns + static_cast<uint64_t>(static_cast<double>(id) * 1e9 / g_opt.rate);
    if (NowNs() < due) {
      held_id_ = static_cast<int64_t>(id);
      wake_ns = due;
      w_.Wait(this);
      return Next::kWait;
    }
  }
  held_id_ = -1;
  ++started_;
  g_factory->Make(id, out);
  return Next::kMessage;
}

void Conn::MessageDone(const MessageResult& r) {
  Totals& t = w_.totals;
  t.rcpt_ok += r.recipients_ok;
  t.rcpt_failed += r.recipients_failed;
  if (r.ok) {
    ++t.ok;
    t.bytes += r.bytes;
    t.latency.Record((NowNs() - data_sent_ns_) / 1000);
  } else {
    ++t.failed;
    ++t.failed_codes[r.code];
  }
}

void Conn::ReplySeen(const Reply& r) {
  if (r.code >= 400) ++w_.totals.reply_codes[r.code];
}

int Usage(const std::string& error) {
  if (!error.empty()) std::fprintf(stderr, "sluice-blast: %s\n", error.c_str());
  std::fprintf(stderr,
               "usage: sluice-blast --target ADDR:PORT (--messages N | --duration S) [options]\n"
               "  --connections N        concurrent SMTP sessions (default 1)\n"
               "  --threads N            event loops sharing the connections (default 1)\n"
               "  --size BYTES           approximate message size (default 2048)\n"
               "  --sample-dir DIR       send these .eml files (round robin) instead\n"
               "  --recipients N         recipients per message (default 1)\n"
               "  --domains N            recipient domains d0..dN-1.example (default 1)\n"
               "  --domain-weights W,..  relative weight of each domain (default uniform)\n"
               "  --pipelining on|off    use PIPELINING when offered (default on)\n"
               "  --bdat                 use BDAT (CHUNKING) when offered\n"
               "  --starttls             STARTTLS before sending (required; no verification)\n"
               "  --tls-servername NAME  SNI sent with --starttls (default localhost)\n"
               "  --tls-resume           with --starttls: offer each connection slot's last\n"
               "                         TLS session (ticket) on its next connection\n"
               "  --messages-per-connection N  QUIT after N messages and open a new\n"
               "                         connection in the same slot (default: no limit)\n"
               "  --rate MSGS_PER_S      global start rate\n"
               "  --seed N               message and recipient seed (default 1)\n"
               "  --max-reconnects N     stop replacing lost connections after N (default 1000)\n"
               "  --expect-failures      exit 0 even if messages were refused\n"
               "  --json                 JSON report on stdout\n");
  return 2;
}

std::string CodesText(const std::map<int, uint64_t>& m) {
  std::string s;
  for (auto& [k, v] : m) absl::StrAppend(&s, s.empty() ? "" : ", ", k, " x ", v);
  return s.empty() ? "none" : s;
}
std::string CodesJson(const std::map<int, uint64_t>& m) {
  std::string s = "{";
  for (auto& [k, v] : m) absl::StrAppend(&s, s.size() > 1 ? "," : "", "\"", k, "\":", v);
  return s + "}";
}

int Main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--help" || a == "-h") return Usage("");
    if (a == "--bdat") {
      g_opt.bdat = true;
      continue;
    }
    if (a == "--json") {
      g_opt.json = true;
      continue;
    }
    if (a == "--expect-failures") {
      g_opt.expect_failures = true;
      continue;
    }
    if (a == "--starttls") {
      g_opt.starttls = true;
      continue;
    }
    if (a == "--tls-resume") {
      g_opt.tls_resume = true;
      continue;
    }
    if (i + 1 >= argc) return Usage(absl::StrCat("missing value or unknown flag ", base::Av(a)));
    const std::string v = argv[++i];
    uint64_t n = 0;
    const bool num = base::ParseUint64(v, n);
    if (a == "--target") {
      auto t = base::SocketAddress::Parse(v);
      if (!t.ok()) return Usage(std::string(t.status().message()));
      g_opt.target = *t;
      g_opt.have_target = true;
    } else if (a == "--connections" && num && n >= 1 && n <= 100000) {
      g_opt.connections = static_cast<int>(n);
    } else if (a == "--threads" && num && n >= 1 && n <= 64) {
      g_opt.threads = static_cast<int>(n);
    } else if (a == "--messages" && num && n >= 1) {
      g_opt.messages = n;
    } else if (a == "--duration") {
      g_opt.duration_s = std::atof(v.c_str());
      if (g_opt.duration_s <= 0) return Usage("--duration must be positive");
    } else if (a == "--rate") {
      g_opt.rate = std::atof(v.c_str());
      if (g_opt.rate <= 0) return Usage("--rate must be positive");
    } else if (a == "--size" && num && n >= 1) {
      g_opt.factory.size = n;
    } else if (a == "--sample-dir") {
      g_opt.factory.sample_dir = v;
    } else if (a == "--recipients" && num && n >= 1 && n <= 10000) {
      g_opt.factory.recipients = n;
    } else if (a == "--domains" && num && n >= 1 && n <= 1000000) {
      g_opt.factory.domains = n;
    } else if (a == "--domain-weights") {
      for (absl::string_view w : absl::StrSplit(base::Av(v), ',')) {
        g_opt.factory.domain_weights.push_back(std::atof(std::string(w).c_str()));
      }
    } else if (a == "--pipelining" && (v == "on" || v == "off")) {
      g_opt.pipelining = v == "on";
    } else if (a == "--seed" && num) {
      g_opt.factory.seed = n;
    } else if (a == "--tls-servername" && !v.empty()) {
      g_opt.tls_servername = v;
    } else if (a == "--messages-per-connection" && num && n >= 1) {
      g_opt.per_connection = n;
    } else if (a == "--max-reconnects" && num) {
      g_opt.max_reconnects = n;
    } else {
      return Usage(absl::StrCat("bad flag or value: ", base::Av(a), " ", v));
    }
  }
  if (!g_opt.have_target) return Usage("--target is required");
  if ((g_opt.messages == 0) == (g_opt.duration_s == 0))
    return Usage("give one of --messages, --duration");
  if (g_opt.tls_resume && !g_opt.starttls) return Usage("--tls-resume needs --starttls");
  auto factory = MessageFactory::Create(g_opt.factory);
  if (!factory.ok()) return Usage(std::string(factory.status().message()));
  g_factory = std::move(*factory);
  if (g_opt.starttls) {
    // A load generator measures the server, not PKI: the server's
    // certificate is not verified (test certificates are self-signed).
    tls::ContextOptions o;
    o.mode = tls::Mode::kClient;
    auto ctx = tls::Context::Create(o);
    if (!ctx.ok()) return Usage(std::string(ctx.status().message()));
    g_tls = std::move(*ctx);
  }
  signal(SIGPIPE, SIG_IGN);

  g_opt.threads = std::min(g_opt.threads, g_opt.connections);
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < g_opt.threads; ++i) {
    const int share =
        g_opt.connections / g_opt.threads + (i < g_opt.connections % g_opt.threads ? 1 : 0);
    workers.push_back(std::make_unique<Worker>(i, share));
  }
  g_start_ns = NowNs();
  if (g_opt.duration_s > 0)
    g_deadline_ns = g_start_ns + static_cast<uint64_t>(g_opt.duration_s * 1e9);
  std::vector<std::thread> threads;
  for (auto& w : workers) threads.emplace_back([w = w.get()] { w->Run(); });
  for (auto& t : threads) t.join();
  const double elapsed = static_cast<double>(NowNs() - g_start_ns) / 1e9;

  Totals t;
  for (auto& w : workers) t.Merge(w->totals);
  const uint64_t claimed =
      std::min<uint64_t>(g_next.load(), g_opt.messages > 0 ? g_opt.messages : UINT64_MAX);
  const uint64_t attempted = t.ok + t.failed;
  const uint64_t not_sent =
      g_opt.messages > 0 && g_opt.messages > attempted ? g_opt.messages - attempted : 0;
  (void)claimed;
  const double mps = elapsed > 0 ? static_cast<double>(t.ok) / elapsed : 0;
  const double bps = elapsed > 0 ? static_cast<double>(t.bytes) / elapsed : 0;
  const auto& h = t.latency;
  if (g_opt.json) {
    std::printf(
        "{\"target\":\"%s\",\"connections\":%d,\"threads\":%d,\"pipelining\":%s,\"server_"
        "pipelining\":%s,"
        "\"bdat\":%s,\"server_chunking\":%s,\"elapsed_s\":%.6f,\"messages_ok\":%llu,"
        "\"messages_failed\":%llu,\"messages_not_sent\":%llu,\"recipients_ok\":%llu,"
        "\"recipients_failed\":%llu,\"bytes\":%llu,\"messages_per_s\":%.1f,\"bytes_per_s\":%.1f,"
        "\"latency_us\":{\"count\":%llu,\"min\":%llu,\"mean\":%.1f,\"p50\":%llu,\"p99\":%llu,"
        "\"p999\":%llu,\"max\":%llu},\"replies_4xx_5xx\":%s,\"failed_by_code\":%s,"
        "\"sessions\":%llu,\"connect_failed\":%llu,\"connections_lost\":%llu,\"protocol_errors\":%"
        "llu,\"starttls\":%s,\"tls_established\":%llu,\"tls_failed\":%llu,\"tls_resume\":%s,"
        "\"tls_resumed\":%llu,\"tls_version\":\"%s\",\"tls_cipher\":\"%s\"}\n",
        g_opt.target.ToString().c_str(), g_opt.connections, g_opt.threads,
        g_opt.pipelining ? "true" : "false", t.server_pipelining ? "true" : "false",
        g_opt.bdat ? "true" : "false", t.server_chunking ? "true" : "false", elapsed,
        (unsigned long long)t.ok, (unsigned long long)t.failed, (unsigned long long)not_sent,
        (unsigned long long)t.rcpt_ok, (unsigned long long)t.rcpt_failed,
        (unsigned long long)t.bytes, mps, bps, (unsigned long long)h.count(),
        (unsigned long long)h.min(), h.mean(), (unsigned long long)h.Quantile(0.5),
        (unsigned long long)h.Quantile(0.99), (unsigned long long)h.Quantile(0.999),
        (unsigned long long)h.max(), CodesJson(t.reply_codes).c_str(),
        CodesJson(t.failed_codes).c_str(), (unsigned long long)t.connections,
        (unsigned long long)t.connect_failed, (unsigned long long)t.lost,
        (unsigned long long)t.protocol_errors, g_opt.starttls ? "true" : "false",
        (unsigned long long)t.tls_established, (unsigned long long)t.tls_failed,
        g_opt.tls_resume ? "true" : "false", (unsigned long long)t.tls_resumed,
        t.tls_version.c_str(), t.tls_cipher.c_str());
  } else {
    std::printf("sluice-blast: %s, %d connections, %d thread(s), pipelining %s (server %s), %s\n",
                g_opt.target.ToString().c_str(), g_opt.connections, g_opt.threads,
                g_opt.pipelining ? "on" : "off",
                t.server_pipelining ? "offers it" : "does not offer it",
                g_opt.bdat ? (t.server_chunking ? "BDAT" : "DATA (no CHUNKING)") : "DATA");
    std::printf(
        "messages: %llu ok, %llu failed, %llu not sent; recipients: %llu ok, %llu refused\n",
        (unsigned long long)t.ok, (unsigned long long)t.failed, (unsigned long long)not_sent,
        (unsigned long long)t.rcpt_ok, (unsigned long long)t.rcpt_failed);
    std::printf("elapsed %.3f s: %.1f msgs/s, %.2f MB/s\n", elapsed, mps, bps / 1e6);
    std::printf(
        "latency end-of-data -> reply (us): p50 %llu  p99 %llu  p99.9 %llu  max %llu  mean %.1f\n",
        (unsigned long long)h.Quantile(0.5), (unsigned long long)h.Quantile(0.99),
        (unsigned long long)h.Quantile(0.999), (unsigned long long)h.max(), h.mean());
    std::printf("replies >= 400: %s\n", CodesText(t.reply_codes).c_str());
    if (t.failed > 0)
      std::printf("failed messages by code (0 = connection lost): %s\n",
                  CodesText(t.failed_codes).c_str());
    std::printf("sessions: %llu opened, %llu connect failures, %llu lost, %llu protocol errors\n",
                (unsigned long long)t.connections, (unsigned long long)t.connect_failed,
                (unsigned long long)t.lost, (unsigned long long)t.protocol_errors);
    if (g_opt.starttls) {
      std::printf("STARTTLS: %llu sessions established (%s %s), %llu resumed, %llu failed\n",
                  (unsigned long long)t.tls_established, t.tls_version.c_str(),
                  t.tls_cipher.c_str(), (unsigned long long)t.tls_resumed,
                  (unsigned long long)t.tls_failed);
    }
  }
  std::fflush(stdout);
  if (!g_opt.expect_failures && (t.failed > 0 || not_sent > 0 || t.protocol_errors > 0)) return 1;
  if (t.ok == 0) return 1;
  return 0;
}

}  // namespace
}  // namespace sluice::tools

int main(int argc, char** argv) { return sluice::tools::Main(argc, argv); }
