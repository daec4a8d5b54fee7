// See render.h. One function per kind of family; each writes its # HELP and
// # TYPE once and then every shard's samples, so a family's samples stay
// together as the format requires.
#include "sluice/metrics/render.h"

#include <initializer_list>
#include <vector>

#include "absl/strings/str_cat.h"
#include "sluice/base/strings.h"

namespace sluice::metrics {
namespace {

using Shards = std::span<const ShardSnapshot* const>;

// Up to two labels besides `shard` (k2 empty: one).
struct Series {
  std::string_view k1, v1, k2, v2;
  uint64_t ShardSnapshot::*field;
};

// `value` / 10^digits, exactly, without trailing zeros.
void AppendFixed(std::string& out, uint64_t value, int digits) {
  uint64_t scale = 1;
  for (int i = 0; i < digits; ++i) scale *= 10;
  absl::StrAppend(&out, value / scale);
  uint64_t frac = value % scale;
  if (frac == 0) return;
  int width = digits;
  while (frac % 10 == 0) {
    frac /= 10;
    --width;
  }
  const std::string f = absl::StrCat(frac);
  out += '.';
  out.append(static_cast<size_t>(width) - f.size(), '0');
  out += f;
}

void Family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  absl::StrAppend(&out, "# HELP ", base::Av(name), " ", base::Av(help), "\n# TYPE ", base::Av(name),
                  " ", base::Av(type), "\n");
}

// Writes `name{shard="N"` and the further labels; the caller closes it.
void Open(std::string& out, std::string_view name, int shard) {
  absl::StrAppend(&out, base::Av(name), "{shard=\"", shard, "\"");
}

void Label(std::string& out, std::string_view key, std::string_view value) {
  absl::StrAppend(&out, ",", base::Av(key), "=\"");
  AppendLabelValue(out, value);
  out += '"';
}

void Close(std::string& out, uint64_t value) { absl::StrAppend(&out, "} ", value, "\n"); }

// Families of per-shard numbers; `delivery_only`: not for shards without a
// delivery engine (--no-delivery), whose engine numbers do not exist.
void Counters(std::string& out, Shards shards, bool delivery_only, std::string_view name,
              std::string_view type, std::string_view help, std::initializer_list<Series> series) {
  Family(out, name, type, help);
  for (const ShardSnapshot* s : shards) {
    if (delivery_only && !s->delivery) continue;
    for (const Series& x : series) {
      Open(out, name, s->shard);
      if (!x.k1.empty()) Label(out, x.k1, x.v1);
      if (!x.k2.empty()) Label(out, x.k2, x.v2);
      Close(out, s->*x.field);
    }
  }
}

void Simple(std::string& out, Shards shards, std::string_view name, std::string_view type,
            std::string_view help, std::initializer_list<Series> series) {
  Counters(out, shards, false, name, type, help, series);
}

void Delivery(std::string& out, Shards shards, std::string_view name, std::string_view type,
              std::string_view help, std::initializer_list<Series> series) {
  Counters(out, shards, true, name, type, help, series);
}

void Histogram(std::string& out, Shards shards, std::string_view name, std::string_view help,
               base::Histogram ShardSnapshot::*field, bool delivery_only) {
  Family(out, name, "histogram", help);
  const std::string bucket = absl::StrCat(base::Av(name), "_bucket");
  for (const ShardSnapshot* s : shards) {
    if (delivery_only && !s->delivery) continue;
    const base::Histogram& h = s->*field;
    uint64_t cumulative = 0;
    const size_t n = h.bounds_us().size();
    for (size_t i = 0; i <= n; ++i) {
      cumulative += h.bucket(i);
      Open(out, bucket, s->shard);
      out += ",le=\"";
      if (i < n) {
        AppendMicrosAsSeconds(out, h.bounds_us()[i]);
      } else {
        out += "+Inf";
      }
      out += '"';
      Close(out, cumulative);
    }
    absl::StrAppend(&out, base::Av(name), "_sum{shard=\"", s->shard, "\"} ");
    AppendMicrosAsSeconds(out, h.sum_us());
    absl::StrAppend(&out, "\n", base::Av(name), "_count{shard=\"", s->shard, "\"} ", cumulative,
                    "\n");
  }
}

// A per-destination gauge: every named row and, when `with_other`, the
// "other" row, of every shard with delivery.
template <typename Value>
void Destinations(std::string& out, Shards shards, std::string_view name, std::string_view help,
                  bool with_other, Value value) {
  Family(out, name, "gauge", help);
  for (const ShardSnapshot* s : shards) {
    if (!s->delivery) continue;
    auto row = [&](const DestinationRow& r) {
      Open(out, name, s->shard);
      Label(out, "domain", r.domain);
      out += "} ";
      value(out, *s, r);
      out += '\n';
    };
    for (const DestinationRow& r : s->top) row(r);
    if (with_other) row(s->other);
  }
}

void Inbound(std::string& out, Shards shards) {
  Simple(out, shards, "sluice_inbound_connections_total", "counter",
         "SMTP connections accepted, or refused at a connection limit (421).",
         {{"outcome", "accepted", "", "", &ShardSnapshot::connections_accepted},
          {"outcome", "refused", "", "", &ShardSnapshot::connections_refused}});
  Simple(out, shards, "sluice_inbound_connections_open", "gauge",
         "SMTP client connections open now.", {{"", "", "", "", &ShardSnapshot::connections_open}});
  Simple(out, shards, "sluice_messages_received_total", "counter",
         "Messages received, by outcome: accepted (durable, 250; pickup files and DSNs too), "
         "rejected (DATA or BDAT answered 4xx/5xx), failed (the spool commit failed, 451).",
         {{"outcome", "accepted", "", "", &ShardSnapshot::messages_accepted},
          {"outcome", "rejected", "", "", &ShardSnapshot::messages_rejected},
          {"outcome", "failed", "", "", &ShardSnapshot::messages_failed}});
  Simple(out, shards, "sluice_smtp_rejections_total", "counter",
         "SMTP replies 4xx/5xx to clients (each is a Rejection record).",
         {{"", "", "", "", &ShardSnapshot::smtp_rejections}});
  Simple(out, shards, "sluice_tls_handshakes_total", "counter",
         "TLS handshakes finished, by direction and outcome.",
         {{"direction", "inbound", "outcome", "ok", &ShardSnapshot::tls_in_handshakes},
          {"direction", "inbound", "outcome", "failed", &ShardSnapshot::tls_in_failures},
          {"direction", "outbound", "outcome", "ok", &ShardSnapshot::tls_out_handshakes},
          {"direction", "outbound", "outcome", "failed", &ShardSnapshot::tls_out_failures}});
}

void Http(std::string& out, Shards shards) {
  Simple(out, shards, "sluice_http_connections_total", "counter",
         "HTTP listener connections accepted, or refused at http.max_clients.",
         {{"outcome", "accepted", "", "", &ShardSnapshot::http_connections_accepted},
          {"outcome", "refused", "", "", &ShardSnapshot::http_connections_refused}});
  Simple(out, shards, "sluice_http_connections_open", "gauge",
         "HTTP listener connections open now.",
         {{"", "", "", "", &ShardSnapshot::http_connections_open}});
  Simple(out, shards, "sluice_http_responses_total", "counter",
         "HTTP responses sent, by status class (1xx: 100 Continue).",
         {{"class", "1xx", "", "", &ShardSnapshot::http_responses_1xx},
          {"class", "2xx", "", "", &ShardSnapshot::http_responses_2xx},
          {"class", "3xx", "", "", &ShardSnapshot::http_responses_3xx},
          {"class", "4xx", "", "", &ShardSnapshot::http_responses_4xx},
          {"class", "5xx", "", "", &ShardSnapshot::http_responses_5xx}});
  Simple(out, shards, "sluice_http_tls_handshakes_total", "counter",
         "HTTPS handshakes on the HTTP listener (http.tls), by outcome.",
         {{"outcome", "ok", "", "", &ShardSnapshot::http_tls_handshakes},
          {"outcome", "failed", "", "", &ShardSnapshot::http_tls_failures}});
  Simple(out, shards, "sluice_http_injected_messages_total", "counter",
         "Messages injected with POST /api/inject/v1 (durable, 200).",
         {{"", "", "", "", &ShardSnapshot::http_injected_messages}});
  Simple(out, shards, "sluice_http_injected_recipients_total", "counter",
         "Recipients of the messages injected with POST /api/inject/v1.",
         {{"", "", "", "", &ShardSnapshot::http_injected_recipients}});
  Simple(out, shards, "sluice_http_injections_refused_total", "counter",
         "Injection requests refused, by reason: bad_request (400/405/417), too_large (413), "
         "busy (503, http.max_inject_in_flight), unauthorized (401/403), unavailable (503, "
         "the spool refused or failed).",
         {{"reason", "bad_request", "", "", &ShardSnapshot::http_inject_bad_request},
          {"reason", "too_large", "", "", &ShardSnapshot::http_inject_too_large},
          {"reason", "busy", "", "", &ShardSnapshot::http_inject_busy},
          {"reason", "unauthorized", "", "", &ShardSnapshot::http_inject_unauthorized},
          {"reason", "unavailable", "", "", &ShardSnapshot::http_inject_unavailable}});
}

void Outcomes(std::string& out, Shards shards) {
  Delivery(out, shards, "sluice_delivery_jobs_received_total", "counter",
           "Delivery jobs (a message's recipients for one domain) this shard took on.",
           {{"", "", "", "", &ShardSnapshot::jobs_received}});
  Delivery(out, shards, "sluice_recipients_total", "counter",
           "Recipient outcomes, by class: delivered, bounced, expired and deleted are final; "
           "deferred counts every transient failure of an attempt.",
           {{"outcome", "delivered", "", "", &ShardSnapshot::delivered},
            {"outcome", "deferred", "", "", &ShardSnapshot::deferred},
            {"outcome", "bounced", "", "", &ShardSnapshot::bounced},
            {"outcome", "expired", "", "", &ShardSnapshot::expired},
            {"outcome", "deleted", "", "", &ShardSnapshot::deleted}});
  Delivery(out, shards, "sluice_dsns_sent_total", "counter",
           "Delivery status notifications queued to senders (bounces and expiries).",
           {{"", "", "", "", &ShardSnapshot::dsns}});
  Delivery(out, shards, "sluice_outbound_connections_opened_total", "counter",
           "Outbound SMTP connections started.",
           {{"", "", "", "", &ShardSnapshot::outbound_opened}});
  Delivery(out, shards, "sluice_outbound_connection_failures_total", "counter",
           "Outbound connections that failed before a usable session (refused, timed out, "
           "421 greeting, TLS required and broken).",
           {{"", "", "", "", &ShardSnapshot::outbound_failed}});
  Delivery(out, shards, "sluice_outbound_connections_open", "gauge",
           "Outbound SMTP connections open now.",
           {{"", "", "", "", &ShardSnapshot::outbound_open}});
  Delivery(out, shards, "sluice_dkim_signed_messages_total", "counter",
           "Outbound messages given DKIM signatures made for them.",
           {{"", "", "", "", &ShardSnapshot::dkim_signed}});
  Delivery(out, shards, "sluice_dkim_reused_signatures_total", "counter",
           "Delivery jobs that sent signatures made for an earlier job of the same message.",
           {{"", "", "", "", &ShardSnapshot::dkim_reused}});
  Delivery(out, shards, "sluice_dns_queries_total", "counter", "DNS queries sent (MX, A, AAAA).",
           {{"", "", "", "", &ShardSnapshot::dns_queries}});
  Delivery(out, shards, "sluice_dns_query_failures_total", "counter",
           "DNS queries that got no usable answer: timeout, SERVFAIL, refused, connection "
           "errors (NXDOMAIN and no-data are answers, not failures).",
           {{"", "", "", "", &ShardSnapshot::dns_failures}});
  Delivery(out, shards, "sluice_dns_cache_hits_total", "counter",
           "MX and host lookups answered from the resolver's cache.",
           {{"", "", "", "", &ShardSnapshot::dns_cache_hits}});
}

void Shaping(std::string& out, Shards shards) {
  Delivery(out, shards, "sluice_queue_domains", "gauge",
           "Destination domains with mail queued or being attempted on this shard.",
           {{"", "", "", "", &ShardSnapshot::domains_queued}});
  Delivery(out, shards, "sluice_shaping_domains", "gauge",
           "Destination domains by shaping state (a domain can be in several): suspended by "
           "an administrator, in adaptive backoff, throttled (ready mail that shaping lets no "
           "connection carry now), held.",
           {{"state", "suspended", "", "", &ShardSnapshot::domains_suspended},
            {"state", "backoff", "", "", &ShardSnapshot::domains_backoff},
            {"state", "throttled", "", "", &ShardSnapshot::domains_throttled},
            {"state", "held", "", "", &ShardSnapshot::domains_held}});
}

void Queues(std::string& out, Shards shards, uint64_t now_us) {
  Destinations(out, shards, "sluice_queue_recipients",
               "Queued recipients (ready, deferred, held) of the busiest destinations; "
               "domain=\"other\" sums the rest.",
               true, [](std::string& o, const ShardSnapshot&, const DestinationRow& r) {
                 absl::StrAppend(&o, r.recipients);
               });
  Destinations(out, shards, "sluice_queue_messages",
               "Queued messages of the busiest destinations; domain=\"other\" sums the rest.", true,
               [](std::string& o, const ShardSnapshot&, const DestinationRow& r) {
                 absl::StrAppend(&o, r.messages);
               });
  Destinations(out, shards, "sluice_queue_deferred_messages",
               "Queued messages waiting for a retry; domain=\"other\" sums the rest.", true,
               [](std::string& o, const ShardSnapshot&, const DestinationRow& r) {
                 absl::StrAppend(&o, r.deferred);
               });
  Destinations(out, shards, "sluice_queue_oldest_age_seconds",
               "Age of the oldest queued message (0: none); domain=\"other\": the oldest of "
               "the rest.",
               true, [now_us](std::string& o, const ShardSnapshot&, const DestinationRow& r) {
                 AppendMicrosAsSeconds(
                     o, r.oldest_us != 0 && now_us > r.oldest_us ? now_us - r.oldest_us : 0);
               });
  Destinations(out, shards, "sluice_destination_connections",
               "Outbound connections open to the destination; domain=\"other\" sums the rest.",
               true, [](std::string& o, const ShardSnapshot&, const DestinationRow& r) {
                 absl::StrAppend(&o, r.connections);
               });
  Destinations(out, shards, "sluice_destination_limit_ratio",
               "Share of the destination's shaping limits in force (below 1: adaptive backoff).",
               false, [](std::string& o, const ShardSnapshot&, const DestinationRow& r) {
                 AppendFixed(o, r.limit_permille, 3);
               });
  Destinations(out, shards, "sluice_destination_suspended",
               "1 while an administrator has the destination suspended.", false,
               [](std::string& o, const ShardSnapshot&, const DestinationRow& r) {
                 o += r.suspended ? '1' : '0';
               });
  Destinations(out, shards, "sluice_destination_held",
               "1 while the destination is held as a whole.", false,
               [](std::string& o, const ShardSnapshot&, const DestinationRow& r) {
                 o += r.held ? '1' : '0';
               });
}

void Spool(std::string& out, Shards shards) {
  Simple(out, shards, "sluice_spool_free_bytes", "gauge",
         "Free space for the shard's spool directory (statvfs, refreshed every 250 ms; "
         "shards on one filesystem report the same number: do not sum).",
         {{"", "", "", "", &ShardSnapshot::spool_free_bytes}});
  Simple(out, shards, "sluice_spool_size_bytes", "gauge",
         "Size of the filesystem holding the shard's spool directory (do not sum).",
         {{"", "", "", "", &ShardSnapshot::spool_size_bytes}});
  Simple(out, shards, "sluice_spool_messages", "gauge",
         "Messages in this shard's spool directory not yet finished.",
         {{"", "", "", "", &ShardSnapshot::spool_live_messages}});
  Simple(out, shards, "sluice_spool_used_bytes", "gauge",
         "Bytes of the spool records of unfinished messages (records kept in segments; "
         "a message large enough for its own file counts from its next start).",
         {{"", "", "", "", &ShardSnapshot::spool_live_bytes}});
  Simple(out, shards, "sluice_spool_written_bytes_total", "counter",
         "Bytes the spool writer committed to segments.",
         {{"", "", "", "", &ShardSnapshot::spool_bytes_written}});
  Simple(out, shards, "sluice_log_records_total", "counter",
         "Accounting log lines written whole, or lost (buffer full while the disk failed).",
         {{"outcome", "written", "", "", &ShardSnapshot::log_records_written},
          {"outcome", "lost", "", "", &ShardSnapshot::log_records_lost}});
}

}  // namespace

