// sluice-sink: an SMTP receiver for tests and benchmarks, on Sluice's io
// runtime (io::Ring, io::BufferRing). See docs/TOOLS.md.
//
// One process, --threads event loops, each with its own ring, buffer ring
// and SO_REUSEPORT listening socket per --listen address. Per connection:
// multishot recv into provided buffers, one send in flight, replies of one
// round of input gathered into one send; closing is shutdown(2), then the
// io_uring close once no operation of the connection is in flight; the
// object is freed one loop turn later (as in src/server). Counters are
// process-wide atomics; --stats-json writes them on SIGUSR1 and at exit
// (SIGTERM/SIGINT). --store writes are plain blocking writes: this is a test
// tool, and a blocking write of a few KiB costs less than its bookkeeping.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "sluice/base/cidr.h"
#include "sluice/base/strings.h"
#include "sluice/io/ring.h"
#include "sluice/smtp/dot_decoder.h"
#include "tools/common/digest.h"
#include "tools/common/header_field.h"
#include "tools/sink/script.h"

namespace sluice::tools {
namespace {

struct Options {
  std::vector<base::SocketAddress> listen;
  int threads = 1;
  bool pipelining = true;
  bool chunking = true;
  bool eightbit = true;
  uint64_t size = 50ull << 20;
  int64_t max_connections = 0;  // 0: no limit
  std::string store;
  std::string stats_json;
  std::string hostname = "sink.sluice.test";
  std::vector<SinkRule> rules;
};

struct Stats {
  std::atomic<uint64_t> connections{0}, refused_max{0}, refused_script{0};
  std::atomic<int64_t> open{0}, peak{0};
  std::atomic<uint64_t> messages{0}, recipients{0}, bytes{0}, data_messages{0}, bdat_messages{0};
  std::atomic<uint64_t> digest_ok{0}, digest_mismatch{0}, digest_missing{0};
  std::atomic<uint64_t> dkim_signed{0};  // messages with a DKIM-Signature header field
  std::atomic<uint64_t> tempfail{0}, permfail{0}, dropped{0}, delayed{0}, too_big{0};
  std::atomic<uint64_t> store_errors{0}, sequence{0};
};

struct DomainCount {
  uint64_t messages = 0;
  uint64_t recipients = 0;
};

Options g_opt;
Stats g_stats;

class Worker;

constexpr uint16_t kBufferGroup = 1;
constexpr uint32_t kBufferCount = 1024;
constexpr uint32_t kBufferSize = 8192;
constexpr size_t kLineMax = 8192;

class Conn {
 public:
  Conn(Worker& w, int fd, std::string refusal);
  void Start();
  void ArmReceive();
  void ForceClose();

  size_t slot = 0;

 private:
  enum class Mode { kCommand, kData, kBdat };

  void OnReceive(int result, uint32_t flags);
  void OnSend(int result, uint32_t flags);
  void OnTimer(int result, uint32_t flags);
  size_t Consume(const char* p, size_t n);
  void Command(std::string_view line);
  void EndMessage();
  void ResetTxn();
  void Reply(std::string_view s) { out_.append(s); }
  void MaybeSend();
  void BeginShutdown();
  void MaybeDestroy();

  Worker& w_;
  int fd_;
  std::string in_;
  std::string out_, sending_;
  size_t sent_ = 0;
  bool send_in_flight_ = false, recv_armed_ = false, shut_ = false, destroyed_ = false;
  bool close_after_send_ = false, paused_ = false, timer_armed_ = false;
  Mode mode_ = Mode::kCommand;
  smtp::DotDecoder dec_;
  uint64_t bdat_left_ = 0;
  bool bdat_last_ = false, bdat_discard_ = false, bdat_started_ = false;
  bool have_mail_ = false, drop_ = false, too_big_ = false;
  uint32_t delay_ms_ = 0;
  std::vector<std::string> rcpts_;
  std::string msg_;
  io::Timespec ts_{};

  io::MemberCompletion<Conn, &Conn::OnReceive> recv_done_{this};
  io::MemberCompletion<Conn, &Conn::OnSend> send_done_{this};
  io::MemberCompletion<Conn, &Conn::OnTimer> timer_done_{this};
};

class Worker {
 public:
  explicit Worker(int index) : index_(index), rng_(0x9e3779b97f4a7c15ull * (index + 1)) {}

