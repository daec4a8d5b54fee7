// The engine's destinations and their connection pool: where a domain's
// mail goes (a [[route]], an address literal or its MX hosts, never this
// relay itself), the TLS policy each new connection gets, opening
// connections, giving idle slots to domains that wait for them, and what a
// closed connection means for the jobs still waiting (OnFinished).
//
// Trusts: the resolver's answers (dns/), the configuration (Finalize()
// checked it). Limits: kMaxTargets addresses per connection.
#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "engine_parts.h"
#include "sluice/base/check.h"
#include "sluice/base/strings.h"

namespace sluice::delivery {
namespace {

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

}  // namespace

Engine::Destination& Engine::DestinationFor(queue::DomainQueue& q) {
  auto& slot = destinations_[q.domain()];
  if (!slot) {
    slot = std::make_unique<Destination>();
    slot->domain = q.domain();
    slot->q = &q;
  }
  return *slot;
}

size_t Engine::FreeSlots() const {
  return connections_.size() < config_.max_outbound_connections
             ? config_.max_outbound_connections - connections_.size()
             : 0;
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
  const uint64_t now_us = ring_.NowWallUs();
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

void Engine::OnFinished(OutboundConnection& c, const smtp::CloseInfo& info, bool ever_ready) {
  auto& d = *static_cast<Destination*>(c.owner);
  queue::DomainQueue& q = *d.q;
  const uint64_t now_us = ring_.NowWallUs();
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

}  // namespace sluice::delivery
