#include "sluice/dns/resolver.h"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <poll.h>
#include <sys/time.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "message.h"
#include "sluice/base/check.h"
#include "sluice/base/strings.h"

namespace sluice::dns {
namespace {

constexpr uint32_t kPartialTtlCapS = 60;  // an answer where some host lookups failed
constexpr int kMaxAddrTtls = 32;

const char* StatusText(int status) { return ares_strerror(status); }

}  // namespace

std::string NormalizeDomain(std::string_view domain) {
  while (!domain.empty() && domain.back() == '.') domain.remove_suffix(1);
  std::string out(domain);
  for (char& c : out) c = base::AsciiLower(c);
  return out;
}

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family, bytes, buf, sizeof(buf));
  return buf;
}

bool IpAddress::operator==(const IpAddress& o) const {
  return family == o.family && std::memcmp(bytes, o.bytes, family == AF_INET ? 4 : 16) == 0;
}

// One poll on one c-ares socket. See the header for the lifetime rules.
struct Resolver::PollWatch {
  void OnPoll(int result, uint32_t flags) {
    if (owner != nullptr) {
      owner->OnPollEvent(this, result, flags);
      return;
    }
    if (!io::HasMore(flags)) armed = false;
    if (!armed && !remove_inflight) delete this;  // orphaned by ~Resolver
  }
  void OnRemoved(int, uint32_t) {
    remove_inflight = false;
    if (owner != nullptr) {
      owner->MaybeFree(this);
    } else if (!armed) {
      delete this;
    }
  }

  Resolver* owner = nullptr;
  int fd = -1;
  unsigned events = 0;  // POLLIN / POLLOUT
  bool wanted = true;   // c-ares still wants this socket watched this way
  bool armed = false;   // a poll is in the kernel (its last CQE has not come)
  bool remove_inflight = false;
  bool busy = false;  // inside OnPollEvent: not freed until it returns
  io::MemberCompletion<PollWatch, &PollWatch::OnPoll> poll_done{this};
  io::MemberCompletion<PollWatch, &PollWatch::OnRemoved> remove_done{this};
};

// One ResolveMx in flight: the MX query, then address queries per host.
struct Resolver::Lookup {
  std::string domain;
  std::string cache_key;  // "" : domain
  std::vector<MxCallback> callbacks;
  std::vector<MxHost> hosts;
  std::vector<std::vector<IpAddress>> v4, v6;  // per host
  bool implicit = false;
  uint32_t ttl = UINT32_MAX;      // min positive TTL seen
  uint32_t neg_ttl = UINT32_MAX;  // min negative TTL seen
  int pending = 0;
  bool host_transient = false;
  std::string last_error;
};

struct Resolver::Query {
  Resolver* owner;
  Lookup* lookup;
  int type;
  int host_index;  // -1: the MX query
  std::string name;
  uint64_t sent_us = 0;  // monotonic, when ares_query took it: the query's latency
};

absl::StatusOr<std::unique_ptr<Resolver>> Resolver::Create(io::Loop& ring,
                                                           const ResolverConfig& config) {
  static std::once_flag once;
  static int init_rc = ARES_SUCCESS;
  std::call_once(once, [] { init_rc = ares_library_init(ARES_LIB_INIT_ALL); });
  if (init_rc != ARES_SUCCESS) {
    return absl::InternalError(absl::StrCat("ares_library_init: ", ares_strerror(init_rc)));
  }
  if (config.timeout_ms <= 0 || config.tries <= 0 || config.cache_entries == 0 ||
      config.max_mx_hosts == 0) {
    return absl::InvalidArgumentError(
        "dns: timeout_ms, tries, cache_entries, max_mx_hosts must be > 0");
  }
  std::unique_ptr<Resolver> r(new Resolver(ring, config));
  ares_options opts{};
  opts.flags = ARES_FLAG_NOSEARCH;
  opts.timeout = config.timeout_ms;
  opts.tries = config.tries;
  opts.sock_state_cb = &Resolver::SockStateThunk;
  opts.sock_state_cb_data = r.get();
  const int mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB;
  ares_channel channel = nullptr;
  int rc = ares_init_options(&channel, &opts, mask);
  if (rc != ARES_SUCCESS) {
    return absl::InternalError(absl::StrCat("ares_init_options: ", ares_strerror(rc)));
  }
  r->channel_ = channel;
  if (!config.servers.empty()) {
    const std::string csv = absl::StrJoin(config.servers, ",");
    rc = ares_set_servers_ports_csv(channel, csv.c_str());
    if (rc != ARES_SUCCESS) {
      return absl::InvalidArgumentError(
          absl::StrCat("dns servers \"", csv, "\": ", ares_strerror(rc)));
    }
  }
  return r;
}

