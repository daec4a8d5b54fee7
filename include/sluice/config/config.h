// Sluice's run-time configuration: every limit and knob with its default.
//
// Sources, later ones winning: built-in defaults (below), the TOML file given
// with --config, then command-line flags. `sluice serve` with neither runs on
// the defaults: listen on 127.0.0.1:2525, spool in ./var/spool.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "sluice/base/cidr.h"
#include "sluice/queue/retry_schedule.h"
#include "sluice/queue/shaping.h"

namespace sluice::config {

// What to do with a bare CR or bare LF inside DATA. Only CRLF.CRLF ever ends
// DATA; this decides the fate of a message that contains a look-alike.
enum class BareLinefeedPolicy {
  kReject,  // read to the real end of DATA, then 550 5.6.11; nothing queued
};

// How long the outbound client waits for each step of a transaction, in
// milliseconds. The defaults are RFC 5321 4.5.3.2's minimums (connect has no
// RFC value; 30 s is what Postfix uses).
struct DeliveryTimeouts {
  uint32_t connect_ms = 30000;      // TCP connect
  uint32_t greeting_ms = 300000;    // the 220 banner (4.5.3.2.1)
  uint32_t ehlo_ms = 300000;        // EHLO/HELO reply
  uint32_t starttls_ms = 300000;    // STARTTLS reply and handshake
  uint32_t mail_ms = 300000;        // MAIL FROM reply (4.5.3.2.2)
  uint32_t rcpt_ms = 300000;        // each RCPT TO reply (4.5.3.2.3)
  uint32_t data_init_ms = 120000;   // the 354 after DATA (4.5.3.2.4)
  uint32_t data_block_ms = 180000;  // each write of the body (4.5.3.2.5)
  uint32_t final_dot_ms = 600000;   // the reply to <CRLF>.<CRLF> or BDAT LAST (4.5.3.2.6)
  uint32_t rset_ms = 300000;        // RSET reply
  uint32_t quit_ms = 300000;        // QUIT reply
};

// A static next hop: mail for domains matching `pattern` goes to `host`
// instead of the domain's MX hosts.
// Outbound STARTTLS, per destination domain (docs/CONFIGURATION.md):
//   disabled       never STARTTLS
//   opportunistic  STARTTLS when offered; a failed handshake is retried in
//                  the clear on the next connection (the default)
//   required       no TLS (not offered, refused, failed): transient failure
//   verify         required, and the certificate must chain to a trusted CA
//                  (tls_ca_file, else the system store) and match the MX host name
enum class OutboundTls : uint8_t { kDisabled, kOpportunistic, kRequired, kVerify };
absl::StatusOr<OutboundTls> ParseOutboundTls(std::string_view name);
const char* OutboundTlsName(OutboundTls policy);

struct TlsPolicyEntry {
  std::string pattern;  // exact, "*.example.com" or "*"
  OutboundTls policy = OutboundTls::kOpportunistic;
};

struct Route {
  std::string pattern;  // same syntax as shaping: exact, "*.example.com", "*"
  std::string host;     // IP literal (no brackets) or host name, resolved for
                        // A/AAAA like an implicit MX; never an MX lookup
  uint16_t port = 25;
};

// [[dkim.signer]] (docs/CONFIGURATION.md): who signs mail whose From:
// domain matches `pattern`. Keys are loaded and checked by dkim::KeyStore.
struct DkimSigner {
  std::string pattern;         // "domain": exact, or "*.example.com" (names below it)
  std::string selector;        // s=; the key is published at <selector>._domainkey.<d>
  std::string key_file;        // PEM private key, RSA (1024-4096 bits) or Ed25519
  std::string signing_domain;  // d=; empty: the From: domain
  std::string canonicalization = "relaxed/relaxed";  // header/body: simple or relaxed
  std::vector<std::string> headers = {"From",
                                      "To",
                                      "Cc",
                                      "Subject",
                                      "Date",
                                      "Message-ID",
                                      "Reply-To",
                                      "MIME-Version",
                                      "Content-Type",
                                      "Content-Transfer-Encoding",
                                      "List-Unsubscribe",
                                      "List-Unsubscribe-Post",
                                      "Feedback-ID",
                                      "In-Reply-To",
                                      "References"};
  std::vector<std::string> oversign = {"From", "Subject", "To"};
  uint64_t expire_s = 0;  // x= this long after t=; 0: no x=
};

// [[webhook]] (docs/WEBHOOKS.md): accounting records POSTed as JSON arrays
// to `url`. Read and checked by config/webhook_config.cc; the limits and
// their reasons are there and in docs/CONFIGURATION.md.
struct WebhookConfig {
  std::string name;                // [A-Za-z0-9_-]{1,64}: names its position file and metrics
  std::string url;                 // http[s]://HOST[:PORT]/PATH (http/url.h)
  std::vector<std::string> types;  // record types to send; empty: all
  uint32_t batch_max_records = 1000;
  uint64_t batch_max_bytes = 1u << 20;
  uint32_t batch_max_wait_ms = 1000;  // a partial batch goes out this long after its first record
  uint32_t timeout_s = 30;            // one POST: connect, send, response
  uint32_t backoff_min_ms = 1000;     // first retry delay (then doubling, with jitter)
  uint32_t backoff_max_ms = 300000;   // the cap
  std::string authorization;          // the Authorization header's value; "": none
  std::string tls_ca_file;            // https://: PEM CAs to trust; "": the system store
  bool operator==(const WebhookConfig&) const = default;
};

struct Config {
  // [server]
  std::vector<std::string> listen = {"127.0.0.1:2525"};
  std::string hostname;  // empty: gethostname()
  int shards = 0;        // 0: one per online CPU
  std::string relay_from = "127.0.0.0/8,::1";
  size_t max_message_size = 50 * 1024 * 1024;  // bytes, advertised in SIZE
  size_t max_recipients = 1000;                // per transaction (452 4.5.3 past it)
  size_t max_line_length = 2048;               // command line, with CRLF (500 5.5.6)
  size_t max_data_line_length = 64 * 1024;     // body line, with CRLF (below)
  size_t max_connections = 10000;              // per process; 421 4.7.0 past it
  size_t max_errors = 10;                      // bad commands before 421 and close
  uint32_t idle_timeout_s = 300;               // RFC 5321 4.5.3.2.7 server timeout
  uint32_t data_timeout_s = 600;               // no byte received within DATA
  uint32_t transaction_timeout_s = 1800;       // MAIL to the final reply, whatever the progress
  uint32_t session_timeout_s = 3600;           // a session, checked between transactions
  // Per client address, for clients outside relay_from (0: no limit):
  size_t max_connections_per_ip = 50;         // at once; 421 4.7.0 past it
  uint32_t max_connection_rate_per_ip = 600;  // new connections per minute
  // Body bytes a shard keeps copied in memory before bodies stream to their
  // files early (the receive memory budget, docs/ARCHITECTURE.md).
  uint64_t receive_memory_per_shard = 64ull << 20;
  uint32_t shutdown_grace_s = 30;  // SIGTERM: finish in-flight work
  // Seconds between returns of freed memory to the kernel (malloc_trim,
  // server/memory_trim.h); 0: never, RSS then keeps every burst's peak.
  uint32_t memory_trim_interval_s = 10;
  // Destinations each shard names in its metrics by queue depth, and again
  // by deferred messages; the rest are one domain="other" row
  // (docs/METRICS.md). Bounds a scrape's label cardinality.
  size_t metrics_top_destinations = 20;
  BareLinefeedPolicy bare_linefeed = BareLinefeedPolicy::kReject;
  size_t max_hops = 50;            // Received: fields a message may carry (554 5.4.6 past it)
  std::string postmaster_address;  // where <postmaster> goes; empty: trusted clients only
  bool require_from = true;        // exactly one From: (550 5.6.0 at DATA; pickup: bad/)
  // max_data_line_length: RFC 5321 4.5.3.1.6 says 1,000, but bulk HTML has
  // longer lines and Postfix accepts them, so the default takes 64 KiB
  // (capped at max_message_size when left at the default); a part with a
  // line over 998 octets leaves re-encoded (smtp/long_lines.h).

