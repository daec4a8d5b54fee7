// MX resolution for delivery: one c-ares channel per shard, driven by that
// shard's io::Ring.
//
// c-ares owns its sockets; it tells us which to watch through its
// sock-state callback. Each watched socket gets an IORING_OP_POLL_ADD whose
// completion record (a PollWatch) lives here. The poll is one-shot and
// re-armed after each event, which makes it level-triggered: a multishot poll
// is edge-triggered, and c-ares reads a TCP answer in pieces, so the rest of an
// answer already waiting in the socket would never wake us. Whenever c-ares changes
// what it wants from a socket, or closes it, that poll is removed with
// IORING_OP_POLL_REMOVE and a new record is made if the socket is still
// wanted. A removed record is freed only after both its poll's last CQE and
// the remove's CQE arrived, so a stale completion can never be taken for the
// socket that later reuses the descriptor number. Completions of a record
// that is no longer wanted are ignored.
//
// Timeouts: the shard calls Tick(now_ms) from its loop; NextTickMs() says how
// soon c-ares needs one (ares_timeout).
//
// ResolveMx: MX lookup, sort by preference, shuffle within a preference,
// then A/AAAA for each host. Results (positive and negative) are kept in a
// bounded LRU cache by TTL; identical concurrent lookups share one query.
// A cache hit calls the callback before ResolveMx returns.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "sluice/base/histogram.h"
#include "sluice/io/loop.h"

struct ares_channeldata;

namespace sluice::dns {

enum class AddressPreference {
  kIpv4Only,
  kIpv6Only,
  kPreferIpv4,  // both, IPv4 addresses first
  kPreferIpv6,  // both, IPv6 addresses first
};

struct ResolverConfig {
  // "ADDR:PORT" ("[v6]:PORT" for IPv6); empty: /etc/resolv.conf.
  std::vector<std::string> servers;
  int timeout_ms = 1000;  // first try; c-ares doubles it per round
  int tries = 4;          // 1 + 2 + 4 + 8 s: a lost packet costs 1 s, not 5
  // Queries sent to the servers and not yet answered, at most. More wait
  // here, in order. A burst of thousands of new domains would otherwise
  // overflow a resolver's socket buffer (dnsmasq drops what does not fit),
  // and every dropped packet costs a retry timeout.
  size_t max_queries_in_flight = 64;
  size_t cache_entries = 10000;
  uint32_t negative_ttl_default_s = 300;  // NXDOMAIN / no data without an SOA
  uint32_t negative_ttl_cap_s = 3600;
  uint32_t positive_ttl_cap_s = 86400;
  size_t max_mx_hosts = 10;
  AddressPreference addresses = AddressPreference::kPreferIpv4;
};

struct IpAddress {
  int family = 0;  // AF_INET or AF_INET6
  unsigned char bytes[16] = {};
  std::string ToString() const;
  bool operator==(const IpAddress& o) const;
};

struct MxHost {
  std::string name;
  uint16_t preference = 0;
  std::vector<IpAddress> addresses;  // never empty in an ok result
};

enum class ResultKind { kOk, kPermanent, kTransient };

struct MxResult {
  ResultKind kind = ResultKind::kTransient;
  std::string enhanced_code;  // "5.1.10", "5.1.2", "4.4.3", ... ("" when ok)
  std::string text;
  std::vector<MxHost> hosts;  // ok: in delivery order
  bool implicit_mx = false;   // no MX: the domain itself (RFC 5321 §5.1)
  uint32_t ttl_s = 0;         // how long this answer may be cached
  bool from_cache = false;

  bool ok() const { return kind == ResultKind::kOk; }
};

using MxCallback = std::function<void(const MxResult&)>;

class Resolver {
 public:
  static absl::StatusOr<std::unique_ptr<Resolver>> Create(io::Loop& ring,
                                                          const ResolverConfig& config);
  // Pending lookups end without their callbacks. Polls still in the kernel
  // are removed; their records outlive the Resolver and free themselves when
  // the cancellations complete, so run the ring a turn or two before
  // destroying it (or those few records leak at exit).
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // `domain` is matched case-insensitively; a trailing dot is ignored.
  void ResolveMx(std::string_view domain, MxCallback callback);
  // A host's own addresses (A/AAAA), no MX lookup: a route's next hop
  // ("[host]" in Postfix terms). The result has one MxHost, the host.
  void ResolveHost(std::string_view host, MxCallback callback);

