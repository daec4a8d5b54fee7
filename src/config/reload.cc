// The reload diff: see sluice/config/reload.h. One table names every key
// with how it is shown and whether it reloads; the list-valued tables
// ([[shaping]], [[route]], [delivery.tls_policy]) are compared entry by
// entry, by pattern, so a change names the rule it touches.
#include "sluice/config/reload.h"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sluice::config {
namespace {

std::string Show(bool b) { return b ? "true" : "false"; }
std::string Show(uint64_t n) { return absl::StrCat(n); }
std::string Show(const std::string& s) { return absl::StrCat("\"", s, "\""); }
std::string Show(const std::vector<std::string>& v) {
  return absl::StrCat("[", absl::StrJoin(v, ", "), "]");
}
std::string Millis(uint64_t ms) { return FormatDuration(ms * 1000); }
std::string Micros(uint64_t us) { return FormatDuration(us); }
std::string Durations(const std::vector<uint64_t>& v) {
  std::vector<std::string> out;
  for (uint64_t us : v) out.push_back(FormatDuration(us));
  return Show(out);
}

enum class When : uint8_t { kReload, kRestart };

struct Key {
  const char* name;
  When when;
  std::string (*show)(const Config&);
};

#define SHOW(expr) [](const Config& c) { return Show(c.expr); }
#define SHOWN(expr) [](const Config& c) { return Show(uint64_t{c.expr}); }
#define SHOWF(fn, expr) [](const Config& c) { return fn(c.expr); }
constexpr When R = When::kReload;
constexpr When X = When::kRestart;

// Every scalar and plain-list key. Restart-only: what is bound, opened,
// sized or built once at start-up (listeners, spool, shards, directories,
// the resolver, the client-address limiter, the TLS/AUTH and DKIM settings
// whose files SIGHUP re-reads but whose names and policies are fixed).
// log.file is special (ReloadableLog): a new path reloads, on/off restarts.
const Key kKeys[] = {
    {"server.listen", X, SHOW(listen)},
    {"server.hostname", X, SHOW(hostname)},
    {"server.shards", X, [](const Config& c) { return absl::StrCat(c.shards); }},
    {"server.relay_from", R, SHOW(relay_from)},
    {"server.max_message_size", R, SHOWN(max_message_size)},
    {"server.max_recipients", R, SHOWN(max_recipients)},
    {"server.max_line_length", R, SHOWN(max_line_length)},
    {"server.max_data_line_length", R, SHOWN(max_data_line_length)},
    {"server.max_connections", R, SHOWN(max_connections)},
    {"server.max_errors", R, SHOWN(max_errors)},
    {"server.idle_timeout_s", R, SHOWN(idle_timeout_s)},
    {"server.data_timeout_s", R, SHOWN(data_timeout_s)},
    {"server.transaction_timeout_s", R, SHOWN(transaction_timeout_s)},
    {"server.session_timeout_s", R, SHOWN(session_timeout_s)},
    {"server.max_connections_per_ip", X, SHOWN(max_connections_per_ip)},
    {"server.max_connection_rate_per_ip", X, SHOWN(max_connection_rate_per_ip)},
    {"server.receive_memory_per_shard", X, SHOWN(receive_memory_per_shard)},
    {"server.shutdown_grace_s", R, SHOWN(shutdown_grace_s)},
    {"server.memory_trim_interval_s", X, SHOWN(memory_trim_interval_s)},
    {"server.bare_linefeed", X,
     [](const Config& c) { return absl::StrCat(static_cast<int>(c.bare_linefeed)); }},
    {"server.max_hops", R, SHOWN(max_hops)},
    {"server.metrics_top_destinations", R, SHOWN(metrics_top_destinations)},
    {"server.postmaster_address", R, SHOW(postmaster_address)},
    {"server.require_from", R, SHOW(require_from)},
    {"spool.dir", X, SHOW(spool_dir)},
    {"spool.min_free_bytes", R, SHOWN(spool_min_free_bytes)},
    {"pickup.dir", X, SHOW(pickup_dir)},
    {"pickup.group", X, SHOW(pickup_group)},
    {"pickup.scan_interval_s", R, SHOWN(pickup_scan_interval_s)},
    {"pickup.max_batch_recipients", R, SHOWN(pickup_max_batch_recipients)},
    {"pickup.max_recipients_file_size", R, SHOWN(pickup_max_recipients_file_size)},
    {"pickup.feedback_id_sender", R, SHOW(pickup_feedback_id_sender)},
    {"tls.cert_file", X, SHOW(tls_cert_file)},
    {"tls.key_file", X, SHOW(tls_key_file)},
    {"tls.min_version", X, SHOW(tls_min_version)},
    {"tls.listen", X, SHOW(listen_tls)},
    {"tls.require_tls_on", X, SHOW(require_tls_on)},
    {"auth.password_file", X, SHOW(auth_password_file)},
    {"auth.allow_plaintext", X, SHOW(auth_allow_plaintext)},
    {"auth.require_auth_on", X, SHOW(require_auth_on)},
    {"auth.max_failures", X, SHOWN(auth_max_failures)},
    {"auth.lock_s", X, SHOWN(auth_lock_s)},
    {"delivery.enabled", X, SHOW(delivery_enabled)},
    {"delivery.dns", X, SHOW(dns_servers)},
    {"delivery.dns_timeout", X, SHOWF(Millis, dns_timeout_ms)},
    {"delivery.dns_tries", X, SHOWN(dns_tries)},
    {"delivery.dns_max_in_flight", X, SHOWN(dns_max_in_flight)},
    {"delivery.mx_port", R, SHOWN(mx_port)},
    {"delivery.source_address", R, SHOW(source_address)},
    {"delivery.helo_name", R, SHOW(helo_name)},
    {"delivery.max_recipients_per_transaction", R, SHOWN(max_recipients_per_transaction)},
    {"delivery.pipelining", R, SHOW(outbound_pipelining)},
    {"delivery.chunking", R, SHOW(outbound_chunking)},
    {"delivery.idle_connection", R, SHOWF(Millis, idle_connection_ms)},
    {"delivery.max_outbound_connections", R, SHOWN(max_outbound_connections)},
    {"delivery.tls", R,
     [](const Config& c) { return std::string(OutboundTlsName(c.outbound_tls)); }},
    {"delivery.tls_ca_file", X, SHOW(outbound_tls_ca_file)},
    {"delivery.timeouts.connect", R, SHOWF(Millis, timeouts.connect_ms)},
    {"delivery.timeouts.greeting", R, SHOWF(Millis, timeouts.greeting_ms)},
    {"delivery.timeouts.ehlo", R, SHOWF(Millis, timeouts.ehlo_ms)},
    {"delivery.timeouts.starttls", R, SHOWF(Millis, timeouts.starttls_ms)},
    {"delivery.timeouts.mail", R, SHOWF(Millis, timeouts.mail_ms)},
    {"delivery.timeouts.rcpt", R, SHOWF(Millis, timeouts.rcpt_ms)},
    {"delivery.timeouts.data_init", R, SHOWF(Millis, timeouts.data_init_ms)},
    {"delivery.timeouts.data_block", R, SHOWF(Millis, timeouts.data_block_ms)},
    {"delivery.timeouts.final_dot", R, SHOWF(Millis, timeouts.final_dot_ms)},
    {"delivery.timeouts.rset", R, SHOWF(Millis, timeouts.rset_ms)},
    {"delivery.timeouts.quit", R, SHOWF(Millis, timeouts.quit_ms)},
    {"retry.initial", R, SHOWF(Micros, retry.initial)},
    {"retry.factor", R, SHOWN(retry.factor_permille)},
    {"retry.max_interval", R, SHOWF(Micros, retry.max_interval)},
    {"retry.max_age", R, SHOWF(Micros, retry.max_age)},
    {"retry.jitter", R, SHOWN(retry.jitter_permille)},
    {"retry.intervals", R, SHOWF(Durations, retry.intervals)},
    {"dkim.default_domain", X, SHOW(dkim_default_domain)},
    {"admin.control_dir", X, SHOW(control_dir)},
    // [http]: the listener is bound at start; the tokens file's name is
    // fixed but its contents are re-read on every reload (server/http_tokens.h);
    // the limits and timeouts apply to the next request or connection.
    {"http.listen", X, SHOW(http_listen)},
    {"http.tokens_file", X, SHOW(http_tokens_file)},
    {"http.metrics_require_token", R, SHOW(http_metrics_require_token)},
    {"http.max_request_bytes", R, SHOWN(http_max_request_bytes)},
    {"http.max_inject_bytes", R, SHOWN(http_max_inject_bytes)},
    {"http.max_headers", R, SHOWN(http_max_headers)},
    {"http.idle_timeout_s", R, SHOWN(http_idle_timeout_s)},
    {"http.request_timeout_s", R, SHOWN(http_request_timeout_s)},
    {"http.max_clients", R, SHOWN(http_max_clients)},
    {"http.tls", X, SHOW(http_tls)},
    {"http.max_inject_in_flight", R, SHOWN(http_max_inject_in_flight)},
};
#undef SHOW
#undef SHOWN
#undef SHOWF

// Every field of a shaping rule, for "shaping \"p\" FIELD old -> new".
struct ShapeField {
  const char* name;
  std::string (*show)(const queue::ShapeParams&);
};
#define P(field)                                                                \
  {                                                                             \
#field, [](const queue::ShapeParams& p) { return Show(uint64_t{p.field}); } \
  }
const ShapeField kShapeFields[] = {
    P(max_connections),
    P(max_messages_per_connection),
    P(messages_per_second),
    P(message_burst),
    P(messages_per_hour),
    P(connections_per_second),
    P(connection_burst),
    {"backoff_on_421", [](const queue::ShapeParams& p) { return Show(p.backoff_on_421); }},
    {"backoff_patterns", [](const queue::ShapeParams& p) { return Show(p.backoff_patterns); }},
    P(backoff_factor_permille),
    P(backoff_min_permille),
    {"backoff_duration", [](const queue::ShapeParams& p) { return Micros(p.backoff_duration); }},
    P(recovery_successes),
};
#undef P

// An entry list keyed by name (pattern): added, removed, or changed in
// place, in name order. `describe` writes the changes of one common entry.
template <typename T>
void DiffByName(const std::string& what, const std::map<std::string, const T*>& before,
                const std::map<std::string, const T*>& after,
                const std::function<std::string(const T&)>& show,
                const std::function<void(const std::string&, const T&, const T&)>& describe,
                std::vector<std::string>& out) {
  for (const auto& [name, old] : before) {
    auto it = after.find(name);
    if (it == after.end()) {
      out.push_back(absl::StrCat(what, " \"", name, "\" ", show(*old), " -> (removed)"));
    } else {
      describe(absl::StrCat(what, " \"", name, "\""), *old, *it->second);
    }
  }
  for (const auto& [name, fresh] : after) {
    if (!before.contains(name)) {
      out.push_back(absl::StrCat(what, " \"", name, "\" (added) -> ", show(*fresh)));
    }
  }
}

void DiffShaping(const Config& a, const Config& b, std::vector<std::string>& out) {
  auto index = [](const Config& c) {
    std::map<std::string, const queue::ShapingRule*> m;
    for (const queue::ShapingRule& r : c.shaping) {
      m[absl::StrCat(r.by_mx ? "mx:" : "", r.pattern)] = &r;
    }
    return m;
  };
  auto show = [](const queue::ShapingRule& r) {
    std::vector<std::string> fields;
    for (const ShapeField& f : kShapeFields) {
      fields.push_back(absl::StrCat(f.name, "=", f.show(r.params)));
    }
    return absl::StrCat("{", absl::StrJoin(fields, " "), "}");
  };
  auto describe = [&out](const std::string& name, const queue::ShapingRule& x,
                         const queue::ShapingRule& y) {
    for (const ShapeField& f : kShapeFields) {
      const std::string old = f.show(x.params), fresh = f.show(y.params);
      if (old != fresh) out.push_back(absl::StrCat(name, " ", f.name, " ", old, " -> ", fresh));
    }
  };
  DiffByName<queue::ShapingRule>("shaping", index(a), index(b), show, describe, out);
}

std::string ShowRoute(const Route& r) { return absl::StrCat(r.host, ":", r.port); }

void DiffRoutes(const Config& a, const Config& b, std::vector<std::string>& out) {
  auto index = [](const Config& c) {
    std::map<std::string, const Route*> m;
    for (const Route& r : c.routes) m[r.pattern] = &r;
    return m;
  };
  auto describe = [&out](const std::string& name, const Route& x, const Route& y) {
    if (ShowRoute(x) != ShowRoute(y)) {
      out.push_back(absl::StrCat(name, " ", ShowRoute(x), " -> ", ShowRoute(y)));
    }
  };
  DiffByName<Route>("route", index(a), index(b), ShowRoute, describe, out);
}

void DiffTlsPolicies(const Config& a, const Config& b, std::vector<std::string>& out) {
  auto index = [](const Config& c) {
    std::map<std::string, const TlsPolicyEntry*> m;
    for (const TlsPolicyEntry& e : c.tls_policies) m[e.pattern] = &e;
    return m;
  };
  auto show = [](const TlsPolicyEntry& e) { return std::string(OutboundTlsName(e.policy)); };
  auto describe = [&](const std::string& name, const TlsPolicyEntry& x, const TlsPolicyEntry& y) {
    if (x.policy != y.policy) out.push_back(absl::StrCat(name, " ", show(x), " -> ", show(y)));
  };
  DiffByName<TlsPolicyEntry>("delivery.tls_policy", index(a), index(b), show, describe, out);
}

// [[dkim.signer]]: restart-only as a whole (the key table is built at start).
bool SignersDiffer(const Config& a, const Config& b) {
  if (a.dkim_signers.size() != b.dkim_signers.size()) return true;
  for (size_t i = 0; i < a.dkim_signers.size(); ++i) {
    const DkimSigner& x = a.dkim_signers[i];
    const DkimSigner& y = b.dkim_signers[i];
    if (x.pattern != y.pattern || x.selector != y.selector || x.key_file != y.key_file ||
        x.signing_domain != y.signing_domain || x.canonicalization != y.canonicalization ||
        x.headers != y.headers || x.oversign != y.oversign || x.expire_s != y.expire_s) {
      return true;
    }
  }
  return false;
}

}  // namespace

