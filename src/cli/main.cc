// The sluice command line: `serve`, `check-config`, `queue list|show`,
// `inject`, `passwd`.
//
// Configuration precedence: built-in defaults < --config FILE < flags. Exit
// codes: 0 success, 1 run-time failure, 2 usage or configuration error.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "admin_client.h"
#include "dkim_command.h"
#include "sluice/base/clock.h"
#include "sluice/base/strings.h"
#include "sluice/config/config.h"
#include "sluice/dkim/signer.h"
#include "sluice/log/json.h"
#include "sluice/merge/template.h"
#include "sluice/pickup/batch.h"
#include "sluice/pickup/message_parser.h"
#include "sluice/pickup/pickup_directory.h"
#include "sluice/server/pickup_ingester.h"
#include "sluice/server/server.h"
#include "sluice/spool/spool_directory.h"
#include "sluice/tls/credentials.h"
#include "sluice/tls/password.h"
#include "sluice/tls/tls.h"

namespace sluice::cli {
namespace {

constexpr char kUsage[] =
    "usage: sluice <command> [options]\n"
    "\n"
    "commands:\n"
    "  serve                 run the relay (defaults: listen 127.0.0.1:2525, spool ./var/spool)\n"
    "  check-config          validate the configuration and exit (2 on error)\n"
    "  queue list            the running daemon's destination queues: DOMAIN READY DEFERRED\n"
    "                        IN-FLIGHT RCPTS CONNS OLDEST NEXT-ATTEMPT [--json]\n"
    "  queue messages        list the spool's messages: ID AGE SIZE SENDER RECIPIENTS [--json]\n"
    "                        (reads the files; works with or without a daemon)\n"
    "  queue show ID [--recipient ADDRESS]\n"
    "                        print a queued message as it will be delivered (a mail-merge\n"
    "                        batch: its template, or ADDRESS's own message)\n"
    "  queue flush [DOMAIN]  retry deferred mail now (all domains, or one)\n"
    "  queue suspend DOMAIN  hold DOMAIN's mail (in-flight messages finish)\n"
    "  queue resume DOMAIN   deliver DOMAIN's mail again\n"
    "  queue bounce ID|DOMAIN  bounce the queued mail of a message or a domain (DSNs sent)\n"
    "  queue stats           the running daemon's delivery counters per shard (JSON)\n"
    "  inject --from A --to B [--to C] < message.eml\n"
    "  inject -t < message.eml\n"
    "  inject --batch DIR/manifest.toml\n"
    "                        drop a message (or a batch: the manifest, its template and\n"
    "                        recipients file, checked first) into the pickup directory\n"
    "                        (--pickup DIR or pickup.dir); prints the name (docs/PICKUP.md)\n"
    "  dkim keygen --domain D --selector S [--algorithm rsa|ed25519] [--bits N] [--out DIR]\n"
    "                        write a DKIM key (S.private, 0600) and its DNS TXT record (S.txt)\n"
    "  passwd USER           add or change USER in the AUTH password file (--password-file\n"
    "                        FILE or auth.password_file); the password is read from stdin\n"
    "  version               print the version\n"
    "\n"
    "options (flags override the configuration file):\n"
    "  --config FILE             TOML configuration (see docs/CONFIGURATION.md)\n"
    "  --listen ADDR:PORT        listen address, repeatable (replaces the file's list)\n"
    "  --spool DIR               spool directory\n"
    "  --shards N                event-loop threads (0: one per CPU)\n"
    "  --relay-from CIDRS        networks allowed to relay, comma-separated\n"
    "  --hostname NAME           name used in the greeting and Received headers\n"
    "  --max-message-size BYTES  largest message accepted (SIZE)\n"
    "  --max-recipients N        recipients per transaction\n"
    "  --log FILE                accounting log (JSON lines)\n"
    "  --pickup DIR              pickup directory (tmp/ new/ bad/), see docs/PICKUP.md\n"
    "  --no-delivery             accept and queue only; deliver nothing (delivery.enabled)\n"
    "  --dns ADDR:PORT           DNS server, repeatable (replaces delivery.dns; default\n"
    "                            /etc/resolv.conf)\n"
    "  --mx-port PORT            port to deliver to on every MX host (delivery.mx_port)\n"
    "  --source-address IP       bind outbound connections to IP (delivery.source_address)\n"
    "  --route PATTERN=NEXT_HOP  static route, repeatable (replaces the [[route]] list),\n"
    "                            e.g. --route '*=[127.0.0.2]:2526'\n"
    "  --control-dir DIR         control sockets (admin.control_dir; default SPOOL/control)\n"
    "  --json                    queue list/messages: JSON lines\n"
    "  --listen-tls ADDR:PORT    implicit-TLS listener (RFC 8314), repeatable (replaces "
    "tls.listen)\n"
    "  --tls-cert FILE           TLS certificate chain (PEM), enables STARTTLS\n"
    "  --tls-key FILE            its private key (PEM)\n"
    "  --password-file FILE      AUTH users (see sluice passwd), enables AUTH\n";

int Usage(const std::string& error) {
  if (!error.empty()) std::fprintf(stderr, "sluice: %s\n\n", error.c_str());
  std::fputs(kUsage, error.empty() ? stdout : stderr);
  return error.empty() ? 0 : 2;
}

struct Options {
  std::string config_file;
  std::vector<std::string> listen;
  std::vector<std::string> dns;     // --dns, replaces delivery.dns when given
  std::vector<std::string> routes;  // --route PATTERN=NEXT_HOP, replaces [[route]] when given
  bool no_delivery = false;
  std::vector<std::pair<std::string, std::string>> overrides;  // flag, value
  bool json = false;
  bool recipients_from_headers = false;  // inject -t
  std::string from;                      // inject --from
  bool from_given = false;
  std::vector<std::string> to;  // inject --to
  std::string batch;            // inject --batch MANIFEST
  std::string recipient;        // queue show --recipient ADDRESS
  std::vector<std::string> positional;
};

bool TakesValue(std::string_view flag) {
  for (const char* f :
       {"--config", "--listen", "--spool", "--shards", "--relay-from", "--hostname",
        "--max-message-size", "--max-recipients", "--log", "--pickup", "--from", "--to", "--dns",
        "--mx-port", "--source-address", "--route", "--control-dir", "--batch", "--recipient",
        // TLS/AUTH
        "--listen-tls", "--tls-cert", "--tls-key", "--password-file"}) {
    if (flag == f) return true;
  }
  return false;
}

bool ParseArgs(int argc, char** argv, int first, Options& o, std::string& error) {
  for (int i = first; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string value;
    std::string flag(arg);
    if (size_t eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string_view::npos) {
      flag = std::string(arg.substr(0, eq));
      value = std::string(arg.substr(eq + 1));
    } else if (TakesValue(arg)) {
      if (i + 1 >= argc) {
        error = absl::StrCat(flag, " needs a value");
        return false;
      }
      value = argv[++i];
    }
    if (flag == "--json") {
      o.json = true;
    } else if (flag == "-t") {
      o.recipients_from_headers = true;
    } else if (flag == "--from") {
      o.from = value;
      o.from_given = true;
    } else if (flag == "--to") {
      o.to.push_back(value);
    } else if (flag == "--batch") {
      o.batch = value;
    } else if (flag == "--recipient") {
      o.recipient = value;
    } else if (flag == "--config") {
      o.config_file = value;
    } else if (flag == "--listen") {
      o.listen.push_back(value);
    } else if (flag == "--dns") {
      o.dns.push_back(value);
    } else if (flag == "--route") {
      o.routes.push_back(value);
    } else if (flag == "--no-delivery") {
      o.no_delivery = true;
    } else if (TakesValue(flag)) {
      o.overrides.emplace_back(flag, value);
    } else if (flag.rfind("--", 0) == 0) {
      error = absl::StrCat("unknown option ", flag);
      return false;
    } else {
      o.positional.push_back(flag);
    }
  }
  return true;
}

bool ParseSize(const std::string& flag, const std::string& text, uint64_t& out,
               std::string& error) {
  if (!base::ParseUint64(text, out)) {
    error = absl::StrCat(flag, ": not a non-negative integer: '", text, "'");
    return false;
  }
  return true;
}

// Builds the configuration: defaults, file, flags; then checks it.
bool LoadConfig(const Options& o, config::Config& c, std::string& error) {
  if (!o.config_file.empty()) {
    if (absl::Status s = config::ApplyTomlFile(o.config_file, c); !s.ok()) {
      error = std::string(s.message());
      return false;
    }
  }
  if (!o.listen.empty()) c.listen = o.listen;
  if (!o.dns.empty()) c.dns_servers = o.dns;
  if (o.no_delivery) c.delivery_enabled = false;
  if (!o.routes.empty()) {
    c.routes.clear();
    for (const std::string& spec : o.routes) {
      const size_t eq = spec.find('=');
      if (eq == std::string::npos) {
        error = absl::StrCat("--route: expected PATTERN=NEXT_HOP, got '", spec, "'");
        return false;
      }
      auto route = config::ParseRoute(std::string_view(spec).substr(0, eq),
                                      std::string_view(spec).substr(eq + 1));
      if (!route.ok()) {
        error = absl::StrCat("--route '", spec, "': ", route.status().message());
        return false;
      }
      c.routes.push_back(*std::move(route));
    }
  }
  bool listen_tls_given = false;  // the first --listen-tls replaces the file's list
  for (const auto& [flag, value] : o.overrides) {
    uint64_t n = 0;
    // TLS/AUTH flags.
    if (flag == "--listen-tls") {
      if (!listen_tls_given) c.listen_tls.clear();
      listen_tls_given = true;
      c.listen_tls.push_back(value);
    } else if (flag == "--tls-cert") {
      c.tls_cert_file = value;
    } else if (flag == "--tls-key") {
      c.tls_key_file = value;
    } else if (flag == "--password-file") {
      c.auth_password_file = value;
    }
    if (flag == "--spool") {
      c.spool_dir = value;
    } else if (flag == "--relay-from") {
      c.relay_from = value;
    } else if (flag == "--hostname") {
      c.hostname = value;
    } else if (flag == "--log") {
      c.log_file = value;
    } else if (flag == "--pickup") {
      c.pickup_dir = value;
    } else if (flag == "--shards") {
      if (!ParseSize(flag, value, n, error)) return false;
      c.shards = n > 100000 ? 100000 : static_cast<int>(n);
    } else if (flag == "--max-message-size") {
      if (!ParseSize(flag, value, n, error)) return false;
      c.max_message_size = n;
    } else if (flag == "--max-recipients") {
      if (!ParseSize(flag, value, n, error)) return false;
      c.max_recipients = n;
    } else if (flag == "--mx-port") {
      if (!ParseSize(flag, value, n, error)) return false;
      if (n > 65535) {
        error = absl::StrCat("--mx-port: must be between 1 and 65535, got ", n);
        return false;
      }
      c.mx_port = static_cast<uint16_t>(n);  // 0 is refused by Finalize()
    } else if (flag == "--source-address") {
      c.source_address = value;
    } else if (flag == "--control-dir") {
      c.control_dir = value;
    }
  }
  if (absl::Status s = c.Finalize(); !s.ok()) {
    error = std::string(s.message());
    return false;
  }
  if (c.shards == 0) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    c.shards = cpus > 0 ? static_cast<int>(cpus) : 1;
  }
  return true;
}

int Serve(const Options& o) {
  config::Config c;
  std::string error;
  if (!LoadConfig(o, c, error)) {
    std::fprintf(stderr, "sluice: %s\n", error.c_str());
    return 2;
  }
  absl::Status s = server::Serve(c);
  if (!s.ok()) {
    std::fprintf(stderr, "sluice: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}

// Loads what `serve` would load at start-up: the certificate and key (and
// that they match), the password file, and the CA file that outbound
// verification uses, so that a bad file fails here and not at 3 a.m.
// Returns the summary line, or the error.
absl::StatusOr<std::string> CheckTlsFiles(const config::Config& c) {
  auto credentials = tls::Credentials::Create(c);
  if (!credentials.ok()) return credentials.status();
  std::string summary =
      absl::StrCat("tls ", c.tls_cert_file.empty() ? "off" : c.tls_cert_file, ", auth ",
                   c.auth_password_file.empty() ? "off" : c.auth_password_file);
  tls::ContextOptions verify;
  verify.mode = tls::Mode::kClient;
  verify.verify_peer = true;
  verify.ca_file = c.outbound_tls_ca_file;
  const auto verify_context = tls::Context::Create(verify);
  const std::string store =
      c.outbound_tls_ca_file.empty() ? "the system store" : "delivery.tls_ca_file";
  if (verify_context.ok()) {
    absl::StrAppend(&summary, ", outbound verification against ", store);
    return summary;
  }
  const std::string why =
      absl::StrCat("outbound TLS verification (", store, "): ", verify_context.status().message());
  // A CA file that was asked for and does not load is an error. Without
  // one, only domains under the "verify" policy suffer (they defer): a
  // warning.
  if (!c.outbound_tls_ca_file.empty()) return absl::InvalidArgumentError(why);
  std::fprintf(stderr, "sluice: warning: %s\n", why.c_str());
  absl::StrAppend(&summary, ", no outbound verification");
  return summary;
}

int CheckConfig(const Options& o) {
  config::Config c;
  std::string error;
  if (!LoadConfig(o, c, error)) {
    std::fprintf(stderr, "sluice: %s\n", error.c_str());
    return 2;
  }
  const absl::StatusOr<std::string> tls_summary = CheckTlsFiles(c);
  tls::ReleaseThreadState();
  if (!tls_summary.ok()) {
    std::fprintf(stderr, "sluice: %s\n", std::string(tls_summary.status().message()).c_str());
    return 2;
  }
  // DKIM: every signer's key loads and fits (a bad one names its file).
  auto dkim_keys = dkim::KeyStore::Create(c);
  if (!dkim_keys.ok()) {
    std::fprintf(stderr, "sluice: %s\n", std::string(dkim_keys.status().message()).c_str());
    return 2;
  }
  const auto dkim_table = (*dkim_keys)->table();
  std::printf("configuration ok: %d shards, listen", c.shards);
  for (const auto& a : c.listen_addresses) std::printf(" %s", a.ToString().c_str());
  std::printf(", spool %s, relay from %s\n", c.spool_dir.c_str(),
              c.relay_networks.ToString().c_str());
  // The delivery settings flags can change, on a line of their own.
  std::string dns = c.dns_servers.empty() ? "/etc/resolv.conf" : "";
  for (const std::string& server : c.dns_servers) {
    absl::StrAppend(&dns, dns.empty() ? "" : " ", server);
  }
  std::string routes;
  for (const config::Route& r : c.routes) {
    absl::StrAppend(&routes, routes.empty() ? "" : " ", r.pattern, "=[", r.host, "]:", r.port);
  }
  std::printf("delivery %s, mx port %u, dns %s, source address %s, control dir %s, routes %s\n",
              c.delivery_enabled ? "on" : "off", unsigned{c.mx_port}, dns.c_str(),
              c.source_address.empty() ? "any" : c.source_address.c_str(), c.control_dir.c_str(),
              routes.empty() ? "none" : routes.c_str());
  std::printf("%s\n", tls_summary->c_str());
  std::printf("dkim %zu signers, %zu keys, default domain %s\n", dkim_table->signer_count(),
              dkim_table->key_count(),
              c.dkim_default_domain.empty() ? "none" : c.dkim_default_domain.c_str());
  return 0;
}

std::string SpoolDir(const Options& o) {
  config::Config c;
  std::string error;
  if (!o.config_file.empty()) (void)config::ApplyTomlFile(o.config_file, c);
  for (const auto& [flag, value] : o.overrides) {
    if (flag == "--spool") c.spool_dir = value;
  }
  return c.spool_dir;
}

int QueueList(const Options& o) {
  const std::string root = SpoolDir(o);
  spool::ScanOptions scan;     // read-only: safe while the daemon runs
  scan.merge_values = o.json;  // only --json shows a batch's values
  auto report = spool::ScanSpool(root, scan);
  if (!report.ok()) {
    std::fprintf(stderr, "sluice: %s\n", std::string(report.status().message()).c_str());
    return 1;
  }
  const uint64_t now = base::WallMicros();
  std::string out;
  for (const spool::QueuedMessage& m : report->messages) {
    const spool::Envelope& e = m.envelope;
    const uint64_t age_s = now > e.arrival_micros ? (now - e.arrival_micros) / 1000000 : 0;
    const uint64_t size = e.added_headers.size() + e.body_size;
    if (o.json) {
      absl::StrAppend(&out, "{\"id\":\"", e.id.ToString(), "\",\"age_s\":", age_s,
                      ",\"size\":", size, ",\"sender\":");
      log::AppendJsonString(out, e.sender);
      out += ",\"recipients\":[";
      for (size_t i = 0; i < e.recipients.size(); ++i) {
        if (i > 0) out += ',';
        log::AppendJsonString(out, e.recipients[i].address);
      }
      out += "],\"helo\":";
      log::AppendJsonString(out, e.helo);
      out += ",\"client\":";
      log::AppendJsonString(out, e.client_ip);
      absl::StrAppend(&out, ",\"arrival_us\":", e.arrival_micros);
      // Batches (docs/PICKUP.md): only when set.
      if (!e.campaign.empty()) {
        out += ",\"campaign\":";
        log::AppendJsonString(out, e.campaign);
      }
      if (!e.tenant.empty()) {
        out += ",\"tenant\":";
        log::AppendJsonString(out, e.tenant);
      }
      if (e.is_merge()) {
        out += ",\"merge_fields\":[";
        for (size_t i = 0; i < e.merge_fields.size(); ++i) {
          if (i > 0) out += ',';
          log::AppendJsonString(out, e.merge_fields[i]);
        }
        out += "],\"values\":[";  // per recipient, in the order of "recipients"
        for (size_t i = 0; i < e.recipients.size(); ++i) {
          out += i > 0 ? ",[" : "[";
          for (size_t k = 0; k < e.recipients[i].values.size(); ++k) {
            if (k > 0) out += ',';
            log::AppendJsonString(out, e.recipients[i].values[k]);
          }
          out += ']';
        }
        out += ']';
      }
      out += "}\n";
    } else {
      absl::StrAppend(&out, e.id.ToString(), " ", age_s, "s ", size, " ",
                      e.sender.empty() ? "<>" : e.sender, " ", e.recipients.size(), "\n");
    }
    if (out.size() > 1 << 16) {
      std::fwrite(out.data(), 1, out.size(), stdout);
      out.clear();
    }
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  for (const std::string& c : report->corrupt) std::fprintf(stderr, "corrupt: %s\n", c.c_str());
  return 0;
}

std::string ControlDir(const Options& o) {
  config::Config c;
  if (!o.config_file.empty()) (void)config::ApplyTomlFile(o.config_file, c);
  std::string dir = c.control_dir;
  for (const auto& [flag, value] : o.overrides) {
    if (flag == "--spool") c.spool_dir = value;
    if (flag == "--control-dir") dir = value;
  }
  return dir.empty() ? c.spool_dir + "/control" : dir;
}

// queue list|flush|suspend|resume|bounce|stats: one command to every shard.
int QueueAdmin(const Options& o) {
  const std::string& verb = o.positional[1];
  std::string line = verb;
  if (verb == "suspend" || verb == "resume" || verb == "bounce") {
    if (o.positional.size() != 3) return Usage(absl::StrCat("queue ", verb, " needs one argument"));
    line += " " + o.positional[2];
  } else if (verb == "flush") {
    if (o.positional.size() > 3) return Usage("queue flush takes at most one domain");
    if (o.positional.size() == 3) line += " " + o.positional[2];
  } else if (o.positional.size() != 2) {
    return Usage(absl::StrCat("queue ", verb, " takes no argument"));
  }
  auto replies = AdminCall(ControlDir(o), line);
  if (!replies.ok()) {
    std::fprintf(stderr, "sluice: %s\n", std::string(replies.status().message()).c_str());
    return 1;
  }
  if (verb == "list") return PrintDomains(*replies, o.json);
  int rc = 0;
  for (size_t i = 0; i < replies->size(); ++i) {
    const std::string& r = (*replies)[i];
    if (r.rfind("error", 0) == 0) rc = 1;
    std::printf("shard %zu: %s\n", i, r.c_str());
  }
  return rc;
}

int QueueShow(const Options& o) {
  if (o.positional.size() != 3) return Usage("queue show needs one queue id");
  auto id = base::QueueId::Parse(o.positional[2]);
  if (!id) return Usage(absl::StrCat("not a queue id: ", o.positional[2]));
  auto path = spool::FindMessage(SpoolDir(o), *id);
  if (!path.ok()) {
    std::fprintf(stderr, "sluice: %s\n", std::string(path.status().message()).c_str());
    return 1;
  }
  auto bytes = spool::ReadRecord(*path);
  if (!bytes.ok()) {
    std::fprintf(stderr, "sluice: %s\n", std::string(bytes.status().message()).c_str());
    return 1;
  }
  auto parsed = spool::ParseFile(*bytes);
  if (!parsed.ok()) {
    std::fprintf(stderr, "sluice: %s: %s\n", path->path.c_str(),
                 std::string(parsed.status().message()).c_str());
    return 1;
  }
  const spool::Envelope& e = parsed->envelope;
  std::string body(parsed->body);
  if (!o.recipient.empty()) {
    // One recipient's message: for a mail merge, rendered from the stored
    // template with that recipient's values (what delivery sends).
    const spool::Recipient* r = nullptr;
    for (const spool::Recipient& each : e.recipients) {
      if (each.address == o.recipient) r = &each;
    }
    if (r == nullptr) {
      std::fprintf(stderr, "sluice: message %s has no recipient %s\n", o.positional[2].c_str(),
                   o.recipient.c_str());
      return 1;
    }
    if (e.is_merge()) {
      auto rendered = merge::RenderStored(parsed->body, e.merge_fields, r->values);
      if (!rendered.ok()) {
        std::fprintf(stderr, "sluice: %s: %s\n", path->path.c_str(),
                     std::string(rendered.status().message()).c_str());
        return 1;
      }
      body = std::move(*rendered);
    }
  }
  std::fwrite(e.added_headers.data(), 1, e.added_headers.size(), stdout);
  std::fwrite(body.data(), 1, body.size(), stdout);
  return 0;
}

// An address as an envelope line wants it: "<a@b>" ("" and "<>" are <>).
std::string Bracketed(std::string_view a) {
  if (!a.empty() && a.front() == '<') return std::string(a);
  return absl::StrCat("<", base::Av(a), ">");
}

// `inject --batch DIR/manifest.toml`: the manifest names its template and
// recipients file, beside it. All three are checked as the daemon checks
// them (so the producer hears of an unknown field or a missing email column
// now), then copied into DIR/tmp/UNIQUE.batch/ and renamed into new/.
int InjectBatchCommand(const Options& o, const config::Config& c) {
  if (!o.to.empty() || o.from_given || o.recipients_from_headers) {
    return Usage("inject --batch takes no --from, --to or -t: the manifest gives the envelope");
  }
  const std::string& manifest_path = o.batch;
  const size_t slash = manifest_path.rfind('/');
  const std::string source_dir = slash == std::string::npos ? "." : manifest_path.substr(0, slash);
  auto read = [](const std::string& path, size_t max, std::string& out) -> bool {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) {
      std::fprintf(stderr, "sluice: inject: cannot read %s: %s\n", path.c_str(),
                   std::strerror(errno));
      return false;
    }
    char buf[64 * 1024];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0 && out.size() <= max) out.append(buf, n);
    const bool failed = std::ferror(f);
    std::fclose(f);
    if (failed) std::fprintf(stderr, "sluice: inject: cannot read %s\n", path.c_str());
    return !failed;
  };
  const pickup::BatchLimits limits = server::BatchLimitsFor(c);
  std::string manifest_text;
  if (!read(manifest_path, limits.max_manifest_size, manifest_text)) return 1;
  pickup::Manifest manifest;
  pickup::BatchError error;
  auto refuse = [&](const pickup::BatchError& e) {
    std::fprintf(stderr, "sluice: inject: batch not accepted: %s\n", e.ToString().c_str());
    return 1;
  };
  if (!pickup::ParseManifest(manifest_text, limits, manifest, error)) return refuse(error);
  const std::string template_path = absl::StrCat(source_dir, "/", manifest.template_file);
  const std::string recipients_path = absl::StrCat(source_dir, "/", manifest.recipients_file);
  std::string template_bytes;
  if (!read(template_path, limits.max_template_size, template_bytes)) return 1;
  pickup::PreparedTemplate prepared;
  if (!pickup::PrepareTemplate(manifest.template_file, template_bytes, limits, prepared, error)) {
    return refuse(error);
  }
  {
    FILE* f = std::fopen(recipients_path.c_str(), "rb");
    if (f == nullptr) {
      std::fprintf(stderr, "sluice: inject: cannot read %s: %s\n", recipients_path.c_str(),
                   std::strerror(errno));
      return 1;
    }
    pickup::BatchBuilder builder(prepared, manifest.template_file, manifest.recipients_file,
                                 limits);
    char buf[256 * 1024];
    size_t n;
    uint64_t total = 0;
    bool ok = true;
    while (ok && (n = std::fread(buf, 1, sizeof buf, f)) > 0) {
      total += n;
      if (total > limits.max_recipients_file_size) {
        std::fclose(f);
        return refuse(pickup::BatchError{
            manifest.recipients_file, 0, 0,
            absl::StrCat("file exceeds the limit (", limits.max_recipients_file_size, " bytes)")});
      }
      ok = builder.Feed(std::string_view(buf, n));
    }
    const bool failed = std::ferror(f);
    std::fclose(f);
    if (failed) {
      std::fprintf(stderr, "sluice: inject: cannot read %s\n", recipients_path.c_str());
      return 1;
    }
    if (!ok || !builder.Finish()) return refuse(builder.error());
    if (builder.skipped() > 0) {
      // Injected anyway, as the daemon queues the valid rows; it reports
      // the skipped ones in DIR/bad/NAME.error.
      std::fprintf(stderr, "sluice: inject: %zu rows of %s will be skipped, first: %s\n",
                   builder.skipped(), manifest.recipients_file.c_str(),
                   builder.notes().front().c_str());
    }
  }
  std::vector<pickup::BatchFile> files(3);
  files[0].name = std::string(pickup::kManifestName);
  files[0].contents = std::move(manifest_text);
  files[1].name = manifest.template_file;
  files[1].contents = std::move(template_bytes);
  files[2].name = manifest.recipients_file;
  files[2].copy_from = recipients_path;
  auto name = pickup::InjectBatch(c.pickup_dir, files);
  if (!name.ok()) {
    std::fprintf(stderr, "sluice: inject: %s\n", std::string(name.status().message()).c_str());
    return 1;
  }
  std::printf("%s\n", name->c_str());
  return 0;
}

int Inject(const Options& o) {
  config::Config c;
  if (!o.config_file.empty()) {
    if (absl::Status s = config::ApplyTomlFile(o.config_file, c); !s.ok()) {
      std::fprintf(stderr, "sluice: %s\n", std::string(s.message()).c_str());
      return 2;
    }
  }
  for (const auto& [flag, value] : o.overrides) {
    uint64_t n = 0;
    if (flag == "--pickup") c.pickup_dir = value;
    if (flag == "--max-message-size" && base::ParseUint64(value, n)) c.max_message_size = n;
    if (flag == "--max-recipients" && base::ParseUint64(value, n)) c.max_recipients = n;
  }
  if (c.pickup_dir.empty()) return Usage("inject needs --pickup DIR (or pickup.dir in --config)");
  if (!o.batch.empty()) return InjectBatchCommand(o, c);
  if (o.recipients_from_headers == !o.to.empty()) {
    return Usage("inject needs either --to ADDRESS (repeatable, with --from) or -t");
  }
  if (!o.to.empty() && !o.from_given) return Usage("inject --to needs --from ADDRESS (\"\" is <>)");
  std::string bytes;
  if (!o.to.empty()) {
    absl::StrAppend(&bytes, base::Av(pickup::kEnvelopeFrom), ": ", Bracketed(o.from), "\r\n");
    for (const std::string& t : o.to) {
      absl::StrAppend(&bytes, base::Av(pickup::kEnvelopeTo), ": ", Bracketed(t), "\r\n");
    }
  } else if (o.from_given) {
    absl::StrAppend(&bytes, base::Av(pickup::kEnvelopeFrom), ": ", Bracketed(o.from), "\r\n");
  }
  char buf[64 * 1024];
  while (true) {
    const size_t n = std::fread(buf, 1, sizeof buf, stdin);
    bytes.append(buf, n);
    if (n < sizeof buf) break;
    if (bytes.size() > c.max_message_size + 1) break;
  }
  if (std::ferror(stdin)) {
    std::fprintf(stderr, "sluice: inject: cannot read the message from standard input\n");
    return 1;
  }
  // The daemon checks again; checking here gives the producer the reason now.
  pickup::Result parsed = pickup::ParseMessage(bytes, server::MessageLimitsFor(c));
  if (!parsed.ok) {
    std::fprintf(stderr, "sluice: inject: message not accepted: %s\n",
                 parsed.error.ToString().c_str());
    return 1;
  }
  auto name = pickup::Inject(c.pickup_dir, bytes);
  if (!name.ok()) {
    std::fprintf(stderr, "sluice: inject: %s\n", std::string(name.status().message()).c_str());
    return 1;
  }
  std::printf("%s\n", name->c_str());
  return 0;
}

// `sluice passwd USER`: the password is the first line of standard input
// (so it never shows in `ps` or the shell history).
int Passwd(const Options& o) {
  if (o.positional.size() != 2) return Usage("passwd needs exactly one user name");
  config::Config c;
  if (!o.config_file.empty()) {
    if (absl::Status s = config::ApplyTomlFile(o.config_file, c); !s.ok()) {
      std::fprintf(stderr, "sluice: %s\n", std::string(s.message()).c_str());
      return 2;
    }
  }
  for (const auto& [flag, value] : o.overrides) {
    if (flag == "--password-file") c.auth_password_file = value;
  }
  if (c.auth_password_file.empty()) {
    return Usage("passwd needs --password-file FILE (or auth.password_file in --config)");
  }
  std::string password;
  char buf[512];
  while (password.size() < 1024 && std::fgets(buf, sizeof buf, stdin) != nullptr) {
    password += buf;
    if (!password.empty() && password.back() == '\n') break;
  }
  while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) {
    password.pop_back();
  }
  const std::string& user = o.positional[1];
  if (absl::Status s = tls::SetPassword(c.auth_password_file, user, password); !s.ok()) {
    std::fprintf(stderr, "sluice: passwd: %s\n", std::string(s.message()).c_str());
    return absl::IsInvalidArgument(s) ? 2 : 1;
  }
  std::printf("%s: password set for %s (pbkdf2-sha256, %u iterations)\n",
              c.auth_password_file.c_str(), user.c_str(), tls::kDefaultIterations);
  return 0;
}

int Main(int argc, char** argv) {
  if (argc < 2) return Usage("no command given");
  const std::string_view command = argv[1];
  if (command == "--help" || command == "-h" || command == "help") return Usage("");
  if (command == "version" || command == "--version") {
    std::printf("sluice 0.1.0\n");
    return 0;
  }
  if (command == "dkim") return DkimCommand(argc - 2, argv + 2);
  Options o;
  std::string error;
  if (!ParseArgs(argc, argv, 1, o, error)) return Usage(error);
  if (command == "serve") return Serve(o);
  if (command == "check-config") return CheckConfig(o);
  if (command == "inject") return Inject(o);
  if (command == "passwd") return Passwd(o);
  if (command == "queue") {
    const std::string verb = o.positional.size() >= 2 ? o.positional[1] : "";
    if (verb == "messages") return QueueList(o);
    if (verb == "show") return QueueShow(o);
    if (verb == "list" || verb == "flush" || verb == "suspend" || verb == "resume" ||
        verb == "bounce" || verb == "stats") {
      return QueueAdmin(o);
    }
    return Usage("queue needs list, messages, show, flush, suspend, resume, bounce or stats");
  }
  return Usage(absl::StrCat("unknown command '", base::Av(command), "'"));
}

}  // namespace
}  // namespace sluice::cli

int main(int argc, char** argv) { return sluice::cli::Main(argc, argv); }
