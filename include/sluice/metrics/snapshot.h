// What one shard knows, frozen at one moment: its counters, gauges and
// latency histograms, and its busiest destinations. A shard builds one on its
// own thread every kSnapshotIntervalMs (server/metrics_collector.h) and
// publishes it on the MetricsBoard; any thread (a /metrics request on
// another shard, the control socket's `metrics`) reads every shard's latest
// one and renders them (metrics/render.h).
//
// Publication is one std::atomic<std::shared_ptr<const ShardSnapshot>> per
// shard: the shard swaps in a new immutable snapshot, readers copy the
// pointer and keep the snapshot alive while they render. The shard's hot
// path (counters, histograms) never touches the board or any atomic; only
// the once-a-second publish and the scrape do. (libstdc++ implements the
// atomic shared_ptr with a tiny lock inside the pointer word: a publish and
// a read can wait for each other for the length of a pointer copy, never
// for rendering.)
//
// Trusts nothing outside the process; holds no pointers into a shard, so a
// snapshot may outlive the moment (and the thread) that made it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "sluice/base/histogram.h"

namespace sluice::metrics {

// How often a shard publishes (its 250 ms tick checks this): the freshness
// of sibling shards' numbers in a scrape. Once a second keeps the cost
// (about a microsecond per queued domain, measured in
// bench/metrics_bench.cc) far below the 2% a scrape may cost the relay.
inline constexpr uint64_t kSnapshotIntervalMs = 1000;
// Destinations a shard names by queue depth, and as many more by deferred
// messages; the rest are one "other" row. Bounds the label cardinality a
// scrape produces: at most 2 x kTopDestinations + 1 domain rows per shard,
// whatever the queue holds. The default of server.metrics_top_destinations.
inline constexpr size_t kTopDestinations = 20;

// One destination domain's queue on its owner shard.
struct DestinationRow {
  std::string domain;              // "other": every destination not named
  uint64_t recipients = 0;         // queued: ready, deferred and held
  uint64_t messages = 0;           // queued jobs: one per message and domain
  uint64_t deferred = 0;           // queued jobs waiting for a retry
  uint64_t oldest_us = 0;          // wall-clock µs the oldest queued job arrived; 0: none
  uint32_t connections = 0;        // outbound connections open to it
  uint32_t limit_permille = 1000;  // shaping limits in force (< 1000: backing off)
  bool suspended = false;
  bool held = false;  // `queue hold --domain`
};

// Per-shard totals that are not per destination.
struct ShardSnapshot {
  int shard = 0;
  uint64_t taken_at_us = 0;  // wall clock
  bool delivery = false;     // false: --no-delivery (no engine numbers)

  // Inbound.
  uint64_t connections_accepted = 0;
  uint64_t connections_refused = 0;
  uint64_t connections_open = 0;
  uint64_t messages_accepted = 0;  // durable and acknowledged (250), incl. pickup and DSNs
  uint64_t messages_rejected = 0;  // DATA/BDAT answered 4xx/5xx
  uint64_t messages_failed = 0;    // spool commit failed (451)
  uint64_t smtp_rejections = 0;    // every 4xx/5xx reply to a client
  uint64_t tls_in_handshakes = 0;
  uint64_t tls_in_failures = 0;

  // The HTTP listener (http.listen; all zero when it is off).
  uint64_t http_connections_accepted = 0;
  uint64_t http_connections_refused = 0;  // past http.max_clients
  uint64_t http_connections_open = 0;
  uint64_t http_responses_1xx = 0;  // 100 Continue
  uint64_t http_responses_2xx = 0;
  uint64_t http_responses_3xx = 0;
  uint64_t http_responses_4xx = 0;
  uint64_t http_responses_5xx = 0;
  uint64_t http_tls_handshakes = 0;
  uint64_t http_tls_failures = 0;
  uint64_t http_injected_messages = 0;
  uint64_t http_injected_recipients = 0;
  uint64_t http_inject_bad_request = 0;  // injections refused, by reason
  uint64_t http_inject_too_large = 0;
  uint64_t http_inject_busy = 0;
  uint64_t http_inject_unauthorized = 0;
  uint64_t http_inject_unavailable = 0;

  // Delivery (the engine).
  uint64_t jobs_received = 0;
  uint64_t delivered = 0;  // recipients
  uint64_t deferred = 0;   // recipient attempts that failed transiently
  uint64_t bounced = 0;
  uint64_t expired = 0;
  uint64_t deleted = 0;
  uint64_t dsns = 0;
  uint64_t outbound_opened = 0;
  uint64_t outbound_failed = 0;
  uint64_t outbound_open = 0;
  uint64_t tls_out_handshakes = 0;
  uint64_t tls_out_failures = 0;
  uint64_t dkim_signed = 0;
  uint64_t dkim_reused = 0;
  uint64_t dns_queries = 0;
  uint64_t dns_failures = 0;  // timeouts, SERVFAIL, refused: not NXDOMAIN or no data
  uint64_t dns_cache_hits = 0;

  // Destinations (counted over every queued domain, not only the named ones).
  uint64_t domains_queued = 0;  // with mail queued, held or in flight
  uint64_t domains_suspended = 0;
  uint64_t domains_backoff = 0;
  uint64_t domains_throttled = 0;  // ready mail, but shaping lets no connection open now
  uint64_t domains_held = 0;
  std::vector<DestinationRow> top;  // by depth, then by deferrals; no duplicates
  DestinationRow other;             // the sum of the rest (oldest: the oldest of them)

  // Spool and log.
  uint64_t spool_free_bytes = 0;  // statvfs of the shard's spool directory, from its tick
  uint64_t spool_size_bytes = 0;
  uint64_t spool_live_messages = 0;
  uint64_t spool_live_bytes = 0;  // records of unfinished messages whose length is known
  uint64_t spool_bytes_written = 0;
  uint64_t log_records_written = 0;
  uint64_t log_records_lost = 0;

  base::Histogram commit_latency{base::kCommitBoundsUs};
  base::Histogram delivery_latency{base::kDeliveryBoundsUs};
  base::Histogram dns_latency{base::kDnsBoundsUs};
};

// One publication slot per shard, owned by the server and shared by its
// shards (each writes its own slot; anyone reads any slot).
class MetricsBoard {
 public:
  explicit MetricsBoard(int shards)
      : shards_(shards),
        slots_(std::make_unique<std::atomic<std::shared_ptr<const ShardSnapshot>>[]>(
            static_cast<size_t>(shards))) {}
  MetricsBoard(const MetricsBoard&) = delete;
  MetricsBoard& operator=(const MetricsBoard&) = delete;

  int shards() const { return shards_; }
  void Publish(int shard, std::shared_ptr<const ShardSnapshot> s) {
    slots_[static_cast<size_t>(shard)].store(std::move(s), std::memory_order_release);
  }
  // Null until the shard first published.
  std::shared_ptr<const ShardSnapshot> Latest(int shard) const {
    return slots_[static_cast<size_t>(shard)].load(std::memory_order_acquire);
  }

 private:
  const int shards_;
  std::unique_ptr<std::atomic<std::shared_ptr<const ShardSnapshot>>[]> slots_;
};

}  // namespace sluice::metrics