ConfigDiff DiffConfig(const Config& running, const Config& next) {
  ConfigDiff diff;
  for (const Key& k : kKeys) {
    const std::string old = k.show(running), fresh = k.show(next);
    if (old == fresh) continue;
    if (k.when == When::kRestart) {
      diff.restart.push_back(k.name);
    } else {
      diff.changes.push_back(absl::StrCat(k.name, " ", old, " -> ", fresh));
    }
  }
  // The accounting log: reopened at a new path (log_file.h); turning it on
  // or off changes every shard's writer, which is set up at start.
  if (running.log_file != next.log_file) {
    if (running.log_file.empty() || next.log_file.empty()) {
      diff.restart.push_back("log.file");
    } else {
      diff.changes.push_back(
          absl::StrCat("log.file ", Show(running.log_file), " -> ", Show(next.log_file)));
    }
  }
  if (SignersDiffer(running, next)) diff.restart.push_back("dkim.signer");
  // [[webhook]]: each is a thread started with the process.
  if (running.webhooks != next.webhooks) diff.restart.push_back("webhook");
  DiffShaping(running, next, diff.changes);
  DiffRoutes(running, next, diff.changes);
  DiffTlsPolicies(running, next, diff.changes);
  return diff;
}

std::string RefusedLine(const ConfigDiff& diff) {
  return absl::StrCat("reload refused: ", absl::StrJoin(diff.restart, ", "),
                      diff.restart.size() == 1 ? " needs" : " need", " a restart; nothing changed");
}

std::string ReloadedLine(const ConfigDiff& diff) {
  if (diff.changes.empty()) return "reloaded: configuration unchanged";
  const size_t shown = std::min(diff.changes.size(), kMaxChangesShown);
  std::string line = absl::StrCat(
      "reloaded: ",
      absl::StrJoin(diff.changes.begin(), diff.changes.begin() + static_cast<long>(shown), ", "));
  if (shown < diff.changes.size()) {
    absl::StrAppend(&line, ", and ", diff.changes.size() - shown, " more");
  }
  return line;
}

}  // namespace sluice::config