  // [spool]
  std::string spool_dir = "./var/spool";
  uint64_t spool_min_free_bytes = 64ull * 1024 * 1024;  // 452 4.3.1 below this

  // [log]
  // The accounting log (JSON lines). Unless log.file or --log gives it
  // (log_file_set), Finalize() fills in DefaultLogFile(spool_dir):
  // <parent of the spool>/log/sluice.log, ./var/log/sluice.log on the
  // built-in defaults. Given as "" (log.file = "" or --log ''): no log.
  std::string log_file;
  bool log_file_set = false;

  // [pickup] (docs/PICKUP.md)
  std::string pickup_dir;  // empty: no pickup directory
  // Group allowed to submit (the setgid group of `sluice sendmail`, like
  // Postfix's postdrop): DIR becomes 0710 and tmp/, new/ 1730, that group's.
  std::string pickup_group;                          // empty: DIR/tmp/new stay 0700 (root submits)
  uint32_t pickup_scan_interval_s = 10;              // rescan of new/ besides inotify
  uint64_t pickup_max_batch_recipients = 1'000'000;  // valid, distinct recipients per batch
  uint64_t pickup_max_recipients_file_size = 512ull * 1024 * 1024;  // a batch's CSV, bytes
  std::string pickup_feedback_id_sender;  // Feedback-ID's sender id for batches; "": none

