// See metrics_collector.h.
#include "sluice/server/metrics_collector.h"

#include "absl/functional/function_ref.h"
#include "shard.h"
#include "sluice/delivery/engine.h"
#include "sluice/metrics/top_destinations.h"
#include "sluice/queue/domain_queue.h"
#include "sluice/server/http_listener.h"

namespace sluice::server {
namespace {

void CopyHttp(const HttpListener& http, metrics::ShardSnapshot& s) {
  const HttpStats& h = http.stats();
  s.http_connections_accepted = h.accepted;
  s.http_connections_refused = h.refused;
  s.http_connections_open = http.connections_open();
  s.http_responses_1xx = h.responses[0];
  s.http_responses_2xx = h.responses[1];
  s.http_responses_3xx = h.responses[2];
  s.http_responses_4xx = h.responses[3];
  s.http_responses_5xx = h.responses[4];
  s.http_tls_handshakes = h.tls_handshakes;
  s.http_tls_failures = h.tls_failures;
  s.http_injected_messages = h.injected;
  s.http_injected_recipients = h.injected_recipients;
  s.http_inject_bad_request = h.inject_bad_request;
  s.http_inject_too_large = h.inject_too_large;
  s.http_inject_busy = h.inject_busy;
  s.http_inject_unauthorized = h.inject_unauthorized;
  s.http_inject_unavailable = h.inject_unavailable;
}

void CopyEngine(const delivery::Engine& engine, metrics::ShardSnapshot& s) {
  const delivery::EngineStats& e = engine.stats();
  s.jobs_received = e.jobs_received;
  s.delivered = e.delivered;
  s.deferred = e.deferred;
  s.bounced = e.bounced;
  s.expired = e.expired;
  s.deleted = e.deleted;
  s.dsns = e.dsns;
  s.outbound_opened = e.connections_opened;
  s.outbound_failed = e.connection_failures;
  s.outbound_open = engine.outbound_open();
  s.tls_out_handshakes = e.tls_handshakes;
  s.tls_out_failures = e.tls_handshake_failures;
  s.dkim_signed = e.dkim_signed;
  s.dkim_reused = e.dkim_reused;
  s.delivery_latency = e.delivery_latency;
  if (const dns::Resolver* r = engine.resolver()) {
    s.dns_queries = r->queries_sent();
    s.dns_failures = r->query_failures();
    s.dns_cache_hits = r->cache_hits();
    s.dns_latency = r->query_latency();
  }
}

}  // namespace

std::shared_ptr<const metrics::ShardSnapshot> CollectSnapshot(
    Shard& shard, uint64_t now_us, std::vector<metrics::DestinationSample>& scratch) {
  auto s = std::make_shared<metrics::ShardSnapshot>();
  s->shard = shard.index();
  s->taken_at_us = now_us;
  const ShardStats& st = shard.stats();
  s->connections_accepted = st.connections_accepted;
  s->connections_refused = st.connections_refused;
  s->connections_open = shard.inbound_open();
  s->messages_accepted = st.messages_queued;
  s->messages_rejected = st.messages_rejected;
  s->messages_failed = st.messages_failed;
  s->smtp_rejections = st.replies_refused;
  s->tls_in_handshakes = st.tls_handshakes;
  s->tls_in_failures = st.tls_handshake_failures;
  if (const HttpListener* http = shard.http()) CopyHttp(*http, *s);
  if (delivery::Engine* engine = shard.engine()) {
    s->delivery = true;
    CopyEngine(*engine, *s);
    metrics::CollectDestinations(
        [engine](absl::FunctionRef<void(queue::DomainQueue&)> f) { engine->ForEachQueue(f); },
        now_us, shard.config().metrics_top_destinations, scratch, *s);
  }
  s->spool_free_bytes = shard.spool_free_bytes();
  s->spool_size_bytes = shard.spool_size_bytes();
  s->spool_live_messages = shard.ledger().live_messages();
  s->spool_live_bytes = shard.ledger().live_bytes();
  s->spool_bytes_written = shard.spool().bytes_committed();
  s->commit_latency = shard.spool().commit_latency();
  const log::AccountingLogStats& l = shard.accounting().stats();
  s->log_records_written = l.records_written;
  s->log_records_lost = l.records_lost;
  return s;
}

}  // namespace sluice::server
