#include "sluice/delivery/engine.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <liburing.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "sluice/base/check.h"
#include "sluice/base/clock.h"
#include "sluice/base/strings.h"
#include "sluice/dsn/dsn.h"
#include "sluice/log/json.h"
#include "sluice/merge/template.h"
#include "sluice/smtp/long_lines.h"
#include "sluice/spool/retry_state.h"

namespace sluice::delivery {
namespace {

constexpr size_t kFileCache = 64;   // open spool files kept for reading records
constexpr size_t kMaxTargets = 20;  // addresses tried per connection
constexpr size_t kBodyPiece = 64 * 1024;
// Records read at once for jobs decided without a connection (LoadDetached).
constexpr size_t kMaxDetachedLoads = 64;

smtp::Reply MakeReply(int code, std::string_view enhanced, std::string text, bool local = true) {
  smtp::Reply r;
  r.code = code;
  r.local = local;
  size_t used = 0;
  smtp::EnhancedCode::Parse(enhanced, r.enhanced, used);
  r.text = std::move(text);
  r.lines = 1;
  return r;
}

// "550 5.1.1 text; more text": the reply as a receiver would quote it.
std::string Diagnostic(const smtp::Reply& r) {
  std::string out = absl::StrCat(r.code);
  if (r.enhanced.valid()) absl::StrAppend(&out, " ", r.enhanced.ToString());
  std::string text = r.text;
  std::replace(text.begin(), text.end(), '\n', ';');
  if (!text.empty()) absl::StrAppend(&out, " ", text);
  return out;
}

std::string StatusOf(const smtp::Reply& r, bool expired) {
  if (r.enhanced.valid() && (r.enhanced.cls == 5 || !expired)) return r.enhanced.ToString();
  if (expired) return "4.4.7";
  return r.code >= 500 ? "5.0.0" : "4.0.0";
}

base::IpAddress BaseAddress(const dns::IpAddress& ip) {
  sockaddr_storage ss{};
  if (ip.family == AF_INET6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    in6->sin6_family = AF_INET6;
    std::memcpy(in6->sin6_addr.s6_addr, ip.bytes, 16);
  } else {
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    in->sin_family = AF_INET;
    std::memcpy(&in->sin_addr, ip.bytes, 4);
  }
  return base::IpAddress::FromSockaddr(
      reinterpret_cast<const sockaddr*>(&ss));  // maps ::ffff:a.b.c.d
}

// The one target of an address-literal domain, "[192.0.2.7]" or
// "[IPv6:2001:db8::1]" (smtp/address.cc checked its syntax on the way in).
dns::MxResult AddressLiteralResult(const std::string& domain) {
  dns::MxResult r;
  std::string inner = domain.size() >= 2 ? domain.substr(1, domain.size() - 2) : std::string();
  dns::IpAddress ip;
  if (base::StartsWithIgnoreCase(inner, "IPv6:")) {
    inner.erase(0, 5);
    if (inet_pton(AF_INET6, inner.c_str(), ip.bytes) == 1) ip.family = AF_INET6;
  } else if (inet_pton(AF_INET, inner.c_str(), ip.bytes) == 1) {
    ip.family = AF_INET;
  }
  if (ip.family == 0 || domain.back() != ']') {
    r.kind = dns::ResultKind::kPermanent;
    r.enhanced_code = "5.1.2";
    r.text = absl::StrCat("bad address literal ", domain);
    return r;
  }
  r.kind = dns::ResultKind::kOk;
  // Named by the bare address, as a literal route's next hop is: that is
  // what the log's "mx" field and the TLS client see.
  r.hosts.push_back(dns::MxHost{inner, 0, {ip}});
  r.ttl_s = 300;
  return r;
}

// Finalize() validated the rules: a failure here is a bug.
queue::ShapingPolicy PolicyFrom(const config::Config& config) {
  auto policy = queue::ShapingPolicy::Create(config.shaping);
  SLUICE_CHECK(policy.ok());
  return std::move(*policy);
}

// What every new outbound connection starts with (engine constructor and
// Reconfigure).
OutboundOptions OptionsFrom(const config::Config& config, const std::string& hostname) {
  OutboundOptions options;
  smtp::ClientConfig& c = options.client;
  c.helo_name = config.helo_name.empty() ? hostname : config.helo_name;
  c.max_recipients_per_transaction = config.max_recipients_per_transaction;
  c.use_pipelining = config.outbound_pipelining;
  c.use_chunking = config.outbound_chunking;
  const config::DeliveryTimeouts& t = config.timeouts;
  using ms = std::chrono::milliseconds;
  c.timeouts.greeting = ms(t.greeting_ms);
  c.timeouts.ehlo = ms(t.ehlo_ms);
  c.timeouts.starttls = ms(t.starttls_ms);
  c.timeouts.mail = ms(t.mail_ms);
  c.timeouts.rcpt = ms(t.rcpt_ms);
  c.timeouts.data_init = ms(t.data_init_ms);
  c.timeouts.data_block = ms(t.data_block_ms);
  c.timeouts.final_dot = ms(t.final_dot_ms);
  c.timeouts.rset = ms(t.rset_ms);
  c.timeouts.quit = ms(t.quit_ms);
  options.connect_timeout_ms = t.connect_ms;
  if (!config.source_address.empty()) {
    auto a = base::SocketAddress::Parse(config.source_address.find(':') == std::string::npos
                                            ? absl::StrCat(config.source_address, ":0")
                                            : absl::StrCat("[", config.source_address, "]:0"));
    if (a.ok()) options.source = *a;
  }
  return options;
}

// Where mail for `domain` goes and how, as a comparable string: a reload
// that changes it makes the destination resolve again.
std::string NextHop(const config::Config& config, const std::string& domain) {
  const config::Route* route = config::FindRoute(config, domain);
  return absl::StrCat(config::OutboundTlsName(config::FindOutboundTls(config, domain)), " ",
                      route != nullptr ? route->host : "", ":",
                      route != nullptr ? route->port : config.mx_port);
}

}  // namespace

struct Engine::Destination {
  std::string domain;
  config::OutboundTls tls = config::OutboundTls::kOpportunistic;
  uint64_t plaintext_until_ms = 0;  // opportunistic TLS failed here: clear for a while
  queue::DomainQueue* q = nullptr;
  std::vector<Target> targets;
  uint16_t port = 25;
  bool routed = false;      // a [[route]] next hop, not the domain's MX hosts
  uint64_t expires_ms = 0;  // 0: not resolved
  bool resolving = false;
  bool stale = false;  // a reload changed the next hop while resolving: again
  // A connection failed before its session was ready while others were
  // still open or opening: no new connection until one of them is ready or
  // ends (they tell whether the host answers and how many it takes).
  bool doubtful = false;
  std::vector<OutboundConnection*> conns;
};

// 20 bytes per queued message: the file name is interned (a segment holds
// thousands of records), the rest is the record's place.
struct Engine::Message {
  uint32_t file = 0;  // index into file_names_ (one user of it)
  uint32_t jobs = 0;
  uint32_t offset = 0;  // segments rotate at 64 MiB
  uint32_t length = 0;
  uint16_t dir = 0;
};

// One job on its way: on a connection, or decided without one (DNS failure,
// unreachable destination, administrator's bounce).
struct Engine::Active {
  queue::Job job;
  std::string domain;
  OutboundConnection* conn = nullptr;
  bool detached = false;   // decided without a connection: `preset` is every result
  bool abandoned = false;  // its connection ended before the message started
  bool reported = false;   // already out of the queue (administrator's bounce)
  bool counted = false;    // detached: `preset` already reached the shaping gate
  bool deleted = false;    // `queue delete`: recorded as Deletion, no DSN
  smtp::Reply preset;
  std::string mx, ip;  // detached: the host that failed, if any
  RecordPtr record;    // shared with every job of the message (record_cache.h)
  const spool::ParsedFile* parsed = nullptr;  // into record
  // What goes out after the added headers: the spooled body, or for a mail
  // merge this recipient's rendering of the stored template.
  std::string_view body;
  std::string rendered;
  // DKIM-Signature fields sent before the added headers (SignBody), and
  // their {"d","s"} list for the accounting record.
  std::string_view signatures;
  std::string_view signatures_json;
  dkim::Signed own_signatures;  // a merge recipient's (others live in the record)
  std::vector<std::optional<std::pair<smtp::Outcome, smtp::Reply>>> results;
  size_t body_pos = 0;
  bool body_ended = false;
};

struct Engine::Final {
  uint32_t index;
  smtp::Reply reply;
};

namespace {

// A read of one spool record through the ring.
struct ReadOp final : io::Completion {
  io::Ring* ring;
  int fd;
  uint64_t offset;
  std::string bytes;
  size_t done = 0;
  std::function<void(absl::StatusOr<std::string>)> callback;