  void Init() {
    auto ring = io::Ring::Create(4096);
    if (!ring.ok()) Die(std::string(ring.status().message()));
    ring_ = std::move(*ring);
    auto buffers = ring_->CreateBufferRing(kBufferGroup, kBufferCount, kBufferSize);
    if (!buffers.ok()) Die(std::string(buffers.status().message()));
    buffers_ = std::move(*buffers);
    for (const base::SocketAddress& a : g_opt.listen) {
      auto l = std::make_unique<Listener>();
      l->w = this;
      l->fd = socket(a.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (l->fd < 0) Die("socket");
      int one = 1;
      setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      setsockopt(l->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
      if (a.storage.ss_family == AF_INET6)
        setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
      if (bind(l->fd, a.get(), a.size) != 0)
        Die(absl::StrCat("bind ", a.ToString(), ": ", strerror(errno)));
      if (listen(l->fd, 4096) != 0) Die("listen");
      listeners_.push_back(std::move(l));
    }
  }

  void Run() {
    for (auto& l : listeners_) ArmAccept(l.get());
    while (true) {
      ring_->RunOnce(1000);
      for (Conn* c : dead_) delete c;
      dead_.swap(dying_);
      dying_.clear();
      buffers_->Publish();
      if (!starved_.empty() && buffers_->available_estimate() > 0) {
        std::vector<Conn*> s;
        s.swap(starved_);
        for (Conn* c : s) c->ArmReceive();
      }
    }
  }

  io::Ring& ring() { return *ring_; }
  io::BufferRing& buffers() { return *buffers_; }
  uint32_t Roll() {
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    return static_cast<uint32_t>(rng_ % 100);
  }
  void Starved(Conn* c) { starved_.push_back(c); }
  void Closed(Conn* c) {
    const size_t s = c->slot;
    conns_[s] = conns_.back();
    conns_[s]->slot = s;
    conns_.pop_back();
    starved_.erase(std::remove(starved_.begin(), starved_.end(), c), starved_.end());
    dying_.push_back(c);
  }
  void CountDomains(const std::vector<std::string>& rcpts) {
    std::lock_guard<std::mutex> lock(domains_mu_);
    std::vector<std::string_view> seen;
    for (const std::string& r : rcpts) {
      std::string_view d = r;
      const size_t at = d.rfind('@');
      d = at == std::string_view::npos ? std::string_view() : d.substr(at + 1);
      std::string key(d);
      for (char& ch : key) ch = base::AsciiLower(ch);
      DomainCount& dc = domains_[key];
      ++dc.recipients;
      if (std::find(seen.begin(), seen.end(), d) == seen.end()) {
        ++dc.messages;
        seen.push_back(d);
      }
    }
  }
  void AddDomainsTo(std::map<std::string, DomainCount>& out) {
    std::lock_guard<std::mutex> lock(domains_mu_);
    for (const auto& [k, v] : domains_) {
      out[k].messages += v.messages;
      out[k].recipients += v.recipients;
    }
  }
  [[noreturn]] static void Die(const std::string& why) {
    std::fprintf(stderr, "sluice-sink: %s\n", why.c_str());
    std::exit(1);
  }

 private:
  struct Listener {
    Worker* w;
    int fd = -1;
    bool armed = false;
    struct Done final : io::Completion {
      Listener* l = nullptr;
      void OnComplete(int result, uint32_t flags) override { l->w->OnAccept(l, result, flags); }
    } done;
    Listener() { done.l = this; }
  };

  void ArmAccept(Listener* l) {
    ring_->AcceptMultishot(&l->done, l->fd);
    l->armed = true;
  }

  void OnAccept(Listener* l, int result, uint32_t flags) {
    if (!io::HasMore(flags)) l->armed = false;
    if (result >= 0) {
      g_stats.connections.fetch_add(1, std::memory_order_relaxed);
      std::string refusal;
      const int64_t open = g_stats.open.fetch_add(1, std::memory_order_relaxed) + 1;
      if (g_opt.max_connections > 0 && open > g_opt.max_connections) {
        g_stats.refused_max.fetch_add(1, std::memory_order_relaxed);
        refusal = absl::StrCat("421 4.7.0 ", g_opt.hostname, " Error: too many connections\r\n");
      } else if (RefuseAtConnect(g_opt.rules, [this] { return Roll(); })) {
        g_stats.refused_script.fetch_add(1, std::memory_order_relaxed);
        refusal = absl::StrCat("421 4.3.2 ", g_opt.hostname, " Service not available (script)\r\n");
      } else {
        int64_t peak = g_stats.peak.load(std::memory_order_relaxed);
        while (open > peak && !g_stats.peak.compare_exchange_weak(peak, open)) {
        }
      }
      int one = 1;
      setsockopt(result, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      auto* c = new Conn(*this, result, std::move(refusal));
      c->slot = conns_.size();
      conns_.push_back(c);
      c->Start();
    } else if (result != -ECANCELED) {
      std::fprintf(stderr, "sluice-sink: accept: %s\n", strerror(-result));
    }
    if (!l->armed) ArmAccept(l);
  }

  int index_;
  uint64_t rng_;
  std::unique_ptr<io::Ring> ring_;
  std::unique_ptr<io::BufferRing> buffers_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::vector<Conn*> conns_, dying_, dead_, starved_;
  std::mutex domains_mu_;
  absl::flat_hash_map<std::string, DomainCount> domains_;
};

Conn::Conn(Worker& w, int fd, std::string refusal) : w_(w), fd_(fd), dec_(1u << 30) {
  if (!refusal.empty()) {
    out_ = std::move(refusal);
    close_after_send_ = true;
  }
}

void Conn::Start() {
  if (!close_after_send_) {
    Reply(absl::StrCat("220 ", g_opt.hostname, " ESMTP sluice-sink\r\n"));
    ArmReceive();
  }
  MaybeSend();
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
    const char* data = w_.buffers().data(id);
    const size_t n = static_cast<size_t>(result);
    if (!shut_ && !close_after_send_) {
      if (in_.empty() && !paused_) {
        const size_t used = Consume(data, n);
        if (used < n && !shut_) in_.assign(data + used, n - used);
      } else {
        in_.append(data, n);
        if (!paused_) {
          const size_t used = Consume(in_.data(), in_.size());
          in_.erase(0, used);
        }
      }
      if (in_.size() > kLineMax && mode_ == Mode::kCommand && !paused_) {
        Reply("500 5.5.6 Error: line too long\r\n");
        close_after_send_ = true;
      }
      MaybeSend();
    }
    w_.buffers().Release(id);
    if (!recv_armed_) ArmReceive();
  } else if (result == -ENOBUFS) {
    if (!shut_) w_.Starved(this);
  } else if (!recv_armed_ || result <= 0) {
    BeginShutdown();
  }
  MaybeDestroy();
}

size_t Conn::Consume(const char* p, size_t n) {
  size_t pos = 0;
  while (pos < n && !paused_ && !shut_ && !close_after_send_) {
    if (mode_ == Mode::kCommand) {
      const void* lf = memchr(p + pos, '\n', n - pos);
      if (lf == nullptr) break;
      const size_t end = static_cast<size_t>(static_cast<const char*>(lf) - p);
      std::string_view line(p + pos, end - pos);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      pos = end + 1;
      Command(line);
    } else if (mode_ == Mode::kData) {
      if (drop_) {
        g_stats.dropped.fetch_add(1, std::memory_order_relaxed);
        ForceClose();
        return n;
      }
      auto r = dec_.Decode(p + pos, n - pos, [this](const char* d, size_t s) {
        if (too_big_) return;
        if (msg_.size() + s > g_opt.size) {
          too_big_ = true;
          return;
        }
        msg_.append(d, s);
      });
      pos += r.consumed;
      if (r.done) {
        mode_ = Mode::kCommand;
        g_stats.data_messages.fetch_add(1, std::memory_order_relaxed);
        EndMessage();
      }
    } else {  // kBdat
      if (drop_ && !bdat_discard_) {
        g_stats.dropped.fetch_add(1, std::memory_order_relaxed);
        ForceClose();
        return n;
      }
      const size_t take = static_cast<size_t>(std::min<uint64_t>(bdat_left_, n - pos));
      if (!bdat_discard_ && !too_big_) {
        if (msg_.size() + take > g_opt.size) {
          too_big_ = true;
        } else {
          msg_.append(p + pos, take);
        }
      }
      pos += take;
      bdat_left_ -= take;
      if (bdat_left_ == 0) {
        mode_ = Mode::kCommand;
        if (bdat_discard_) {
          Reply(have_mail_ ? "554 5.5.1 Error: no valid recipients\r\n"
                           : "503 5.5.1 Error: need MAIL command\r\n");
          bdat_discard_ = false;
        } else if (bdat_last_) {
          g_stats.bdat_messages.fetch_add(1, std::memory_order_relaxed);
          EndMessage();
        } else {
          Reply("250 2.0.0 Ok: chunk received\r\n");
        }
      }
    }
  }
  return shut_ ? n : pos;
}

void Conn::ResetTxn() {
  have_mail_ = drop_ = too_big_ = bdat_started_ = false;
  delay_ms_ = 0;
  rcpts_.clear();
  msg_.clear();
}

namespace {
// "<addr> params" after "FROM:" / "TO:" -> addr; false without brackets.
bool PathOf(std::string_view rest, std::string_view& addr, std::string_view& params) {
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  if (rest.empty() || rest.front() != '<') return false;
  const size_t close = rest.find('>');
  if (close == std::string_view::npos) return false;
  addr = rest.substr(1, close - 1);
  params = rest.substr(close + 1);
  return true;
}
}  // namespace

void Conn::Command(std::string_view line) {
  const std::string_view verb = line.substr(0, line.find(' '));
  if (base::EqualsIgnoreCase(verb, "EHLO")) {
    ResetTxn();
    std::string r = absl::StrCat("250-", g_opt.hostname, "\r\n");
    if (g_opt.pipelining) r += "250-PIPELINING\r\n";
    absl::StrAppend(&r, "250-SIZE ", g_opt.size, "\r\n");
    if (g_opt.eightbit) r += "250-8BITMIME\r\n";
    if (g_opt.chunking) r += "250-CHUNKING\r\n";
    r += "250 ENHANCEDSTATUSCODES\r\n";
    Reply(r);
  } else if (base::EqualsIgnoreCase(verb, "HELO")) {
    ResetTxn();
    Reply(absl::StrCat("250 ", g_opt.hostname, "\r\n"));
  } else if (base::EqualsIgnoreCase(verb, "MAIL")) {
    std::string_view addr, params;
    if (have_mail_) return Reply("503 5.5.1 Error: nested MAIL command\r\n");
    if (line.size() < 10 || !base::EqualsIgnoreCase(line.substr(4, 6), " FROM:") ||
        !PathOf(line.substr(10), addr, params)) {
      return Reply("501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
    }
    const size_t sz = params.find("SIZE=");
    uint64_t declared = 0;
    if (sz != std::string_view::npos &&
        base::ParseUint64(params.substr(sz + 5, params.find(' ', sz) - sz - 5), declared) &&
        declared > g_opt.size) {
      g_stats.too_big.fetch_add(1, std::memory_order_relaxed);
      return Reply("552 5.3.4 Error: message size exceeds fixed limit\r\n");
    }
    have_mail_ = true;
    Reply("250 2.1.0 Ok\r\n");
  } else if (base::EqualsIgnoreCase(verb, "RCPT")) {
    std::string_view addr, params;
    if (!have_mail_) return Reply("503 5.5.1 Error: need MAIL command\r\n");
    if (line.size() < 8 || !base::EqualsIgnoreCase(line.substr(4, 4), " TO:") ||
        !PathOf(line.substr(8), addr, params)) {
      return Reply("501 5.5.4 Syntax: RCPT TO:<address>\r\n");
    }
    const SinkDecision d = DecideRecipient(g_opt.rules, addr, [this] { return w_.Roll(); });
    switch (d.action) {
      case SinkAction::kTempfail:
        g_stats.tempfail.fetch_add(1, std::memory_order_relaxed);
        return Reply("451 4.7.1 Temporary failure (sink script)\r\n");
      case SinkAction::kPermfail:
        g_stats.permfail.fetch_add(1, std::memory_order_relaxed);
        return Reply("550 5.1.1 Recipient rejected (sink script)\r\n");
      case SinkAction::kDropData:
        drop_ = true;
        break;
      case SinkAction::kDelay:
        delay_ms_ = std::max(delay_ms_, d.delay_ms);
        break;
      default:
        break;
    }
    rcpts_.emplace_back(addr);
    Reply("250 2.1.5 Ok\r\n");
  } else if (base::EqualsIgnoreCase(verb, "DATA")) {
    if (!have_mail_) return Reply("503 5.5.1 Error: need MAIL command\r\n");
    if (rcpts_.empty()) return Reply("554 5.5.1 Error: no valid recipients\r\n");
    if (bdat_started_) return Reply("503 5.5.1 Error: DATA after BDAT\r\n");
    msg_.clear();
    dec_.Reset(1u << 30);
    mode_ = Mode::kData;
    Reply("354 End data with <CR><LF>.<CR><LF>\r\n");
  } else if (base::EqualsIgnoreCase(verb, "BDAT")) {
    if (!g_opt.chunking) return Reply("502 5.5.1 Error: command not implemented\r\n");
    std::string_view rest = line.size() > 5 ? line.substr(5) : std::string_view();
    const size_t sp = rest.find(' ');
    uint64_t n = 0;
    if (!base::ParseUint64(rest.substr(0, sp), n)) {
      ResetTxn();
      close_after_send_ = true;  // cannot find the end of the chunk: give up
      return Reply("501 5.5.4 Syntax: BDAT size [LAST]\r\n");
    }
    bdat_last_ =
        sp != std::string_view::npos && base::EqualsIgnoreCase(rest.substr(sp + 1), "LAST");
    bdat_discard_ = rcpts_.empty();
    if (!bdat_discard_ && !bdat_started_) {
      msg_.clear();
      bdat_started_ = true;
    }
    bdat_left_ = n;
    mode_ = Mode::kBdat;
    if (n == 0) {  // an empty chunk completes at once
      Consume("", 0);
      mode_ = Mode::kCommand;
      if (bdat_discard_) {
        bdat_discard_ = false;
        Reply(have_mail_ ? "554 5.5.1 Error: no valid recipients\r\n"
                         : "503 5.5.1 Error: need MAIL command\r\n");
      } else if (bdat_last_) {
        g_stats.bdat_messages.fetch_add(1, std::memory_order_relaxed);
        EndMessage();
      } else {
        Reply("250 2.0.0 Ok: chunk received\r\n");
      }
    }
  } else if (base::EqualsIgnoreCase(verb, "RSET")) {
    ResetTxn();
    Reply("250 2.0.0 Ok\r\n");
  } else if (base::EqualsIgnoreCase(verb, "NOOP")) {
    Reply("250 2.0.0 Ok\r\n");
  } else if (base::EqualsIgnoreCase(verb, "QUIT")) {
    Reply("221 2.0.0 Bye\r\n");
    close_after_send_ = true;
  } else {
    Reply("500 5.5.2 Error: command not recognized\r\n");
  }
}

void Conn::EndMessage() {
  if (too_big_) {
    g_stats.too_big.fetch_add(1, std::memory_order_relaxed);
    ResetTxn();
    return Reply("552 5.3.4 Error: message size exceeds fixed limit\r\n");
  }
  const uint64_t n = g_stats.sequence.fetch_add(1, std::memory_order_relaxed) + 1;
  g_stats.messages.fetch_add(1, std::memory_order_relaxed);
  g_stats.recipients.fetch_add(rcpts_.size(), std::memory_order_relaxed);
  g_stats.bytes.fetch_add(msg_.size(), std::memory_order_relaxed);
  switch (CheckDigest(msg_)) {
    case DigestCheck::kOk:
      g_stats.digest_ok.fetch_add(1, std::memory_order_relaxed);
      break;
    case DigestCheck::kMismatch:
      g_stats.digest_mismatch.fetch_add(1, std::memory_order_relaxed);
      break;
    case DigestCheck::kMissing:
      g_stats.digest_missing.fetch_add(1, std::memory_order_relaxed);
      break;
  }
  if (HasHeaderField(msg_, "DKIM-Signature")) {
    g_stats.dkim_signed.fetch_add(1, std::memory_order_relaxed);
  }
  w_.CountDomains(rcpts_);
  if (!g_opt.store.empty()) {
    // Written under a temporary name and renamed, so a reader globbing
    // *.eml never sees a message that is still being written.
    const std::string path = absl::StrCat(g_opt.store, "/", n, ".eml");
    const std::string part = absl::StrCat(g_opt.store, "/", n, ".part");
    const int fd = open(part.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    bool ok = fd >= 0;
    size_t done = 0;
    while (ok && done < msg_.size()) {
      const ssize_t w = write(fd, msg_.data() + done, msg_.size() - done);
      if (w <= 0)
        ok = false;
      else
        done += static_cast<size_t>(w);
    }
    if (fd >= 0) close(fd);
    if (ok && rename(part.c_str(), path.c_str()) != 0) ok = false;
    if (!ok) g_stats.store_errors.fetch_add(1, std::memory_order_relaxed);
  }
  Reply(absl::StrCat("250 2.0.0 Ok: queued as ", n, "\r\n"));
  const uint32_t delay = delay_ms_;
  ResetTxn();
  if (delay > 0) {
    g_stats.delayed.fetch_add(1, std::memory_order_relaxed);
    paused_ = true;
    timer_armed_ = true;
    ts_.tv_sec = delay / 1000;
    ts_.tv_nsec = static_cast<long long>(delay % 1000) * 1000000;
    w_.ring().Timeout(&timer_done_, &ts_);
  }
}

void Conn::OnTimer(int, uint32_t) {
  timer_armed_ = false;
  paused_ = false;
  if (!shut_) {
    const size_t used = Consume(in_.data(), in_.size());
    if (!shut_) in_.erase(0, used);
    MaybeSend();
  }
  MaybeDestroy();
}

void Conn::MaybeSend() {
  if (send_in_flight_ || shut_ || paused_) return;
  if (sent_ == sending_.size()) {
    sending_.clear();
    sent_ = 0;
    sending_.swap(out_);
  }
  if (sending_.empty()) {
    if (close_after_send_) BeginShutdown();
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
    BeginShutdown();
  } else {
    sent_ += static_cast<size_t>(result);
    MaybeSend();
  }
  MaybeDestroy();
}

void Conn::BeginShutdown() {
  if (shut_) return;
  shut_ = true;
  in_.clear();
  shutdown(fd_, SHUT_RDWR);
  if (recv_armed_) {
    w_.ring().Cancel(nullptr, &recv_done_);
  }
  if (timer_armed_) {
    w_.ring().TimeoutRemove(nullptr, &timer_done_);
  }
}

void Conn::ForceClose() {
  BeginShutdown();
  MaybeDestroy();
}

void Conn::MaybeDestroy() {
  if (!shut_ || recv_armed_ || send_in_flight_ || timer_armed_ || destroyed_) return;
  destroyed_ = true;
  w_.ring().Close(nullptr, fd_);
  g_stats.open.fetch_sub(1, std::memory_order_relaxed);
  w_.Closed(this);
}

std::vector<std::unique_ptr<Worker>> g_workers;

std::string StatsJson() {
  auto v = [](const auto& a) { return a.load(std::memory_order_relaxed); };
  std::string s = absl::StrCat(
      "{\"connections\":", v(g_stats.connections), ",\"peak_concurrent\":", v(g_stats.peak),
      ",\"open\":", v(g_stats.open), ",\"refused_max_connections\":", v(g_stats.refused_max),
      ",\"refused_script\":", v(g_stats.refused_script), ",\"messages\":", v(g_stats.messages),
      ",\"recipients\":", v(g_stats.recipients), ",\"bytes\":", v(g_stats.bytes),
      ",\"data_messages\":", v(g_stats.data_messages),
      ",\"bdat_messages\":", v(g_stats.bdat_messages), ",\"digest_ok\":", v(g_stats.digest_ok),
      ",\"digest_mismatch\":", v(g_stats.digest_mismatch),
      ",\"digest_missing\":", v(g_stats.digest_missing),
      ",\"dkim_signed\":", v(g_stats.dkim_signed), ",\"tempfail\":", v(g_stats.tempfail),
      ",\"permfail\":", v(g_stats.permfail), ",\"dropped\":", v(g_stats.dropped),
      ",\"delayed\":", v(g_stats.delayed), ",\"too_big\":", v(g_stats.too_big),
      ",\"store_errors\":", v(g_stats.store_errors), ",\"domains\":{");
  std::map<std::string, DomainCount> domains;
  for (auto& w : g_workers) w->AddDomainsTo(domains);
  bool first = true;
  for (const auto& [k, d] : domains) {
    std::string key;
    for (char c : k) {
      if (c == '"' || c == '\\') key.push_back('\\');
      if (static_cast<unsigned char>(c) >= 0x20) key.push_back(c);
    }
    absl::StrAppend(&s, first ? "" : ",", "\"", key, "\":{\"messages\":", d.messages,
                    ",\"recipients\":", d.recipients, "}");
    first = false;
  }
  s += "}}\n";
  return s;
}

void WriteStats() {
  if (g_opt.stats_json.empty()) return;
  const std::string tmp = g_opt.stats_json + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) {
    std::fprintf(stderr, "sluice-sink: cannot write %s: %s\n", tmp.c_str(), strerror(errno));
    return;
  }
  const std::string s = StatsJson();
  std::fwrite(s.data(), 1, s.size(), f);
  std::fclose(f);
  std::rename(tmp.c_str(), g_opt.stats_json.c_str());
}

int Usage(const std::string& error) {
  if (!error.empty()) std::fprintf(stderr, "sluice-sink: %s\n", error.c_str());
  std::fprintf(stderr,
               "usage: sluice-sink --listen ADDR:PORT [--listen ...] [options]\n"
               "  --threads N            event loops (default 1)\n"
               "  --no-pipelining --no-chunking --no-8bitmime   do not advertise these\n"
               "  --size N               SIZE advertised and enforced (default 52428800)\n"
               "  --max-connections N    421 past N concurrent connections (0: no limit)\n"
               "  --store DIR            write each message to DIR/<n>.eml\n"
               "  --stats-json FILE      counters, written on SIGUSR1 and at SIGTERM/SIGINT\n"
               "  --script FILE          scripted behaviour (see docs/TOOLS.md)\n"
               "  --hostname NAME        name in the greeting (default sink.sluice.test)\n");
  return 2;
}

int Main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= argc) return false;
      out = argv[++i];
      return true;
    };
    std::string v;
    uint64_t n = 0;
    if (a == "--help" || a == "-h") return Usage("");
    if (a == "--no-pipelining") {
      g_opt.pipelining = false;
      continue;
    }
    if (a == "--no-chunking") {
      g_opt.chunking = false;
      continue;
    }
    if (a == "--no-8bitmime") {
      g_opt.eightbit = false;
      continue;
    }
    if (!value(v)) return Usage(absl::StrCat("missing value or unknown flag ", base::Av(a)));
    if (a == "--listen") {
      auto addr = base::SocketAddress::Parse(v);
      if (!addr.ok()) return Usage(std::string(addr.status().message()));
      g_opt.listen.push_back(*addr);
    } else if (a == "--threads" && base::ParseUint64(v, n) && n >= 1 && n <= 256) {
      g_opt.threads = static_cast<int>(n);
    } else if (a == "--size" && base::ParseUint64(v, n) && n > 0) {
      g_opt.size = n;
    } else if (a == "--max-connections" && base::ParseUint64(v, n)) {
      g_opt.max_connections = static_cast<int64_t>(n);
    } else if (a == "--store") {
      g_opt.store = v;
    } else if (a == "--stats-json") {
      g_opt.stats_json = v;
    } else if (a == "--hostname") {
      g_opt.hostname = v;
    } else if (a == "--script") {
      FILE* f = std::fopen(v.c_str(), "r");
      if (f == nullptr) return Usage(absl::StrCat("cannot open ", v, ": ", strerror(errno)));
      std::string text;
      char buf[4096];
      size_t got;
      while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, got);
      std::fclose(f);
      auto rules = ParseSinkScript(text);
      if (!rules.ok()) return Usage(std::string(rules.status().message()));
      g_opt.rules = std::move(*rules);
    } else {
      return Usage(absl::StrCat("bad flag or value: ", base::Av(a), " ", v));
    }
  }
  if (g_opt.listen.empty()) return Usage("at least one --listen is needed");

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  // Each ring is created by the thread that uses it (SINGLE_ISSUER). A bind
  // failure exits the process before "ready".
  for (int i = 0; i < g_opt.threads; ++i) g_workers.push_back(std::make_unique<Worker>(i));
  std::atomic<int> initialised{0};
  std::vector<std::thread> threads;
  for (auto& w : g_workers) {
    threads.emplace_back([w = w.get(), &initialised] {
      w->Init();
      initialised.fetch_add(1);
      w->Run();
    });
  }
  while (initialised.load() < g_opt.threads) usleep(1000);
  std::fprintf(stderr, "sluice-sink: ready\n");
  std::fflush(stderr);
  while (true) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig == SIGUSR1) {
      WriteStats();
    } else if (sig == SIGTERM || sig == SIGINT) {
      WriteStats();
      const std::string s = StatsJson();
      std::fprintf(stderr, "sluice-sink: exiting: %s", s.c_str());
      std::fflush(stderr);
      _exit(0);
    }
  }
}

}  // namespace
}  // namespace sluice::tools

int main(int argc, char** argv) { return sluice::tools::Main(argc, argv); }