Resolver::Resolver(io::Loop& ring, const ResolverConfig& config) : ring_(ring), config_(config) {
  auto gen = std::make_shared<std::mt19937_64>(std::random_device{}());
  rng_ = [gen] { return (*gen)(); };
  clock_ = [this] { return ring_.NowMonotonicMs(); };
}

Resolver::~Resolver() {
  destroying_ = true;
  // Ends every query (callbacks see ARES_EDESTRUCTION and are dropped) and
  // closes the sockets (their polls are removed through OnSockState).
  if (channel_ != nullptr) ares_destroy(channel_);
  for (Query* q : waiting_) delete q;
  waiting_.clear();
  for (auto& [key, lookup] : inflight_) delete lookup;
  inflight_.clear();
  // Records whose poll or remove is still in the kernel outlive us and free
  // themselves when their last completion arrives.
  for (PollWatch* w : all_records_) {
    if (w->armed && !w->remove_inflight) {
      ring_.PollRemove(&w->remove_done, &w->poll_done);
      w->remove_inflight = true;
    }
    w->owner = nullptr;
    if (!w->armed && !w->remove_inflight) delete w;
  }
  all_records_.clear();
}

// ---- sockets ----

void Resolver::SockStateThunk(void* data, int fd, int readable, int writable) {
  static_cast<Resolver*>(data)->OnSockState(fd, readable != 0, writable != 0);
}

void Resolver::OnSockState(int fd, bool readable, bool writable) {
  const unsigned events = (readable ? POLLIN : 0u) | (writable ? POLLOUT : 0u);
  auto it = by_fd_.find(fd);
  if (it != by_fd_.end()) {
    if (it->second->events == events) return;
    PollWatch* old = it->second;
    by_fd_.erase(it);
    Unwatch(old);
  }
  if (events == 0) return;
  auto* w = new PollWatch();
  w->owner = this;
  w->fd = fd;
  w->events = events;
  all_records_.push_back(w);
  by_fd_[fd] = w;
  Arm(w);
}

void Resolver::Arm(PollWatch* w) {
  // One-shot and re-armed after each event: a multishot poll is
  // edge-triggered, and c-ares reads a TCP answer in several calls (length,
  // then body), so bytes already waiting would never wake us again.
  ring_.PollAdd(&w->poll_done, w->fd, w->events);
  w->armed = true;
}

void Resolver::Unwatch(PollWatch* w) {
  w->wanted = false;
  if (w->armed && !w->remove_inflight) {
    ring_.PollRemove(&w->remove_done, &w->poll_done);
    w->remove_inflight = true;
  }
  MaybeFree(w);
}

void Resolver::MaybeFree(PollWatch* w) {
  if (w->wanted || w->armed || w->remove_inflight || w->busy) return;
  auto it = std::find(all_records_.begin(), all_records_.end(), w);
  SLUICE_CHECK(it != all_records_.end());
  *it = all_records_.back();
  all_records_.pop_back();
  delete w;
}