  // ---- [tls] and [auth] (docs/CONFIGURATION.md); read by tls::Credentials,
  // which checks them at start-up and on SIGHUP. ----
  std::string tls_cert_file;                 // PEM: leaf, then the chain; empty: no TLS
  std::string tls_key_file;                  // PEM private key of tls_cert_file
  std::string tls_min_version = "1.2";       // "1.2" or "1.3"
  std::vector<std::string> listen_tls;       // implicit-TLS listeners (RFC 8314), ADDR:PORT
  std::vector<std::string> require_tls_on;   // listeners (ADDR:PORT or "*"): TLS before MAIL
  std::string auth_password_file;            // "user:$pbkdf2-sha256$..." lines; empty: no AUTH
  bool auth_allow_plaintext = false;         // offer AUTH without TLS
  std::vector<std::string> require_auth_on;  // listeners (ADDR:PORT or "*"): AUTH before MAIL
  uint32_t auth_max_failures = 3;            // failed AUTHs per address before a lock
  uint32_t auth_lock_s = 300;                // the lock, and the window failures count in
  // ---- end of [tls] and [auth] ----

  // [delivery] (docs/CONFIGURATION.md)
  bool delivery_enabled = true;          // false: accept and queue only (tests of ingestion)
  std::vector<std::string> dns_servers;  // "ADDR:PORT" / "[v6]:PORT"; empty: /etc/resolv.conf
  uint32_t dns_timeout_ms = 1000;        // first try; c-ares doubles it per round
  uint32_t dns_tries = 4;                // 1 + 2 + 4 + 8 s in all
  uint32_t dns_max_in_flight = 64;       // queries out at once, per shard
  uint16_t mx_port = 25;                 // port of every MX host (tests point it at a sink)
  std::string source_address;            // IP literal to bind outbound sockets to; empty: kernel
  std::string helo_name;                 // empty: hostname (Finalize fills it in)
  uint32_t max_recipients_per_transaction = 100;
  bool outbound_pipelining = true;           // use PIPELINING when the server offers it
  bool outbound_chunking = false;            // use BDAT when the server offers CHUNKING
  uint32_t idle_connection_ms = 2000;        // an idle outbound connection sends QUIT after this
  uint32_t max_outbound_connections = 2000;  // per shard, all destinations together
  OutboundTls outbound_tls = OutboundTls::kOpportunistic;  // delivery.tls
  std::string outbound_tls_ca_file;          // delivery.tls_ca_file; empty: the system CA store
  std::vector<TlsPolicyEntry> tls_policies;  // [delivery.tls_policy] "pattern" = "policy"
  DeliveryTimeouts timeouts;                 // [delivery.timeouts]

  // [retry] (microseconds inside, see queue/retry_schedule.h)
  queue::RetryConfig retry;

  // [[shaping]]: checked with queue::ShapingPolicy::Create in Finalize().
  std::vector<queue::ShapingRule> shaping;

  // [[route]]: at most one per pattern.
  std::vector<Route> routes;

  // [dkim]: [[dkim.signer]] entries in file order (several may share a
  // pattern: each one adds a signature), and the domain whose signers sign
  // mail whose From: matches no pattern (empty: such mail is not signed).
  std::vector<DkimSigner> dkim_signers;
  std::string dkim_default_domain;