void AppendLabelValue(std::string& out, std::string_view value) {
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

void AppendMicrosAsSeconds(std::string& out, uint64_t us) { AppendFixed(out, us, 6); }

std::string RenderMetrics(Shards all, uint64_t now_us) {
  std::vector<const ShardSnapshot*> present;
  for (const ShardSnapshot* s : all) {
    if (s != nullptr) present.push_back(s);
  }
  const Shards shards(present);
  std::string out;
  out.reserve(16384 + shards.size() * 24576);
  Inbound(out, shards);
  Http(out, shards);
  Outcomes(out, shards);
  Shaping(out, shards);
  Queues(out, shards, now_us);
  Spool(out, shards);
  Histogram(out, shards, "sluice_spool_commit_duration_seconds",
            "Spool group commits: the writes, fdatasync and directory fsync of one batch.",
            &ShardSnapshot::commit_latency, false);
  Histogram(out, shards, "sluice_delivery_duration_seconds",
            "Time from a message's acceptance to a recipient's final outcome (delivered, "
            "bounced or expired).",
            &ShardSnapshot::delivery_latency, true);
  Histogram(out, shards, "sluice_dns_query_duration_seconds",
            "DNS queries, sent to answered (or failed).", &ShardSnapshot::dns_latency, true);
  Family(out, "sluice_metrics_snapshot_age_seconds", "gauge",
         "How old the shard's numbers in this scrape are (shards publish every second).");
  for (const ShardSnapshot* s : shards) {
    absl::StrAppend(&out, "sluice_metrics_snapshot_age_seconds{shard=\"", s->shard, "\"} ");
    AppendMicrosAsSeconds(out, now_us > s->taken_at_us ? now_us - s->taken_at_us : 0);
    out += '\n';
  }
  return out;
}

}  // namespace sluice::metrics