void Resolver::OnPollEvent(PollWatch* w, int result, uint32_t flags) {
  if (!io::HasMore(flags)) w->armed = false;
  if (!w->wanted) {
    // A stale completion: c-ares already dropped or changed this socket, and
    // its number may belong to another socket by now.
    MaybeFree(w);
    return;
  }
  w->busy = true;
  int rfd = ARES_SOCKET_BAD;
  int wfd = ARES_SOCKET_BAD;
  if (result < 0) {
    // The poll itself failed: let c-ares read the socket and see the error.
    if (w->events & POLLIN) rfd = w->fd;
    if (w->events & POLLOUT) wfd = w->fd;
  } else {
    const unsigned got = static_cast<unsigned>(result);
    const unsigned trouble = POLLERR | POLLHUP;
    if ((w->events & POLLIN) && (got & (POLLIN | trouble))) rfd = w->fd;
    if ((w->events & POLLOUT) && (got & (POLLOUT | trouble))) wfd = w->fd;
  }
  if (rfd != ARES_SOCKET_BAD || wfd != ARES_SOCKET_BAD) ares_process_fd(channel_, rfd, wfd);
  w->busy = false;
  if (w->wanted && !w->armed) Arm(w);
  MaybeFree(w);
}

void Resolver::Tick(uint64_t /*now_ms*/) {
  if (channel_ != nullptr) ares_process_fd(channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
}

int Resolver::AresTimeoutMs(int max_ms) const {
  timeval maxtv{max_ms / 1000, static_cast<suseconds_t>((max_ms % 1000) * 1000)};
  timeval tv{};
  timeval* t = ares_timeout(channel_, &maxtv, &tv);
  const int64_t ms = static_cast<int64_t>(t->tv_sec) * 1000 + (t->tv_usec + 999) / 1000;
  return static_cast<int>(std::clamp<int64_t>(ms, 0, max_ms));
}

// c-ares truncates the time left to whole milliseconds: it says 0 up to a
// millisecond before it will treat the query as timed out. Sleeping 0 then
// would spin the loop for that millisecond; sleep 1 instead (RunDueTimeouts
// on the next turn runs the timeout).
int Resolver::NextTickMs(int max_ms) const {
  return std::max(AresTimeoutMs(max_ms), std::min(max_ms, 1));
}

void Resolver::RunDueTimeouts(uint64_t now_ms) {
  if (AresTimeoutMs(1) == 0) Tick(now_ms);
}

// ---- lookups ----

void Resolver::ResolveMx(std::string_view domain_in, MxCallback callback) {
  std::string domain = NormalizeDomain(domain_in);
  if (domain.empty()) {
    MxResult r;
    r.kind = ResultKind::kPermanent;
    r.enhanced_code = "5.1.2";
    r.text = "empty domain";
    callback(r);
    return;
  }
  if (const MxResult* hit = CacheFind(domain, clock_())) {
    ++cache_hits_;
    MxResult copy = *hit;
    copy.from_cache = true;
    callback(copy);
    return;
  }
  if (auto it = inflight_.find(domain); it != inflight_.end()) {
    ++coalesced_;
    it->second->callbacks.push_back(std::move(callback));
    return;
  }
  auto* lookup = new Lookup();
  lookup->domain = domain;
  lookup->callbacks.push_back(std::move(callback));
  inflight_[domain] = lookup;
  lookup->pending = 1;
  SendQuery(lookup, domain, ns_t_mx, -1);
}

void Resolver::ResolveHost(std::string_view host_in, MxCallback callback) {
  const std::string host = NormalizeDomain(host_in);
  if (host.empty()) {
    MxResult r;
    r.kind = ResultKind::kPermanent;
    r.enhanced_code = "5.1.2";
    r.text = "empty host name";
    callback(r);
    return;
  }
  // Its own cache and coalescing keys: "example.com" as a host (A/AAAA
  // only) and as a mail domain (MX first) are different questions.
  const std::string key = absl::StrCat("host:", host);
  if (const MxResult* hit = CacheFind(key, clock_())) {
    ++cache_hits_;
    MxResult copy = *hit;
    copy.from_cache = true;
    callback(copy);
    return;
  }
  if (auto it = inflight_.find(key); it != inflight_.end()) {
    ++coalesced_;
    it->second->callbacks.push_back(std::move(callback));
    return;
  }
  auto* lookup = new Lookup();
  lookup->domain = host;
  lookup->cache_key = key;
  lookup->callbacks.push_back(std::move(callback));
  inflight_[key] = lookup;
  lookup->implicit = true;
  lookup->ttl = config_.positive_ttl_cap_s;
  lookup->hosts.push_back(MxHost{host, 0, {}});
  StartAddressLookups(lookup);
}

void Resolver::SendQuery(Lookup* lookup, const std::string& name, int type, int host_index) {
  waiting_.push_back(new Query{this, lookup, type, host_index, name});
  StartWaiting();
}

void Resolver::StartWaiting() {
  // ares_query may run a callback before it returns (an error, a cached
  // server failure), which comes back here: the outer loop sends the rest.
  if (starting_ || destroying_) return;
  starting_ = true;
  while (!waiting_.empty() && queries_active_ < config_.max_queries_in_flight) {
    Query* q = waiting_.front();
    waiting_.pop_front();
    ++queries_active_;
    ++queries_sent_;
    q->sent_us = ring_.NowMonotonicUs();
    ares_query(channel_, q->name.c_str(), ns_c_in, q->type, &Resolver::QueryThunk, q);
  }
  starting_ = false;
}

void Resolver::QueryThunk(void* arg, int status, int /*timeouts*/, unsigned char* abuf, int alen) {
  std::unique_ptr<Query> q(static_cast<Query*>(arg));
  Resolver* self = q->owner;
  --self->queries_active_;
  if (self->destroying_ || status == ARES_EDESTRUCTION) return;
  const uint64_t now_us = self->ring_.NowMonotonicUs();
  self->query_latency_.Record(now_us - std::min(now_us, q->sent_us));
  if (status != ARES_SUCCESS && status != ARES_ENOTFOUND && status != ARES_ENODATA) {
    ++self->query_failures_;
  }
  if (q->host_index < 0) {
    self->OnMxAnswer(q->lookup, status, abuf, alen);
  } else {
    self->OnAddressAnswer(q->lookup, q->type, q->host_index, status, abuf, alen);
  }
  self->StartWaiting();
}

void Resolver::Shuffle(std::vector<MxHost>& hosts) {
  std::stable_sort(hosts.begin(), hosts.end(),
                   [](const MxHost& a, const MxHost& b) { return a.preference < b.preference; });
  size_t start = 0;
  while (start < hosts.size()) {
    size_t end = start + 1;
    while (end < hosts.size() && hosts[end].preference == hosts[start].preference) ++end;
    for (size_t i = end - start; i > 1; --i) {
      const size_t j = static_cast<size_t>(rng_() % i);
      std::swap(hosts[start + i - 1], hosts[start + j]);
    }
    start = end;
  }
}

void Resolver::OnMxAnswer(Lookup* lookup, int status, const unsigned char* abuf, int alen) {
  lookup->pending = 0;
  MxResult r;
  auto negative_ttl = [&] {
    const auto soa = NegativeTtlFromSoa(abuf, alen);
    return std::min(soa ? *soa : config_.negative_ttl_default_s, config_.negative_ttl_cap_s);
  };
  if (status == ARES_SUCCESS) {
    MxAnswer answer = ParseMxAnswer(abuf, alen);
    const auto ttl = MinAnswerTtl(abuf, alen, ns_t_mx);
    switch (answer.kind) {
      case MxAnswerKind::kNullMx:
        r.kind = ResultKind::kPermanent;
        r.enhanced_code = "5.1.10";
        r.text = absl::StrCat("domain ", lookup->domain, " does not accept mail (null MX)");
        r.ttl_s = std::min(ttl ? *ttl : config_.negative_ttl_default_s, config_.positive_ttl_cap_s);
        Finish(lookup, std::move(r));
        return;
      case MxAnswerKind::kMalformed:
        r.kind = ResultKind::kTransient;
        r.enhanced_code = "4.4.3";
        r.text = absl::StrCat("malformed MX answer for ", lookup->domain);
        Finish(lookup, std::move(r));
        return;
      case MxAnswerKind::kNoData:
        break;  // implicit MX below
      case MxAnswerKind::kRecords:
        lookup->ttl = std::min(ttl ? *ttl : 0u, config_.positive_ttl_cap_s);
        for (MxRecord& rec : answer.records) {
          lookup->hosts.push_back(MxHost{std::move(rec.host), rec.preference, {}});
        }
        Shuffle(lookup->hosts);
        if (lookup->hosts.size() > config_.max_mx_hosts) lookup->hosts.resize(config_.max_mx_hosts);
        StartAddressLookups(lookup);
        return;
    }
  }
  if (status == ARES_SUCCESS || status == ARES_ENODATA) {
    // RFC 5321 §5.1: no MX, the domain itself is the host.
    lookup->implicit = true;
    lookup->ttl = config_.positive_ttl_cap_s;
    lookup->hosts.push_back(MxHost{lookup->domain, 0, {}});
    StartAddressLookups(lookup);
    return;
  }
  if (status == ARES_ENOTFOUND) {
    r.kind = ResultKind::kPermanent;
    r.enhanced_code = "5.1.2";
    r.text = absl::StrCat("domain ", lookup->domain, " not found (NXDOMAIN)");
    r.ttl_s = negative_ttl();
  } else if (status == ARES_EBADNAME) {
    r.kind = ResultKind::kPermanent;
    r.enhanced_code = "5.1.3";
    r.text = absl::StrCat("bad domain name ", lookup->domain);
  } else {
    r.kind = ResultKind::kTransient;
    r.enhanced_code = "4.4.3";
    r.text = absl::StrCat("MX lookup for ", lookup->domain, " failed: ", StatusText(status));
  }
  Finish(lookup, std::move(r));
}

void Resolver::StartAddressLookups(Lookup* lookup) {
  const size_t n = lookup->hosts.size();
  lookup->v4.assign(n, {});
  lookup->v6.assign(n, {});
  const bool want4 = config_.addresses != AddressPreference::kIpv6Only;
  const bool want6 = config_.addresses != AddressPreference::kIpv4Only;
  // A query may complete inside ares_query; hold one count until all are sent.
  lookup->pending = 1;
  const std::string domain = lookup->domain;
  for (size_t i = 0; i < n; ++i) {
    const std::string name = lookup->hosts[i].name;
    if (want4) {
      ++lookup->pending;
      SendQuery(lookup, name, ns_t_a, static_cast<int>(i));
    }
    if (want6) {
      ++lookup->pending;
      SendQuery(lookup, name, ns_t_aaaa, static_cast<int>(i));
    }
  }
  if (--lookup->pending == 0) FinishAddresses(lookup);
}

void Resolver::OnAddressAnswer(Lookup* lookup, int type, int host_index, int status,
                               const unsigned char* abuf, int alen) {
  const size_t i = static_cast<size_t>(host_index);
  if (status == ARES_SUCCESS) {
    int n = kMaxAddrTtls;
    if (type == ns_t_a) {
      ares_addrttl ttls[kMaxAddrTtls];
      status = ares_parse_a_reply(abuf, alen, nullptr, ttls, &n);
      if (status == ARES_SUCCESS) {
        for (int k = 0; k < n; ++k) {
          IpAddress a;
          a.family = AF_INET;
          std::memcpy(a.bytes, &ttls[k].ipaddr, 4);
          lookup->v4[i].push_back(a);
          lookup->ttl = std::min(lookup->ttl, static_cast<uint32_t>(std::max(ttls[k].ttl, 0)));
        }
      }
    } else {
      ares_addr6ttl ttls[kMaxAddrTtls];
      status = ares_parse_aaaa_reply(abuf, alen, nullptr, ttls, &n);
      if (status == ARES_SUCCESS) {
        for (int k = 0; k < n; ++k) {
          IpAddress a;
          a.family = AF_INET6;
          std::memcpy(a.bytes, &ttls[k].ip6addr, 16);
          lookup->v6[i].push_back(a);
          lookup->ttl = std::min(lookup->ttl, static_cast<uint32_t>(std::max(ttls[k].ttl, 0)));
        }
      }
    }
  }
  if (status == ARES_ENODATA || status == ARES_ENOTFOUND) {
    const auto soa = NegativeTtlFromSoa(abuf, alen);
    lookup->neg_ttl = std::min(lookup->neg_ttl, soa ? *soa : config_.negative_ttl_default_s);
  } else if (status != ARES_SUCCESS) {
    lookup->host_transient = true;
    lookup->last_error = absl::StrCat(type == ns_t_a ? "A" : "AAAA", " lookup for ",
                                      lookup->hosts[i].name, " failed: ", StatusText(status));
  }
  if (--lookup->pending == 0) FinishAddresses(lookup);
}

void Resolver::FinishAddresses(Lookup* lookup) {
  MxResult r;
  r.implicit_mx = lookup->implicit;
  const bool v6_first = config_.addresses == AddressPreference::kPreferIpv6;
  for (size_t i = 0; i < lookup->hosts.size(); ++i) {
    MxHost& h = lookup->hosts[i];
    auto& first = v6_first ? lookup->v6[i] : lookup->v4[i];
    auto& second = v6_first ? lookup->v4[i] : lookup->v6[i];
    h.addresses = std::move(first);
    h.addresses.insert(h.addresses.end(), second.begin(), second.end());
    if (!h.addresses.empty()) r.hosts.push_back(std::move(h));
  }
  if (!r.hosts.empty()) {
    r.kind = ResultKind::kOk;
    r.ttl_s = std::min(lookup->ttl, config_.positive_ttl_cap_s);
    if (lookup->host_transient) r.ttl_s = std::min(r.ttl_s, kPartialTtlCapS);
  } else if (lookup->host_transient) {
    r.kind = ResultKind::kTransient;
    r.enhanced_code = "4.4.3";
    r.text = lookup->last_error;
  } else {
    r.kind = ResultKind::kPermanent;
    r.ttl_s =
        std::min(lookup->neg_ttl == UINT32_MAX ? config_.negative_ttl_default_s : lookup->neg_ttl,
                 config_.negative_ttl_cap_s);
    if (lookup->implicit) {
      r.enhanced_code = "5.1.2";
      r.text = absl::StrCat("domain ", lookup->domain, " has no MX and no address");
    } else {
      r.enhanced_code = "5.4.4";
      r.text = absl::StrCat("no MX host of ", lookup->domain, " has an address");
    }
  }
  Finish(lookup, std::move(r));
}

void Resolver::Finish(Lookup* lookup, MxResult result) {
  const std::string& key = lookup->cache_key.empty() ? lookup->domain : lookup->cache_key;
  inflight_.erase(key);
  if (result.kind != ResultKind::kTransient) CacheStore(key, result, clock_());
  std::vector<MxCallback> callbacks = std::move(lookup->callbacks);
  delete lookup;
  // A callback may start another lookup (even of the same domain).
  for (MxCallback& cb : callbacks) cb(result);
}

// ---- cache ----

const MxResult* Resolver::CacheFind(const std::string& key, uint64_t now_ms) {
  auto it = cache_index_.find(key);
  if (it == cache_index_.end()) return nullptr;
  auto entry = it->second;
  if (entry->expires_ms <= now_ms) {
    cache_index_.erase(it);
    lru_.erase(entry);
    return nullptr;
  }
  lru_.splice(lru_.begin(), lru_, entry);
  entry->result.ttl_s = static_cast<uint32_t>((entry->expires_ms - now_ms + 999) / 1000);
  return &entry->result;
}

void Resolver::CacheStore(const std::string& key, const MxResult& result, uint64_t now_ms) {
  if (result.ttl_s == 0) return;
  if (auto it = cache_index_.find(key); it != cache_index_.end()) {
    lru_.erase(it->second);
    cache_index_.erase(it);
  }
  lru_.push_front(CacheEntry{key, result, now_ms + static_cast<uint64_t>(result.ttl_s) * 1000});
  cache_index_[key] = lru_.begin();
  while (lru_.size() > config_.cache_entries) {
    cache_index_.erase(lru_.back().key);
    lru_.pop_back();
  }
}

void Resolver::ClearCache() {
  lru_.clear();
  cache_index_.clear();
}

}  // namespace sluice::dns