  // [admin]
  std::string control_dir;  // empty: <spool_dir>/control (Finalize fills it in)

  // [http] (docs/HTTP.md): the metrics and admin API listener, on every
  // shard's loop (server/http_listener.h).
  std::string http_listen = "127.0.0.1:8025";  // ADDR:PORT; "": no HTTP listener
  std::string http_tokens_file;  // "name:sha256hex" lines; "": the admin API is refused (403)
  bool http_metrics_require_token = false;      // /metrics needs a token too
  uint64_t http_max_request_bytes = 64 * 1024;  // request line, headers and body (413)
  // The same for POST /api/inject/v1 only: a whole message or a template
  // with up to 100,000 recipients (server/http_inject.h).
  uint64_t http_max_inject_bytes = 64ull * 1024 * 1024;
  size_t http_max_headers = 64;          // header fields per request (431)
  uint32_t http_idle_timeout_s = 60;     // keep-alive connection with no request
  uint32_t http_request_timeout_s = 30;  // a request's arrival, and its response's send
  size_t http_max_clients = 256;         // connections per shard; past it: 503 and close
  // HTTPS on http.listen with the [tls] certificate (tls.cert_file/key_file).
  bool http_tls = false;
  // Injections a shard holds waiting for the spool's commit; past it: 503 +
  // Retry-After, so a burst meets back-pressure instead of queueing whole
  // bodies in memory behind a slow disk.
  size_t http_max_inject_in_flight = 32;

  // [[webhook]], in file order (the file's list replaces the one before).
  std::vector<WebhookConfig> webhooks;

  // Derived, filled by Finalize().
  base::NetworkSet relay_networks;
  std::vector<base::SocketAddress> listen_addresses;
  std::vector<base::SocketAddress> http_addresses;  // http_listen parsed; empty: off

  // Checks values and relations, fills the derived fields. Call once after
  // all sources are applied. Besides the derived fields above it fills in
  // `hostname` (gethostname()), `helo_name` (hostname) and `control_dir`
  // (<spool_dir>/control) when empty, writes `dns_servers` as "ADDR:PORT"
  // (a bare address gets port 53), and writes shaping and route patterns in
  // lower case without a trailing dot.
  absl::Status Finalize();
};

// The accounting log's default place for a spool directory: beside the
// spool, "<parent>/log/sluice.log" ("./var/spool" -> "./var/log/sluice.log",
// "spool" -> "./log/sluice.log").
std::string DefaultLogFile(std::string_view spool_dir);

// The route for a recipient domain, or nullptr when mail for it goes to its
// MX hosts. The most specific pattern wins, as in queue::ShapingPolicy: an
// exact name, then the longest "*.suffix", then "*". Case-insensitive; a
// trailing dot on either side is ignored. Linear in the number of routes.
const Route* FindRoute(const Config& config, std::string_view domain);
// The outbound TLS policy for a recipient domain: the most specific
// [delivery.tls_policy] pattern, else delivery.tls.
OutboundTls FindOutboundTls(const Config& config, std::string_view domain);

// A route from its two halves as written in the file or in --route
// PATTERN=NEXT_HOP. The next hop is "host", "host:port", "[host]:port",
// "ip", "ip:port", "[ip]", "[ip]:port" or "[v6]:port" (an IPv6 address needs
// the brackets); the port defaults to 25.
absl::StatusOr<Route> ParseRoute(std::string_view pattern, std::string_view next_hop);

// A duration as the configuration writes it: a non-negative integer and a
// unit, no space: "250ms", "30s", "5m", "4h", "5d". Errors on anything else
// (no unit, fractions, signs, overflow).
absl::StatusOr<uint64_t> ParseDurationMicros(std::string_view text);
// The inverse, in the largest unit that divides exactly: 90000000 -> "90s",
// 5400000000 -> "90m", 1500 -> "1500us" (a value no configuration can hold).
std::string FormatDuration(uint64_t micros);

// Parses TOML text into `config` (over whatever it holds). An unknown key or
// a value of the wrong type or range is an error naming the key and line.
absl::Status ApplyToml(std::string_view toml_text, std::string_view source_name, Config& config);
absl::Status ApplyTomlFile(const std::string& path, Config& config);

}  // namespace sluice::config