  void Submit() {
    io_uring_sqe* sqe = ring->Prepare(this);
    io_uring_prep_read(sqe, fd, bytes.data() + done, static_cast<unsigned>(bytes.size() - done),
                       offset + done);
  }
  void OnComplete(int result, uint32_t) override {
    if (result < 0) {
      auto cb = std::move(callback);
      const int err = -result;
      delete this;
      return cb(absl::InternalError(absl::StrCat("read spool record: ", std::strerror(err))));
    }
    if (result == 0) {
      auto cb = std::move(callback);
      delete this;
      return cb(absl::DataLossError("spool record shorter than recorded"));
    }
    done += static_cast<size_t>(result);
    if (done < bytes.size()) return Submit();
    auto cb = std::move(callback);
    std::string out = std::move(bytes);
    delete this;
    cb(std::move(out));
  }
};

}  // namespace

Engine::Engine(io::Ring& ring, const config::Config& config, EngineHost& host, std::string hostname,
               dkim::Signer* dkim)
    : ring_(ring),
      config_(config),
      host_(host),
      hostname_(std::move(hostname)),
      dkim_(dkim),
      options_(OptionsFrom(config, hostname_)),
      queues_(PolicyFrom(config), queue::RetrySchedule(config.retry)) {}

Engine::~Engine() {
  for (Active* a : detached_waiting_) delete a;  // a stop past its grace period
  for (OutboundConnection* c : dead_) delete c;
  for (OutboundConnection* c : dying_) delete c;
  for (auto& [k, fd] : dir_fds_) close(fd);
  for (auto& [k, f] : file_fds_) close(f.fd);
}

absl::Status Engine::Init() {
  dns::ResolverConfig rc;
  rc.servers = config_.dns_servers;
  rc.timeout_ms = static_cast<int>(config_.dns_timeout_ms);
  rc.tries = static_cast<int>(config_.dns_tries);
  rc.max_queries_in_flight = config_.dns_max_in_flight;
  auto resolver = dns::Resolver::Create(ring_, rc);
  if (!resolver.ok()) return resolver.status();
  resolver_ = std::move(*resolver);
  own_ = OwnAddresses::FromHost(config_);
  own_name_ = dns::NormalizeDomain(hostname_);
  tls::ContextOptions plain;
  plain.mode = tls::Mode::kClient;
  auto ctx = tls::Context::Create(plain);
  if (!ctx.ok()) return ctx.status();
  tls_plain_ = *std::move(ctx);
  tls::ContextOptions verify = plain;
  verify.verify_peer = true;
  verify.ca_file = config_.outbound_tls_ca_file;
  auto vctx = tls::Context::Create(verify);
  if (vctx.ok()) {
    tls_verify_ = *std::move(vctx);
  } else {
    // Only domains under the "verify" policy need it: they defer (451 4.7.5).
    std::fprintf(stderr, "sluice: delivery: no verifying TLS context (%s)\n",
                 std::string(vctx.status().message()).c_str());
  }
  return absl::OkStatus();
}

void Engine::AddJob(base::QueueId id, const RecordRef& where, const std::string& domain,
                    const std::vector<uint32_t>& recipients, uint16_t failures, uint64_t due_us) {
  // No job: nothing would ever finish (and erase) the message.
  if (recipients.empty()) return;
  const uint64_t now_us = base::WallMicros();
  Message& m = messages_[id];
  if (m.jobs == 0) {
    // Released when the message's last job finishes (FinishJob).
    m.file = file_names_.Acquire(where.file);
    m.dir = where.dir;
    SLUICE_CHECK(where.offset <= UINT32_MAX && where.length <= UINT32_MAX);
    m.offset = static_cast<uint32_t>(where.offset);
    m.length = static_cast<uint32_t>(where.length);
  }
  // One job per transaction's worth of recipients.
  const size_t per = std::max<size_t>(1, config_.max_recipients_per_transaction);
  for (size_t i = 0; i < recipients.size(); i += per) {
    queue::Job job;
    job.message = id;
    job.failures = failures;
    for (size_t k = i; k < std::min(recipients.size(), i + per); ++k) {
      job.recipients.push_back(recipients[k]);
    }
    ++m.jobs;
    ++stats_.jobs_received;
    if (due_us > now_us) {
      queues_.EnqueueDeferred(domain, std::move(job), due_us, now_us);
    } else {
      queues_.Enqueue(domain, std::move(job), now_us);
    }
  }
  // Enqueue filed the domain under "now" (or the deferral's time): Pump
  // works it then.
}

std::string Engine::RetryState() {
  std::string out;
  spool::RetryEntry entry;
  queues_.ForEach([&](queue::DomainQueue& q) {
    q.ForEachQueued([&](const queue::Job& job, queue::Micros due) {
      if (job.failures == 0) return;  // never tried, or tried and not failed
      entry.id = job.message;
      entry.failures = job.failures;
      entry.next_attempt_us = due;
      entry.recipients.assign(job.recipients.begin(), job.recipients.end());
      spool::AppendRetryEntry(out, entry);
    });
  });
  return out;
}

Engine::Destination& Engine::DestinationFor(queue::DomainQueue& q) {
  auto& slot = destinations_[q.domain()];
  if (!slot) {
    slot = std::make_unique<Destination>();
    slot->domain = q.domain();
    slot->q = &q;
  }
  return *slot;
}

void Engine::Pump(uint64_t now_ms) {
  now_ms_ = now_ms;
  if (resolver_) resolver_->RunDueTimeouts(now_ms);
  for (OutboundConnection* c : dead_) delete c;
  dead_.swap(dying_);
  dying_.clear();
  const uint64_t now_us = base::WallMicros();
  // Parked domains take the slots freed since, first come first served.
  // One that no longer needs its slot leaves it free for the next Pump
  // (NextWakeupMs returns 0 while that can happen).
  for (size_t free = FreeSlots(); free > 0 && !parked_.empty();) {
    queue::DomainQueue* q = parked_.front();
    parked_.pop_front();
    if (parked_set_.erase(q) == 0) continue;  // worked (unparked) since
    queues_.Reschedule(*q, now_us);
    --free;
  }
  due_.clear();
  queues_.Due(now_us, due_);
  for (queue::DomainQueue* q : due_) {
    if (parked_set_.contains(q)) continue;  // out of the heap until a slot frees
    Work(*q, now_us);
    // A doubtful destination is woken by its connections (OnReady,
    // OnFinished), not by the clock, which would say "now" until they do.
    if (DestinationFor(*q).doubtful) continue;
    queues_.Reschedule(*q, now_us);
  }
}

size_t Engine::FreeSlots() const {
  return connections_.size() < config_.max_outbound_connections
             ? config_.max_outbound_connections - connections_.size()
             : 0;
}

int Engine::NextWakeupMs(uint64_t, int max_ms) {
  int wait = max_ms;
  const queue::Micros next = queues_.NextWakeup();
  if (next != queue::kNever) {
    const uint64_t now_us = base::WallMicros();
    const uint64_t ms = next <= now_us ? 0 : (next - now_us + 999) / 1000;
    wait = static_cast<int>(std::min<uint64_t>(ms, static_cast<uint64_t>(wait)));
  }
  if (resolver_) wait = resolver_->NextTickMs(wait);
  if (!parked_.empty() && FreeSlots() > 0) wait = 0;
  return wait;
}

void Engine::Work(queue::DomainQueue& q, uint64_t now_us) {
  Destination& d = DestinationFor(q);
  parked_set_.erase(&q);  // parks again below if still blocked (its deque entry goes stale)
  if (q.shared_gate() != nullptr) {
    if (auto w = shared_waiting_.find(q.shared_gate()); w != shared_waiting_.end()) {
      w->second.erase(&q);
    }
  }
  if (stopping_ || q.ready_count() == 0) return;
  if (d.expires_ms <= now_ms_) {
    if (!d.resolving) Resolve(d);
    if (d.targets.empty() || d.resolving) return;
  }
  // Idle connections take work first.
  for (OutboundConnection* c : std::vector<OutboundConnection*>(d.conns)) {
    if (q.ready_count() == 0) break;
    if (!c->finished() && c->job == nullptr && c->idle_since_ms() != 0) {
      c->set_idle_since_ms(0);
      OnReady(*c);
    }
  }
  // Then new connections, one per ready job not yet covered by a connection
  // that is still opening, within the shaping gate and the shard's limit.
  auto unbusy = [&] {
    size_t n = 0;
    for (OutboundConnection* c : d.conns) n += (!c->finished() && c->job == nullptr && !c->retired);
    return n;
  };
  while (!d.doubtful && q.ready_count() > unbusy() &&
         connections_.size() < config_.max_outbound_connections &&
         q.MayOpenConnection(now_us).ok()) {
    OpenConnection(d, q, now_us);
  }
  const size_t uncovered = q.ready_count() > unbusy() ? q.ready_count() - unbusy() : 0;
  if (uncovered == 0 || d.doubtful) return;
  const queue::GateDecision gate = q.MayOpenConnection(now_us);
  if (gate.ok()) {
    // Only the shard's cap stops it. Without parking, the queue's own
    // wake-up time would stay "now" and the shard would spin until a
    // connection closed.
    if (parked_set_.insert(&q).second) parked_.push_back(&q);
    ReclaimIdle(q, uncovered, nullptr);
  } else if (gate.gate == queue::Gate::kSlotsFull && q.shared_gate() != nullptr &&
             q.shared_gate()->ConnectionAvailableAt(now_us) == queue::kNever &&
             q.gate().ConnectionAvailableAt(now_us) != queue::kNever) {
    // The by_mx budget is what is full: its other domains' idle connections
    // would hold it for idle_connection. (A close reschedules every domain
    // of the gate: QueueSet::CloseConnection.)
    shared_waiting_[q.shared_gate()].insert(&q);
    ReclaimIdle(q, uncovered, q.shared_gate());
  }
}

bool Engine::SlotWanted(const queue::DomainQueue& q) const {
  if (!parked_set_.empty()) return true;  // the shard's cap
  if (q.shared_gate() == nullptr) return false;
  const auto w = shared_waiting_.find(q.shared_gate());
  if (w == shared_waiting_.end()) return false;
  return w->second.size() > (w->second.contains(&q) ? 1u : 0u);
}

void Engine::ReclaimIdle(const queue::DomainQueue& q, size_t wanted,
                         const queue::ShapingGate* shared) {
  for (OutboundConnection* c : std::vector<OutboundConnection*>(connections_)) {
    if (wanted == 0) return;
    if (c->finished() || c->job != nullptr || c->idle_since_ms() == 0) continue;
    const auto* d = static_cast<Destination*>(c->owner);
    if (d->q == &q || (shared != nullptr && d->q->shared_gate() != shared)) continue;
    c->set_idle_since_ms(0);
    c->session().Quit();
    c->Send();
    --wanted;
  }
}

OutboundTlsSetup Engine::TlsFor(const Destination& d) {
  OutboundTlsSetup s;
  s.sessions = tls_sessions_.get();
  s.handshakes = &stats_.tls_handshakes;  // counted by the connection
  s.handshake_failures = &stats_.tls_handshake_failures;
  switch (d.tls) {
    case config::OutboundTls::kDisabled:
      break;
    case config::OutboundTls::kOpportunistic:
      if (d.plaintext_until_ms <= now_ms_) {
        s.policy = smtp::TlsPolicy::kOpportunistic;
        s.context = tls_plain_;
      }
      break;
    case config::OutboundTls::kRequired:
      s.policy = smtp::TlsPolicy::kRequired;
      s.context = tls_plain_;
      break;
    case config::OutboundTls::kVerify:
      s.policy = smtp::TlsPolicy::kRequired;
      s.context = tls_verify_;  // null: every attempt fails with 4.7.5
      break;
  }
  return s;
}

void Engine::Reconfigure(const config::Config& before) {
  const uint64_t now_us = base::WallMicros();
  options_ = OptionsFrom(config_, hostname_);  // connections hold a reference: same thread
  queues_.SetRetry(queue::RetrySchedule(config_.retry));
  queues_.SetPolicy(PolicyFrom(config_), now_us);  // reschedules every domain
  for (auto& [domain, d] : destinations_) {
    if (NextHop(before, domain) != NextHop(config_, domain)) Retarget(*d);
  }
}

void Engine::Retarget(Destination& d) {
  d.expires_ms = 0;  // Work resolves again before the next connection
  d.plaintext_until_ms = 0;
  if (d.resolving) d.stale = true;
  for (OutboundConnection* c : d.conns) {
    c->retired = true;
    if (!c->finished() && c->job == nullptr && c->idle_since_ms() != 0) {
      c->set_idle_since_ms(0);
      c->session().Quit();
      c->Send();
    }
  }
}

void Engine::Resolve(Destination& d) {
  d.resolving = true;
  d.tls = config::FindOutboundTls(config_, d.domain);
  const config::Route* route = config::FindRoute(config_, d.domain);
  d.port = route != nullptr ? route->port : config_.mx_port;
  d.routed = route != nullptr;
  if (route == nullptr && !d.domain.empty() && d.domain.front() == '[') {
    // An address literal (u@[192.0.2.7], u@[IPv6:2001:db8::1]): that host,
    // no DNS, like an implicit MX that needs no lookup.
    const std::string domain = d.domain;
    return OnResolved(domain, AddressLiteralResult(domain));
  }
  std::string name = route != nullptr ? route->host : d.domain;
  if (route != nullptr) {
    // A literal next hop needs no lookup.
    dns::IpAddress ip;
    std::string literal = name;
    if (!literal.empty() && literal.front() == '[') literal = literal.substr(1, literal.size() - 2);
    if (inet_pton(AF_INET, literal.c_str(), ip.bytes) == 1) {
      ip.family = AF_INET;
    } else if (inet_pton(AF_INET6, literal.c_str(), ip.bytes) == 1) {
      ip.family = AF_INET6;
    }
    if (ip.family != 0) {
      d.resolving = false;
      d.targets = {Target{literal, ip}};
      d.expires_ms = UINT64_MAX;
      if (own_.IsSelf(BaseAddress(ip), d.port)) FailLoop(d);
      return;
    }
  }
  const std::string domain = d.domain;
  auto done = [this, domain](const dns::MxResult& r) { OnResolved(domain, r); };
  if (route != nullptr) {
    resolver_->ResolveHost(name, std::move(done));  // a next hop: its addresses, no MX
  } else {
    resolver_->ResolveMx(name, std::move(done));
  }
}

void Engine::OnResolved(const std::string& domain, const dns::MxResult& result) {
  auto it = destinations_.find(domain);
  if (it == destinations_.end()) return;
  Destination& d = *it->second;
  d.resolving = false;
  if (d.stale) {  // resolved for the next hop a reload replaced
    d.stale = false;
    return Resolve(d);
  }
  queue::DomainQueue& q = *d.q;
  const uint64_t now_us = base::WallMicros();
  if (result.ok() && !SetTargets(d, result)) {
    FailLoop(d);  // every target was this relay
  } else if (result.ok()) {
    // The resolver caches by TTL; this only spares a callback per turn.
    d.expires_ms = now_ms_ + 1000ull * std::clamp<uint32_t>(result.ttl_s, 1, 300);
    if (q.open_connections() == 0) queues_.BindMx(q, d.targets.front().host, now_us);
    Work(q, now_us);
  } else {
    const bool permanent = result.kind == dns::ResultKind::kPermanent;
    d.targets.clear();
    d.expires_ms = 0;
    const std::string code =
        result.enhanced_code.empty() ? (permanent ? "5.4.4" : "4.4.3") : result.enhanced_code;
    FailReady(q, MakeReply(permanent ? 550 : 451, code, result.text), permanent, "", "", false);
  }
  queues_.Reschedule(q, now_us);
}

bool Engine::SetTargets(Destination& d, const dns::MxResult& result) {
  d.targets.clear();
  for (const dns::MxHost& h : result.hosts) {
    // Our own name as an MX host: Postfix's "loops back to myself" too,
    // whatever port. A route's next hop is named by the operator: only its
    // addresses are checked.
    const bool named_me = !d.routed && dns::NormalizeDomain(h.name) == own_name_;
    for (const dns::IpAddress& ip : h.addresses) {
      if (!named_me && !own_.IsSelf(BaseAddress(ip), d.port) && d.targets.size() < kMaxTargets) {
        d.targets.push_back(Target{h.name, ip});
      }
    }
  }
  return !d.targets.empty();
}

void Engine::FailLoop(Destination& d) {
  d.targets.clear();
  d.expires_ms = 0;  // resolved again (from the DNS cache) for the next job
  FailReady(*d.q,
            MakeReply(550, "5.4.6", absl::StrCat("mail for ", d.domain, " loops back to myself")),
            /*permanent=*/true, "", "", false);
}

void Engine::FailReady(queue::DomainQueue& q, const smtp::Reply& reply, bool permanent,
                       const std::string& mx, const std::string& ip, bool counted) {
  for (queue::Job& job : q.TakeAllReady()) {
    auto* a = new Active();
    a->counted = counted;
    ++actives_;
    a->domain = q.domain();
    a->mx = mx;
    a->ip = ip;
    a->detached = true;
    a->preset = reply;
    a->preset.code = permanent ? std::max(reply.code, 550) : reply.code;
    a->job = std::move(job);
    LoadDetached(a);
  }
}

void Engine::LoadDetached(Active* a) {
  detached_waiting_.push_back(a);
  StartDetachedLoads();
}

void Engine::StartDetachedLoads() {
  // A load can complete at once (a cached record) and finish its job, which
  // calls back here: the outer loop carries on instead.
  if (starting_detached_) return;
  starting_detached_ = true;
  while (!detached_waiting_.empty() && detached_loading_ < kMaxDetachedLoads) {
    Active* a = detached_waiting_.front();
    detached_waiting_.pop_front();
    ++detached_loading_;
    auto m = messages_.find(a->job.message);
    SLUICE_CHECK(m != messages_.end());
    LoadRecord(a, WhereOf(m->second));
  }
  starting_detached_ = false;
}

void Engine::OpenConnection(Destination& d, queue::DomainQueue& q, uint64_t now_us) {
  const queue::ConnectionId slot = q.OpenConnection(now_us);
  auto* c = new OutboundConnection(ring_, *this, options_, d.targets, d.port, TlsFor(d));
  c->owner = &d;
  c->queue_slot = slot;
  d.conns.push_back(c);
  connections_.push_back(c);
  ++stats_.connections_opened;
  c->Start(now_ms_);
}

void Engine::OnReady(OutboundConnection& c) {
  auto& d = *static_cast<Destination*>(c.owner);
  queue::DomainQueue& q = *d.q;
  if (stopping_ || c.retired) {
    c.session().Quit();
    c.Send();
    return;
  }
  const uint64_t now_us = base::WallMicros();
  if (!c.seen_ready) {
    c.seen_ready = true;
    if (d.doubtful) {
      d.doubtful = false;  // the host answers: more connections may try
      queues_.Reschedule(q, now_us);
    }
  }
  std::optional<queue::Job> job = q.TakeReady(c.queue_slot, now_us);
  if (!job) {
    const queue::GateDecision why = q.MaySend(c.queue_slot, now_us);
    // Out of work while another domain waits for the slot this connection
    // holds: give it up now rather than after idle_connection.
    if (why.gate == queue::Gate::kConnectionDone || why.gate == queue::Gate::kSuspended ||
        (why.gate == queue::Gate::kNoWork && SlotWanted(q))) {
      c.session().Quit();
      c.Send();
    } else {
      c.set_idle_since_ms(std::max<uint64_t>(now_ms_, 1));
    }
    queues_.Reschedule(q, now_us);
    return;
  }
  c.set_idle_since_ms(0);
  StartJob(c, std::move(*job));
}

void Engine::StartJob(OutboundConnection& c, queue::Job job) {
  auto* a = new Active();
  ++actives_;
  a->domain = static_cast<Destination*>(c.owner)->domain;
  a->conn = &c;
  a->job = std::move(job);
  c.job = a;
  auto m = messages_.find(a->job.message);
  SLUICE_CHECK(m != messages_.end());
  LoadRecord(a, WhereOf(m->second));
}

void Engine::LoadRecord(Active* a, const RecordRef& where) {
  records_.Get(
      a->job.message,
      [this, where](std::function<void(absl::StatusOr<std::string>)> done) {
        ReadRecord(where, std::move(done));
      },
      [this, a](absl::StatusOr<RecordPtr> record) { OnRecord(a, std::move(record)); });
}

void Engine::OnRecord(Active* a, absl::StatusOr<RecordPtr> record) {
  if (record.ok()) {
    a->record = *std::move(record);
    a->parsed = &a->record->parsed;
  } else {
    ++stats_.record_errors;
    std::fprintf(stderr, "sluice: delivery: message %s: %s\n", a->job.message.ToString().c_str(),
                 std::string(record.status().message()).c_str());
  }
  if (a->parsed) PrepareBody(a);
  if (a->parsed && !a->detached && !a->abandoned) SignBody(a);
  a->results.resize(a->job.recipients.size());
  if (a->detached || a->abandoned || !a->parsed) {
    smtp::Reply reply = a->preset;
    if (!a->detached) {
      reply = MakeReply(
          451, "4.3.0",
          a->parsed ? "connection ended before the message started" : "spool record unreadable");
    }
    OutboundConnection* c = a->detached || a->abandoned ? nullptr : a->conn;
    if (c != nullptr) c->job = nullptr;
    FinishJob(c, a, reply);
    if (c != nullptr) OnReady(*c);  // the session is still idle
    return;
  }
  // Build the transaction.
  const spool::Envelope& env = a->parsed->envelope;
  smtp::OutboundMessage msg;
  msg.sender = env.sender;
  for (uint32_t idx : a->job.recipients) {
    msg.recipients.push_back(idx < env.recipients.size() ? env.recipients[idx].address
                                                         : std::string());
  }
  msg.size = a->signatures.size() + env.added_headers.size() + a->body.size();
  msg.eight_bit = env.eight_bit;
  msg.smtputf8 = env.smtputf8;
  OutboundConnection& c = *a->conn;
  if (!c.session().StartMessage(msg)) {
    c.job = nullptr;
    FinishJob(&c, a, MakeReply(451, "4.3.0", "session not ready"));
    return;
  }
  c.Send();
}

// RFC 5322 2.1.1: a part with a line over 998 octets (accepted up to
// server.max_data_line_length) leaves re-encoded (smtp/long_lines.h). Runs
// on the final body, before anything that signs it.
static void FitLineLength(std::string_view& body, std::string& storage) {
  if (auto fitted = smtp::ReencodeLongLines(body)) {
    storage = *std::move(fitted);
    body = storage;
  }
}

void Engine::PrepareBody(Active* a) {
  const spool::Envelope& env = a->parsed->envelope;
  a->body = a->parsed->body;
  if (!env.is_merge() || a->job.recipients.empty()) return FitLineLength(a->body, a->rendered);
  // A mail merge: every recipient gets its own rendering, so its own
  // transaction. The job's other recipients become jobs of their own,
  // ready at once and with the same attempt count.
  if (!a->detached && a->job.recipients.size() > 1) {
    queue::DomainQueue* q = queues_.Find(a->domain);
    auto m = messages_.find(a->job.message);
    SLUICE_CHECK(q != nullptr && m != messages_.end());
    for (size_t k = 1; k < a->job.recipients.size(); ++k) {
      // Copied whole, then narrowed: GCC 12 sees a default-built Job's
      // InlinedVector as "maybe uninitialized" when moved (-Werror).
      queue::Job j = a->job;
      j.recipients.assign(1, a->job.recipients[k]);
      q->Enqueue(std::move(j));
      ++m->second.jobs;
    }
    a->job.recipients.resize(1);
    queues_.Reschedule(*q, base::WallMicros());
  }
  // Detached outcomes (a DNS failure for the whole domain) render for the
  // first recipient: the DSN quotes that recipient's headers.
  const uint32_t idx = a->job.recipients.front();
  static const std::vector<std::string> kNoValues;
  const std::vector<std::string>& values =
      idx < env.recipients.size() ? env.recipients[idx].values : kNoValues;
  // Compiled once per record (RecordCache checked it against merge_fields).
  SLUICE_CHECK(a->record->compiled.has_value());
  if (env.message_id_host.empty()) {
    a->rendered = merge::Render(*a->record->compiled, values);
  } else {
    // The template has no Message-ID: this recipient's message gets its own.
    a->rendered =
        absl::StrCat("Message-ID: <", env.id.ToString(), ".", idx, "@", env.message_id_host,
                     ">\r\n", merge::Render(*a->record->compiled, values));
  }
  a->body = a->rendered;
  FitLineLength(a->body, a->rendered);
}

void Engine::SignBody(Active* a) {
  if (dkim_ == nullptr) return;
  const uint64_t now_s = base::WallMicros() / 1000000;
  bool shared = !a->parsed->envelope.is_merge();
  // A cached signature past half its x= lifetime is not sent again; this
  // job signs for itself (the cached fields stay: other jobs may be sending
  // them).
  const auto& cached = a->record->dkim;
  if (shared && cached && cached->expires_s != 0 &&
      now_s >= cached->time_s + (cached->expires_s - cached->time_s) / 2) {
    shared = false;
  } else if (shared && cached) {  // signed by an earlier job of this message
    ++stats_.dkim_reused;
    a->signatures = a->record->dkim->fields;
    a->signatures_json = a->record->dkim->json;
    return;
  }
  auto made = dkim_->Sign(a->parsed->envelope.added_headers, a->body, now_s);
  if (!made.ok()) {  // a key that cannot sign: send unsigned, say why
    std::fprintf(stderr, "sluice: dkim: message %s: %s\n", a->job.message.ToString().c_str(),
                 std::string(made.status().message()).c_str());
    return;
  }
  if (!made->fields.empty()) ++stats_.dkim_signed;
  const dkim::Signed& kept = shared && !cached ? a->record->dkim.emplace(*std::move(made))
                                               : (a->own_signatures = *std::move(made));
  a->signatures = kept.fields;
  a->signatures_json = kept.json;
}

void Engine::OnBodyWanted(OutboundConnection& c) {
  auto* a = static_cast<Active*>(c.job);
  if (a == nullptr || !a->parsed || a->body_ended) return;
  // Sent in order: signatures, the added headers, the body.
  const std::string_view sigs = a->signatures;
  const std::string_view added = a->parsed->envelope.added_headers;
  const std::string_view body = a->body;
  const size_t head_size = sigs.size() + added.size();
  const size_t total = head_size + body.size();
  smtp::ClientSession& s = c.session();
  while (a->body_pos < total && !s.body_paused()) {
    if (a->body_pos < sigs.size()) {
      s.AppendBody(sigs.substr(a->body_pos));
      a->body_pos = sigs.size();
    } else if (a->body_pos < head_size) {
      s.AppendBody(added.substr(a->body_pos - sigs.size()));
      a->body_pos = head_size;
    } else {
      const size_t n = std::min(kBodyPiece, total - a->body_pos);
      s.AppendBody(body.substr(a->body_pos - head_size, n));
      a->body_pos += n;
    }
  }
  if (a->body_pos == total && !a->body_ended && s.state() == smtp::ClientSession::State::kBody) {
    a->body_ended = true;
    s.EndBody();
  }
  c.Send();
}

void Engine::OnRecipientResult(OutboundConnection& c, size_t index, smtp::Outcome outcome,
                               const smtp::Reply& reply) {
  auto* a = static_cast<Active*>(c.job);
  if (a == nullptr || index >= a->results.size()) return;
  a->results[index] = std::make_pair(outcome, reply);
}

void Engine::OnMessageDone(OutboundConnection& c, const smtp::MessageResult& result) {
  auto* a = static_cast<Active*>(c.job);
  if (a == nullptr) return;
  c.job = nullptr;
  FinishJob(&c, a, result.reply);
}

void Engine::FinishJob(OutboundConnection* c, Active* a, const smtp::Reply& decisive) {
  const uint64_t now_us = base::WallMicros();
  queue::DomainQueue* q = queues_.Find(a->domain);
  SLUICE_CHECK(q != nullptr);
  const spool::Envelope* env = a->parsed ? &a->parsed->envelope : nullptr;
  const std::string mx = c != nullptr ? c->target().host : a->mx;
  const std::string ip = c != nullptr ? c->target().ip.ToString() : a->ip;
  const std::string tls = c != nullptr ? c->tls_description() : std::string();
  const uint32_t attempt = a->job.failures + 1u;

  // The batch ids every record of this job carries (Record reads them).
  record_campaign_ = env != nullptr ? env->campaign : std::string();
  record_tenant_ = env != nullptr ? env->tenant : std::string();
  record_tls_resumed_ = c != nullptr && c->tls_resumed();
  record_dkim_ = std::string(a->signatures_json);
  std::vector<uint32_t> delivered;
  std::vector<Final> failed;
  // Transient outcomes are logged once the queue has said whether the
  // message expired: then each gets one Expiration record (with its own
  // last reply) instead of a TransientFailure and an Expiration.
  std::vector<Final> transient;
  queue::Job pending = a->job;
  pending.recipients.clear();
  std::string defer_reason;  // the first transient reply: the job's last error
  for (size_t k = 0; k < a->job.recipients.size(); ++k) {
    const uint32_t idx = a->job.recipients[k];
    smtp::Outcome outcome;
    smtp::Reply reply;
    if (a->detached || !a->results[k]) {
      reply = a->detached ? a->preset : decisive;
      outcome = reply.code >= 500 ? smtp::Outcome::kPermanent : smtp::Outcome::kTransient;
      if (reply.code >= 200 && reply.code < 300) outcome = smtp::Outcome::kDelivered;
    } else {
      outcome = a->results[k]->first;
      reply = a->results[k]->second;
    }
    const std::string rcpt =
        env && idx < env->recipients.size() ? env->recipients[idx].address : std::string();
    const std::string sender = env ? env->sender : std::string();
    switch (outcome) {
      case smtp::Outcome::kDelivered:
        ++stats_.delivered;
        stats_.delivery_latency.Record(now_us - std::min(now_us, a->job.queued_at()));
        Record(log::DeliveryType::kDelivery, a->job.message, sender, rcpt, a->domain, mx, ip, reply,
               attempt, tls);
        delivered.push_back(idx);
        break;
      case smtp::Outcome::kPermanent:
        ++(a->deleted ? stats_.deleted : stats_.bounced);
        if (!a->deleted) {
          stats_.delivery_latency.Record(now_us - std::min(now_us, a->job.queued_at()));
        }
        Record(a->deleted ? log::DeliveryType::kDeletion : log::DeliveryType::kBounce,
               a->job.message, sender, rcpt, a->domain, mx, ip, reply, attempt, tls);
        failed.push_back(Final{idx, reply});
        break;
      case smtp::Outcome::kTransient:
        ++stats_.deferred;
        transient.push_back(Final{idx, reply});
        if (pending.recipients.empty()) defer_reason = Diagnostic(reply);
        pending.recipients.push_back(idx);
        break;
    }
  }
  bool expired = false;
  if (!a->reported) {
    // A reply the gate has already seen (the 421 greeting that failed every
    // ready job) is reported as "no reply": it must not back off once per job.
    const queue::Reply qr{a->counted ? 0 : decisive.code, decisive.text};
    // A 421 closes the connection; OnFinished would count it again.
    if (c != nullptr && decisive.code == 421) c->close_reply_counted = true;
    if (!pending.recipients.empty()) pending.last_error = q->InternError(defer_reason);
    queue::ReportResult rr =
        q->Report(c != nullptr ? c->queue_slot : queue::kNoConnection, pending, qr, now_us);
    if (rr.kind == queue::ReportResult::kExpired) {
      expired = true;
      for (uint32_t idx : rr.expired->recipients) {
        ++stats_.expired;
        stats_.delivery_latency.Record(now_us - std::min(now_us, a->job.queued_at()));
        const std::string rcpt =
            env && idx < env->recipients.size() ? env->recipients[idx].address : std::string();
        smtp::Reply why = decisive;
        for (const Final& t : transient) {
          if (t.index == idx) why = t.reply;  // this recipient's last error
        }
        Record(log::DeliveryType::kExpiration, a->job.message, env ? env->sender : std::string(),
               rcpt, a->domain, mx, ip, why, attempt, tls);
        failed.push_back(Final{idx, why});
      }
      pending.recipients.clear();
    }
  }
  if (!expired) {
    for (const Final& t : transient) {
      const std::string rcpt = env && t.index < env->recipients.size()
                                   ? env->recipients[t.index].address
                                   : std::string();
      Record(log::DeliveryType::kTransientFailure, a->job.message,
             env ? env->sender : std::string(), rcpt, a->domain, mx, ip, t.reply, attempt, tls);
    }
  }
  auto m = messages_.find(a->job.message);
  SLUICE_CHECK(m != messages_.end());
  const uint16_t dir = m->second.dir;
  if (!delivered.empty()) host_.ReportFinal(a->job.message, dir, delivered);
  if (!failed.empty()) {
    std::vector<uint32_t> indexes;
    for (const Final& f : failed) indexes.push_back(f.index);
    const bool want_dsn =
        !a->deleted && env != nullptr && !env->untrusted &&
        !dsn::LooksLikeDsn(env->sender, a->record == nullptr ? std::string_view() : a->body);
    if (env != nullptr && env->untrusted) {
      // Its sender is whatever an unauthenticated outsider wrote: a DSN
      // would be backscatter. The Bounce records above are all there is.
      std::fprintf(stderr, "sluice: delivery: no DSN for %s: untrusted submitter\n",
                   a->job.message.ToString().c_str());
    }
    if (!want_dsn) {
      host_.ReportFinal(a->job.message, dir, indexes);
    } else {
      dsn::DsnInput in;
      in.reporting_mta = hostname_;
      in.original_id = a->job.message.ToString();
      in.original_sender = env->sender;
      in.arrival_micros = env->arrival_micros;
      in.now_micros = now_us;
      in.expired = expired;
      in.max_queue_time_micros = config_.retry.max_age;
      std::string original = env->added_headers;
      original.append(a->body);
      in.original_message = original;
      for (const Final& f : failed) {
        dsn::FailedRecipient r;
        r.address = f.index < env->recipients.size() ? env->recipients[f.index].address : "";
        r.status = StatusOf(f.reply, expired && f.reply.code < 500);
        r.remote_mta = f.reply.local ? std::string() : mx;
        r.diagnostic = f.reply.local ? f.reply.text : Diagnostic(f.reply);
        r.last_attempt_micros = now_us;
        in.recipients.push_back(std::move(r));
      }
      auto built = dsn::BuildDsn(in);
      if (!built.ok()) {
        std::fprintf(stderr, "sluice: delivery: no DSN for %s: %s\n",
                     a->job.message.ToString().c_str(),
                     std::string(built.status().message()).c_str());
        host_.ReportFinal(a->job.message, dir, indexes);
      } else {
        ++stats_.dsns;
        const base::QueueId id = a->job.message;
        host_.QueueLocal(env->sender, std::move(built->message), built->eight_bit,
                         [this, id, dir, indexes](bool ok) {
                           // Not durable: keep the recipients, so the next
                           // start bounces them again rather than silently.
                           if (ok) host_.ReportFinal(id, dir, indexes);
                         });
      }
    }
  }
  if (pending.recipients.empty()) {
    if (--m->second.jobs == 0) {
      records_.Forget(m->first);
      file_names_.Release(m->second.file);
      messages_.erase(m);
    }
  } else if (m->second.jobs == 1) {
    // The message's only job waits for a retry minutes or hours away: a
    // cached copy of its record would only hold memory (a deferred backlog
    // kept the cache at its budget: 1.3 KB of RSS per queued recipient).
    records_.Forget(m->first);
  }
  const bool detached = a->detached;
  delete a;
  --actives_;
  queues_.Reschedule(*q, now_us);
  if (detached) {
    --detached_loading_;
    StartDetachedLoads();
  }
}

void Engine::OnFinished(OutboundConnection& c, const smtp::CloseInfo& info, bool ever_ready) {
  auto& d = *static_cast<Destination*>(c.owner);
  queue::DomainQueue& q = *d.q;
  const uint64_t now_us = base::WallMicros();
  if (c.job != nullptr) {
    // Its record is still being read: the message never started.
    auto* a = static_cast<Active*>(c.job);
    a->abandoned = true;
    c.job = nullptr;
  }
  if (c.tls_failed() && d.tls == config::OutboundTls::kOpportunistic) {
    // The next connections go in the clear for an hour (RFC 3207 4.1: a
    // client may; otherwise a broken TLS stack would keep mail from moving).
    d.plaintext_until_ms = now_ms_ + 3600 * 1000;
  }
  d.conns.erase(std::remove(d.conns.begin(), d.conns.end(), &c), d.conns.end());
  connections_.erase(std::remove(connections_.begin(), connections_.end(), &c), connections_.end());
  // One closing reply is one backoff step: counted here unless the job it
  // ended already counted it (FinishJob), and never again per failed job.
  if ((info.reason == smtp::CloseReason::kServerClosing ||
       info.reason == smtp::CloseReason::kRefused) &&
      !c.close_reply_counted) {
    q.ReportConnectionReply(queue::Reply{info.reply.code, info.reply.text}, now_us);
  }
  queues_.CloseConnection(q, c.queue_slot, now_us);
  if (ever_ready) {
    d.doubtful = false;  // a working connection ended: a new one may try
  } else {
    ++stats_.connection_failures;
    // No target would talk to this connection. While siblings are open or
    // opening, that may be a limit ("421 too many connections" at the
    // greeting) rather than a dead host: the jobs stay ready for them, but
    // no new connection opens until one of them is ready or ends (opening
    // one per failure was a connection storm against a dead host). When
    // none is left, the destination is unreachable: every ready job waits
    // for its retry. (Failing them while siblings were still in their
    // greeting deferred a whole backlog whenever the receiver limited
    // connections: 40 messages deferred for one 421 out of eight.)
    bool sibling = false;
    for (OutboundConnection* o : d.conns) sibling |= !o->finished();
    d.doubtful = sibling;
    if (!sibling) {
      smtp::Reply r = info.reply;
      if (r.code >= 500 || r.code == 0) r.code = 451;  // a refusal at connect is not final
      FailReady(q, r, false, c.target().host, c.target().ip.ToString(), /*counted=*/true);
    }
  }
  if (!stopping_) Work(q, now_us);
  queues_.Reschedule(q, now_us);
}

void Engine::Released(OutboundConnection& c) { dying_.push_back(&c); }

void Engine::Tick(uint64_t now_ms) {
  now_ms_ = now_ms;
  for (OutboundConnection* c : std::vector<OutboundConnection*>(connections_)) {
    c->Tick(now_ms);
    if (!c->finished() && c->job == nullptr && c->idle_since_ms() != 0 &&
        (stopping_ || now_ms - c->idle_since_ms() >= config_.idle_connection_ms)) {
      c->set_idle_since_ms(0);
      c->session().Quit();
      c->Send();
    }
  }
  if (resolver_) resolver_->Tick(now_ms);
  CloseUnlinkedFiles();
}

void Engine::BeginStop() {
  stopping_ = true;
  Tick(now_ms_);
}

void Engine::AbortAll() {
  for (OutboundConnection* c : std::vector<OutboundConnection*>(connections_)) c->Abort();
}

bool Engine::idle() const { return connections_.empty() && actives_ == 0; }

RecordRef Engine::WhereOf(const Message& m) const {
  return RecordRef{m.dir, file_names_.name(m.file), m.offset, m.length};
}

void Engine::ReadRecord(const RecordRef& where,
                        std::function<void(absl::StatusOr<std::string>)> done) {
  const std::string key = absl::StrCat(where.dir, "/", where.file);
  int fd = -1;
  bool cached = false;  // fd belongs to file_fds_[key] (pinned by this read)
  if (auto it = file_fds_.find(key); it != file_fds_.end()) {
    fd = it->second.fd;
    ++it->second.reads;
    it->second.last_use = ++file_use_;
    cached = true;
  }
  if (fd < 0) {
    auto dfd = dir_fds_.find(where.dir);
    if (dfd == dir_fds_.end()) {
      const std::string path = absl::StrCat(config_.spool_dir, "/", where.dir);
      const int f = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (f < 0) {
        return done(absl::InternalError(absl::StrCat("open ", path, ": ", std::strerror(errno))));
      }
      dfd = dir_fds_.emplace(where.dir, f).first;
    }
    fd = openat(dfd->second, where.file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      return done(
          absl::InternalError(absl::StrCat("open spool file ", key, ": ", std::strerror(errno))));
    }
    // Message files are read once per attempt and may be large: do not cache.
    if (where.length != 0) {
      if (file_fds_.size() >= kFileCache) EvictIdleFile();
      file_fds_[key] = OpenFile{fd, 1, ++file_use_};
      cached = true;
    }
  }
  uint64_t length = where.length;
  const bool owned_fd = !cached;
  if (length == 0) {
    struct stat st;
    if (fstat(fd, &st) != 0) {
      close(fd);
      return done(absl::InternalError("fstat spool file"));
    }
    length = static_cast<uint64_t>(st.st_size);
  }
  auto* op = new ReadOp();
  op->ring = &ring_;
  op->fd = fd;
  op->offset = where.offset;
  op->bytes.resize(length);
  if (owned_fd) {
    op->callback = [fd, done = std::move(done)](absl::StatusOr<std::string> r) {
      close(fd);
      done(std::move(r));
    };
  } else {
    op->callback = [this, key, done = std::move(done)](absl::StatusOr<std::string> r) {
      auto it = file_fds_.find(key);
      SLUICE_CHECK(it != file_fds_.end() && it->second.reads > 0);  // pinned while we read
      --it->second.reads;
      done(std::move(r));
    };
  }
  op->Submit();
}

void Engine::EvictIdleFile() {
  // The least recently used entry without a read in flight. If every entry
  // is busy the cache grows past kFileCache for a moment rather than close
  // a descriptor a queued read still names.
  auto victim = file_fds_.end();
  for (auto it = file_fds_.begin(); it != file_fds_.end(); ++it) {
    if (it->second.reads == 0 &&
        (victim == file_fds_.end() || it->second.last_use < victim->second.last_use)) {
      victim = it;
    }
  }
  if (victim == file_fds_.end()) return;
  close(victim->second.fd);
  file_fds_.erase(victim);
}

void Engine::CloseUnlinkedFiles() {
  for (auto it = file_fds_.begin(); it != file_fds_.end();) {
    struct stat st;
    if (it->second.reads == 0 && fstat(it->second.fd, &st) == 0 && st.st_nlink == 0) {
      close(it->second.fd);
      file_fds_.erase(it++);
    } else {
      ++it;
    }
  }
}

void Engine::Record(log::DeliveryType type, base::QueueId id, const std::string& sender,
                    const std::string& recipient, const std::string& domain, const std::string& mx,
                    const std::string& ip, const smtp::Reply& reply, uint32_t attempt,
                    const std::string& tls) {
  const uint64_t now = base::WallMicros();
  const std::string id_text = id.ToString();
  const std::string enhanced = reply.enhanced.valid() ? reply.enhanced.ToString() : std::string();
  log::DeliveryRecord r;
  r.ts_micros = now;
  r.id = id_text;
  r.sender = sender;
  r.recipient = recipient;
  r.domain = domain;
  r.mx = mx;
  r.ip = ip;
  r.code = reply.local ? 0 : reply.code;
  r.enhanced = enhanced;
  r.text = reply.text;
  r.attempt = attempt;
  r.queue_time_micros = now > id.micros() ? now - id.micros() : 0;
  r.tls = tls;
  r.tls_resumed = !tls.empty() && record_tls_resumed_;
  r.campaign = record_campaign_;
  r.tenant = record_tenant_;
  if (type == log::DeliveryType::kDelivery) r.dkim = record_dkim_;
  host_.accounting().Write(type, r);
}

// ---------------------------------------------------------------------------
// Administration.

std::string Engine::ListJson() {
  const uint64_t now_us = base::WallMicros();
  std::string out = "[";
  bool first = true;
  queues_.ForEach([&](queue::DomainQueue& q) {
    const queue::DomainStats s = q.Stats();
    const bool suspended = q.suspended_at(now_us);
    if (s.ready + s.deferred + s.in_flight + s.held == 0 && s.connections == 0 && !suspended &&
        !s.held_all) {
      return;
    }
    if (!first) out += ",";
    first = false;
    absl::StrAppend(&out, "{\"domain\":");
    log::AppendJsonString(out, q.domain());
    absl::StrAppend(
        &out, ",\"ready\":", s.ready, ",\"deferred\":", s.deferred, ",\"in_flight\":", s.in_flight,
        ",\"held\":", s.held, ",\"recipients\":", s.recipients, ",\"connections\":", s.connections,
        ",\"oldest_us\":", s.oldest == queue::kNever ? 0 : s.oldest,
        ",\"next_attempt_us\":", s.next_attempt == queue::kNever ? 0 : s.next_attempt,
        ",\"rate_permille\":", s.scale_permille, ",\"suspended\":", suspended ? "true" : "false",
        ",\"held_domain\":", s.held_all ? "true" : "false", "}");
  });
  out += "]";
  return out;
}

size_t Engine::Flush(std::string_view domain) {
  const uint64_t now_us = base::WallMicros();
  if (domain.empty()) {
    queues_.FlushAll(now_us);
    return queues_.domain_count();
  }
  return queues_.Flush(domain, now_us) ? 1 : 0;
}

void Engine::ApplyAdminState(const AdminState& state,
                             absl::FunctionRef<bool(std::string_view domain)> owned) {
  const uint64_t now_us = base::WallMicros();
  for (const Suspension& s : state.suspensions) {
    if (!owned(s.domain) || (s.until_us != 0 && s.until_us <= now_us)) continue;
    queues_.Get(s.domain, now_us);
    queues_.Suspend(s.domain, now_us, s.until_us == 0 ? queue::kNever : s.until_us);
    suspensions_[s.domain] = s;
  }
  for (base::QueueId id : state.held_ids) queues_.HoldMessage(id, now_us);
  for (const std::string& d : state.held_domains) {
    if (owned(d)) queues_.Get(d, now_us).HoldAll();
  }
}

size_t Engine::Suspend(std::string_view domain, uint64_t until_us, std::string reason) {
  // Also before any mail for it arrived: the suspension waits for it.
  const uint64_t now_us = base::WallMicros();
  queue::DomainQueue& q = queues_.Get(domain, now_us);
  queues_.Suspend(domain, now_us, until_us == 0 ? queue::kNever : until_us);
  suspensions_[q.domain()] = Suspension{q.domain(), now_us, until_us, std::move(reason)};
  return q.Stats().recipients;
}

bool Engine::Resume(std::string_view domain) {
  const uint64_t now_us = base::WallMicros();
  queue::DomainQueue* q = queues_.Find(domain);
  if (q == nullptr) return false;
  const bool was = q->suspended_at(now_us);
  suspensions_.erase(q->domain());
  queues_.Resume(domain, now_us);
  return was;
}

std::string Engine::SuspensionsJson() {
  const uint64_t now_us = base::WallMicros();
  std::string out = "[";
  for (auto it = suspensions_.begin(); it != suspensions_.end();) {
    queue::DomainQueue* q = queues_.Find(it->first);
    if (q == nullptr || !q->suspended_at(now_us)) {
      suspensions_.erase(it++);  // over (or resumed): forget the reason
      continue;
    }
    const Suspension& s = it->second;
    if (out.size() > 1) out += ",";
    out += "{\"domain\":";
    log::AppendJsonString(out, s.domain);
    absl::StrAppend(&out, ",\"since_us\":", s.since_us, ",\"until_us\":", s.until_us,
                    ",\"recipients\":", q->Stats().recipients, ",\"reason\":");
    log::AppendJsonString(out, s.reason);
    out += "}";
    ++it;
  }
  out += "]";
  return out;
}

template <typename F>
void Engine::ForEachActive(F&& f) const {
  for (const OutboundConnection* c : connections_) {
    if (c->job != nullptr) f(*static_cast<const Active*>(c->job));
  }
  for (const Active* a : detached_waiting_) f(*a);
}

size_t Engine::InFlight(const Selector& what) const {
  size_t n = 0;
  ForEachActive([&](const Active& a) {
    if (what.id ? a.job.message == *what.id : base::EqualsIgnoreCase(a.domain, what.domain)) {
      n += a.job.recipients.size();
    }
  });
  return n;
}

Engine::Touched Engine::DecideQueued(const Selector& what, bool deleted) {
  std::vector<std::pair<std::string, queue::Job>> jobs;
  queues_.ForEach([&](queue::DomainQueue& q) {
    if (what.id) {
      for (queue::Job& j : q.RemoveMessage(*what.id)) jobs.emplace_back(q.domain(), std::move(j));
    } else if (base::EqualsIgnoreCase(q.domain(), what.domain)) {
      for (queue::Job& j : q.DrainAll()) jobs.emplace_back(q.domain(), std::move(j));
    }
  });
  // The message is gone from this shard's queues: its hold has nothing left to hold.
  if (what.id) queues_.ReleaseMessage(*what.id, base::WallMicros());
  Touched t;
  t.in_flight = InFlight(what);
  for (auto& [domain, job] : jobs) {
    t.recipients += job.recipients.size();
    auto* a = new Active();
    ++actives_;
    a->domain = domain;
    a->detached = true;
    a->reported = true;
    a->deleted = deleted;
    a->preset = deleted
                    ? MakeReply(550, "5.0.0", "deleted by the administrator (sluice queue delete)")
                    : MakeReply(550, "5.0.0", "bounced by the administrator (sluice queue bounce)");
    a->job = std::move(job);
    LoadDetached(a);
  }
  return t;
}

Engine::Touched Engine::BounceQueued(const Selector& what) { return DecideQueued(what, false); }

Engine::Touched Engine::DeleteQueued(const Selector& what) { return DecideQueued(what, true); }

Engine::Touched Engine::Hold(const Selector& what) {
  const uint64_t now_us = base::WallMicros();
  Touched t;
  t.in_flight = InFlight(what);
  if (what.id) {
    t.recipients = queues_.HoldMessage(*what.id, now_us);
    // Nothing of it here: no hold to keep (an unknown id is not remembered).
    if (t.recipients == 0 && t.in_flight == 0) queues_.ReleaseMessage(*what.id, now_us);
  } else {
    queue::DomainQueue& q = queues_.Get(what.domain, now_us);
    t.recipients = q.HoldAll();
    queues_.Reschedule(q, now_us);
  }
  return t;
}

std::optional<Engine::Touched> Engine::Release(const Selector& what) {
  const uint64_t now_us = base::WallMicros();
  Touched t;
  if (what.id) {
    if (!queues_.IsHeldMessage(*what.id)) return std::nullopt;
    t.recipients = queues_.ReleaseMessage(*what.id, now_us);
  } else {
    queue::DomainQueue* q = queues_.Find(what.domain);
    if (q == nullptr || !q->held_all()) return std::nullopt;
    t.recipients = q->ReleaseAll();
    queues_.Reschedule(*q, now_us);
  }
  return t;
}

std::string Engine::JobsJson(size_t max, std::optional<base::QueueId> only, bool& truncated) {
  std::string out = "[";
  size_t count = 0;
  truncated = false;
  auto add = [&](const queue::Job& job, std::string_view domain, std::string_view state,
                 uint64_t due, std::string_view error) {
    if (only && job.message != *only) return;
    if (count++ >= max) {
      truncated = true;
      return;
    }
    if (out.size() > 1) out += ",";
    absl::StrAppend(&out, "{\"id\":\"", job.message.ToString(), "\",\"domain\":");
    log::AppendJsonString(out, domain);
    absl::StrAppend(&out, ",\"state\":\"", base::Av(state), "\",\"attempts\":", job.failures,
                    ",\"next_us\":", due, ",\"recipients\":[");
    for (size_t i = 0; i < job.recipients.size(); ++i) {
      absl::StrAppend(&out, i > 0 ? "," : "", job.recipients[i]);
    }
    out += "],\"error\":";
    log::AppendJsonString(out, error);
    out += "}";
  };
  queues_.ForEach([&](queue::DomainQueue& q) {
    q.ForEachJob([&](const queue::Job& job, queue::JobState state, queue::Micros due) {
      const std::string_view name = state == queue::JobState::kReady      ? "ready"
                                    : state == queue::JobState::kDeferred ? "deferred"
                                                                          : "held";
      add(job, q.domain(), name, due, q.ErrorText(job.last_error));
    });
  });
  ForEachActive([&](const Active& a) {
    const queue::DomainQueue* q = queues_.Find(a.domain);
    add(a.job, a.domain, "in-flight", 0, q != nullptr ? q->ErrorText(a.job.last_error) : "");
  });
  out += "]";
  return out;
}

std::string Engine::ShapeJson(const std::vector<uint64_t>& edges_s) {
  const uint64_t now_us = base::WallMicros();
  absl::flat_hash_map<std::string, std::vector<uint64_t>> counts;
  auto add = [&](const std::string& domain, const queue::Job& job) {
    std::vector<uint64_t>& c = counts[domain];
    c.resize(edges_s.size() + 1);
    const uint64_t age_s = now_us > job.queued_at() ? (now_us - job.queued_at()) / 1000000 : 0;
    size_t b = 0;
    while (b < edges_s.size() && age_s >= edges_s[b]) ++b;
    c[b] += job.recipients.size();
  };
  queues_.ForEach([&](queue::DomainQueue& q) {
    q.ForEachQueued([&](const queue::Job& job, queue::Micros) { add(q.domain(), job); });
  });
  ForEachActive([&](const Active& a) { add(a.domain, a.job); });
  std::string out = "[";
  for (const auto& [domain, c] : counts) {
    if (out.size() > 1) out += ",";
    out += "{\"domain\":";
    log::AppendJsonString(out, domain);
    out += ",\"counts\":[";
    for (size_t i = 0; i < c.size(); ++i) absl::StrAppend(&out, i > 0 ? "," : "", c[i]);
    out += "]}";
  }
  out += "]";
  return out;
}

}  // namespace sluice::delivery