  // Runs c-ares timeouts and retries. Call from the loop at least when
  // NextTickMs() says.
  void Tick(uint64_t now_ms);
  // Milliseconds until c-ares needs a Tick (capped at `max_ms`, at least 1
  // unless max_ms is 0); max_ms when nothing is pending.
  int NextTickMs(int max_ms) const;
  // Runs Tick when a c-ares timeout is due. Call every loop turn: a loop
  // that sleeps NextTickMs() and ticks only on its own timer would wake
  // every millisecond until that timer.
  void RunDueTimeouts(uint64_t now_ms);

  // Replaces the random source used to shuffle MX hosts of equal preference
  // (tests seed it). Returns values uniformly over uint64_t.
  void SetRandomForTest(std::function<uint64_t()> rng) { rng_ = std::move(rng); }
  // Replaces the monotonic millisecond clock the cache uses (tests).
  void SetClockForTest(std::function<uint64_t()> clock) { clock_ = std::move(clock); }

  // Counters.
  uint64_t queries_sent() const { return queries_sent_; }  // ares_query calls
  size_t queries_in_flight() const { return queries_active_; }
  size_t queries_waiting() const { return waiting_.size(); }
  uint64_t cache_hits() const { return cache_hits_; }
  uint64_t coalesced() const { return coalesced_; }
  // Queries that got no usable answer: timeout, SERVFAIL, refused, a
  // connection error (NXDOMAIN and "no data" are answers).
  uint64_t query_failures() const { return query_failures_; }
  // Every query's time from ares_query to its answer or failure.
  const base::Histogram& query_latency() const { return query_latency_; }
  size_t cache_size() const { return lru_.size(); }
  size_t lookups_in_flight() const { return inflight_.size(); }
  size_t watched_sockets() const { return by_fd_.size(); }
  size_t poll_records() const { return all_records_.size(); }  // incl. being removed

  // Drops every cached answer.
  void ClearCache();

 private:
  struct PollWatch;
  struct Lookup;
  struct Query;
  struct CacheEntry {
    std::string key;
    MxResult result;
    uint64_t expires_ms;
  };

  Resolver(io::Loop& ring, const ResolverConfig& config);
  // c-ares' own answer: milliseconds until its next timeout, 0 when due or
  // under a millisecond away, capped at max_ms.
  int AresTimeoutMs(int max_ms) const;

  static void SockStateThunk(void* data, int fd, int readable, int writable);
  void OnSockState(int fd, bool readable, bool writable);
  void Arm(PollWatch* w);
  void Unwatch(PollWatch* w);
  void MaybeFree(PollWatch* w);
  void OnPollEvent(PollWatch* w, int result, uint32_t flags);

  // Queues a query; StartWaiting sends queued ones while fewer than
  // max_queries_in_flight are out.
  void SendQuery(Lookup* lookup, const std::string& name, int type, int host_index);
  void StartWaiting();
  static void QueryThunk(void* arg, int status, int timeouts, unsigned char* abuf, int alen);
  void OnMxAnswer(Lookup* lookup, int status, const unsigned char* abuf, int alen);
  void OnAddressAnswer(Lookup* lookup, int type, int host_index, int status,
                       const unsigned char* abuf, int alen);
  void StartAddressLookups(Lookup* lookup);
  void FinishAddresses(Lookup* lookup);
  void Finish(Lookup* lookup, MxResult result);
  void Shuffle(std::vector<MxHost>& hosts);

  const MxResult* CacheFind(const std::string& key, uint64_t now_ms);
  void CacheStore(const std::string& key, const MxResult& result, uint64_t now_ms);

  io::Loop& ring_;
  ResolverConfig config_;
  ares_channeldata* channel_ = nullptr;
  bool destroying_ = false;
  std::function<uint64_t()> rng_;
  std::function<uint64_t()> clock_;

  absl::flat_hash_map<int, PollWatch*> by_fd_;  // the current record per socket
  std::vector<PollWatch*> all_records_;         // including those being removed

  absl::flat_hash_map<std::string, Lookup*> inflight_;
  std::deque<Query*> waiting_;  // not yet given to c-ares
  size_t queries_active_ = 0;   // given to c-ares, callback not yet run
  bool starting_ = false;       // inside StartWaiting (ares_query may call back)

  std::list<CacheEntry> lru_;  // front: most recently used
  absl::flat_hash_map<std::string, std::list<CacheEntry>::iterator> cache_index_;

  uint64_t queries_sent_ = 0;
  uint64_t cache_hits_ = 0;
  uint64_t coalesced_ = 0;
  uint64_t query_failures_ = 0;
  base::Histogram query_latency_{base::kDnsBoundsUs};
};

// Canonical cache key: lower case, no trailing dot.
std::string NormalizeDomain(std::string_view domain);

}  // namespace sluice::dns
