// The sluice command line: `serve`, `check-config`, `queue ...` (queue_command.h),
// `inject`, `passwd`.
//
// Configuration precedence: built-in defaults < --config FILE < flags. Exit
// codes: 0 success, 1 run-time failure, 2 usage or configuration error.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "admin_client.h"
#include "dkim_command.h"
#include "log_command.h"
#include "path_check.h"
#include "queue_command.h"
#include "reload_command.h"
#include "sendmail_command.h"
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
#include "sluice/server/startup_report.h"
#include "sluice/spool/spool_directory.h"
#include "sluice/tls/bearer_tokens.h"
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
    "  check-config [--user NAME]\n"
    "                        validate the configuration, and that the service user (NAME,\n"
    "                        else whoever runs it) can write the spool, log and pickup\n"
    "                        folders; exit 2 on an error (warnings exit 0)\n"
    "  reload                ask the running daemon to reload its configuration (like\n"
    "                        SIGHUP) and print what changed; exit 1 if it was refused\n"
    "                        (a key that needs a restart is named) or failed\n"
    "  log reopen            reopen the accounting log (like SIGUSR1; for logrotate's\n"
    "                        postrotate) and wait until the daemon writes the new file\n"
    "  metrics               print the running daemon's metrics in the Prometheus text\n"
    "                        format (every shard; docs/METRICS.md), e.g. for\n"
    "                        node_exporter's textfile collector\n"
    "  queue list|messages|show|shape|stats|flush|suspend|resume|suspensions|\n"
    "        hold|release|bounce|delete\n"
    "                        inspect and act on the queue (sluice queue help; docs/QUEUE.md)\n"
    "  inject --from A --to B [--to C] < message.eml\n"
    "  inject -t < message.eml\n"
    "  inject --batch DIR/manifest.toml\n"
    "                        drop a message (or a batch: the manifest, its template and\n"
    "                        recipients file, checked first) into the pickup directory\n"
    "                        (--pickup DIR or pickup.dir); prints the name (docs/PICKUP.md)\n"
    "  dkim keygen --domain D --selector S [--algorithm rsa|ed25519] [--bits N] [--out DIR]\n"
    "                        write a DKIM key (S.private, 0600) and its DNS TXT record (S.txt)\n"
    "  http-token NAME       print a new bearer token for the HTTP admin API and the\n"
    "                        NAME:sha256 line to append to http.tokens_file (docs/HTTP.md)\n"
    "  passwd USER           add or change USER in the AUTH password file (--password-file\n"
    "                        FILE or auth.password_file); the password is read from stdin\n"
    "  sendmail [-t] [-f SENDER] [-i] [-F NAME] [RECIPIENT...]\n"
    "                        submit a message from stdin like sendmail(8), through the\n"
    "                        pickup directory (also run as 'sendmail'; docs/PICKUP.md)\n"
    "  version               print the version\n"
    "  help [COMMAND]        this text, or one command's (also: sluice COMMAND --help)\n"
    "\n"
    "options (flags override the configuration file):\n"
    "  --config FILE             TOML configuration (see docs/CONFIGURATION.md); default\n"
    "                            $SLUICE_CONFIG, else /etc/sluice/sluice.toml if it exists\n"
    "  --listen ADDR:PORT        listen address, repeatable (replaces the file's list)\n"
    "  --spool DIR               spool directory\n"
    "  --shards N                event-loop threads (0: one per CPU)\n"
    "  --relay-from CIDRS        networks allowed to relay, comma-separated\n"
    "  --hostname NAME           name used in the greeting and Received headers\n"
    "  --max-message-size BYTES  largest message accepted (SIZE)\n"
    "  --max-recipients N        recipients per transaction\n"
    "  --log FILE                accounting log (JSON lines; default SPOOL/../log/sluice.log,\n"
    "                            '' for none)\n"
    "  --pickup DIR              pickup directory (tmp/ new/ bad/), see docs/PICKUP.md\n"
    "  --no-delivery             accept and queue only; deliver nothing (delivery.enabled)\n"
    "  --dns ADDR:PORT           DNS server, repeatable (replaces delivery.dns; default\n"
    "                            /etc/resolv.conf)\n"
    "  --mx-port PORT            port to deliver to on every MX host (delivery.mx_port)\n"
    "  --source-address IP       bind outbound connections to IP (delivery.source_address)\n"
    "  --route PATTERN=NEXT_HOP  static route, repeatable (replaces the [[route]] list),\n"
    "                            e.g. --route '*=[127.0.0.2]:2526'\n"
    "  --control-dir DIR         control sockets (admin.control_dir; default SPOOL/control)\n"
    "  --http ADDR:PORT          metrics and admin API listener (http.listen; default\n"
    "                            127.0.0.1:8025, '' for none)\n"
    "  --json                    queue commands: one JSON document\n"
    "  --listen-tls ADDR:PORT    implicit-TLS listener (RFC 8314), repeatable (replaces "
    "tls.listen)\n"
    "  --tls-cert FILE           TLS certificate chain (PEM), enables STARTTLS\n"
    "  --tls-key FILE            its private key (PEM)\n"
    "  --password-file FILE      AUTH users (see sluice passwd), enables AUTH\n";

// A usage error is one line naming it and where help is, exit 2; `sluice
// help` (or --help) prints the whole text on standard output, exit 0.
int Usage(const std::string& error) {
  if (error.empty()) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  std::fprintf(stderr, "sluice: %s (see 'sluice help')\n", error.c_str());
  return 2;
}

// `sluice COMMAND --help` / `sluice help COMMAND`: the lines of kUsage that
// describe COMMAND (its entry and the indented lines under it), then the
// options. Exit 0, or 2 for an unknown command.
int CommandHelp(std::string_view command) {
  const std::string_view usage = kUsage;
  const size_t options = usage.find("\noptions");
  std::string entries;
  bool in_entry = false;
  for (size_t at = usage.find("commands:\n") + 10; at < options;) {
    const size_t end = usage.find('\n', at);
    const std::string_view line = usage.substr(at, end - at);
    at = end + 1;
    const bool entry_start = line.size() > 2 && line[2] != ' ';
    if (entry_start) {
      const std::string_view name = line.substr(2);
      in_entry = name.substr(0, command.size()) == command &&
                 (name.size() == command.size() || name[command.size()] == ' ');
    }
    if (in_entry) absl::StrAppend(&entries, base::Av(line), "\n");
  }
  if (entries.empty()) return Usage(absl::StrCat("unknown command '", base::Av(command), "'"));
  std::printf("usage: sluice %s [options]\n\n%s%s", std::string(command).c_str(), entries.c_str(),
              std::string(usage.substr(options)).c_str());
  return 0;
}

// The configuration file when no --config is given: $SLUICE_CONFIG (empty:
// none, the built-in defaults), else kDefaultConfigFile when it exists.
constexpr char kDefaultConfigFile[] = "/etc/sluice/sluice.toml";

std::string DefaultConfigFile() {
  if (const char* env = std::getenv("SLUICE_CONFIG"); env != nullptr) return env;
  if (access(kDefaultConfigFile, F_OK) == 0) return kDefaultConfigFile;
  return "";
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
  std::vector<std::string> to;                     // inject --to
  std::string batch;                               // inject --batch MANIFEST
  std::string recipient;                           // queue show --recipient ADDRESS
  std::string user;                                // check-config --user NAME
  std::map<std::string, std::string> queue_flags;  // queue_command.h
  std::vector<std::string> positional;
};

bool TakesValue(std::string_view flag) {
  for (const char* f :
       {"--config", "--listen", "--spool", "--shards", "--relay-from", "--hostname",
        "--max-message-size", "--max-recipients", "--log", "--pickup", "--from", "--to", "--dns",
        "--mx-port", "--source-address", "--route", "--control-dir", "--batch", "--recipient",
        // TLS/AUTH
        "--listen-tls", "--tls-cert", "--tls-key", "--password-file", "--user", "--http"}) {
    if (flag == f) return true;
  }
  return false;
}

bool ParseArgs(int argc, char** argv, int first, Options& o, std::string& error) {
  for (int i = first; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string value;
    std::string flag(arg);
    bool queue_value = false;
    const bool queue_flag = IsQueueFlag(arg.substr(0, arg.find('=')), queue_value);
    if (size_t eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string_view::npos) {
      flag = std::string(arg.substr(0, eq));
      value = std::string(arg.substr(eq + 1));
    } else if (TakesValue(arg) || (queue_flag && queue_value)) {
      if (i + 1 >= argc) {
        error = absl::StrCat(flag, " needs a value");
        return false;
      }
      value = argv[++i];
    }
    if (queue_flag) {
      o.queue_flags[flag] = queue_value ? value : "1";
    } else if (flag == "--json") {
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
    } else if (flag == "--user") {
      o.user = value;
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
      c.log_file = value;  // '' turns the log off
      c.log_file_set = true;
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
    } else if (flag == "--http") {
      c.http_listen = value;  // '' turns it off
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
  // SIGHUP loads the configuration again from the same file and flags.
  server::ConfigLoader loader = [o]() -> absl::StatusOr<config::Config> {
    config::Config fresh;
    std::string why;
    if (!LoadConfig(o, fresh, why)) return absl::InvalidArgumentError(why);
    return fresh;
  };
  absl::Status s = server::Serve(c, std::move(loader));
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

// The folders serve writes, for the service user (--user, else whoever runs
// this), then the warnings serve would print. Problems exit 2; warnings 0.
int CheckConfigFolders(const Options& o, const config::Config& c) {
  auto user = LookUpServiceUser(o.user);
  if (!user.ok()) {
    std::fprintf(stderr, "sluice: %s\n", std::string(user.status().message()).c_str());
    return 2;
  }
  const std::vector<std::string> problems = CheckFolders(c, *user);
  for (const std::string& p : problems) std::fprintf(stderr, "sluice: %s\n", p.c_str());
  for (const std::string& w : server::ConfigWarnings(c)) {
    std::fprintf(stderr, "sluice: warning: %s\n", w.c_str());
  }
  if (!problems.empty()) return 2;
  std::printf("folders ok for %s: spool %s, log %s, pickup %s\n", user->name.c_str(),
              c.spool_dir.c_str(), c.log_file.empty() ? "off" : c.log_file.c_str(),
              c.pickup_dir.empty() ? "off" : c.pickup_dir.c_str());
  return 0;
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
  // The HTTP admin tokens file, as serve loads it.
  auto http_tokens = tls::BearerTokenStore::Create(c.http_tokens_file);
  if (!http_tokens.ok()) {
    std::fprintf(stderr, "sluice: %s\n", std::string(http_tokens.status().message()).c_str());
    return 2;
  }
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
  std::printf(
      "http %s, admin tokens %s\n", c.http_listen.empty() ? "off" : c.http_listen.c_str(),
      c.http_tokens_file.empty()
          ? "none (admin API refused)"
          : absl::StrCat(c.http_tokens_file, " (", (*http_tokens)->tokens()->size(), ")").c_str());
  std::printf("dkim %zu signers, %zu keys, default domain %s\n", dkim_table->signer_count(),
              dkim_table->key_count(),
              c.dkim_default_domain.empty() ? "none" : c.dkim_default_domain.c_str());
  return CheckConfigFolders(o, c);
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

// `sluice reload` (reload_command.h): the spool from the configuration as
// `serve` loads it. A file that does not load is reported here and nothing
// is sent: the daemon would refuse it the same way.
int Reload(const Options& o) {
  config::Config c;
  std::string error;
  if (!LoadConfig(o, c, error)) {
    std::fprintf(stderr, "sluice: reload: %s; nothing sent to the daemon\n", error.c_str());
    return 1;
  }
  return ReloadCommand(c.spool_dir);
}

// `sluice log reopen` (log_command.h): the spool and the log's name from
// the configuration as `serve` loads them.
int Log(const Options& o) {
  if (o.positional.size() != 2 || o.positional[1] != "reopen") {
    return Usage("log takes one command: reopen");
  }
  config::Config c;
  std::string error;
  if (!LoadConfig(o, c, error)) {
    std::fprintf(stderr, "sluice: log reopen: %s\n", error.c_str());
    return 1;
  }
  return LogReopenCommand(c.spool_dir, c.log_file);
}

// `sluice metrics`: the daemon's Prometheus text (server/metrics_text.h)
// through any shard's control socket; exit 1 when no daemon answers.
int Metrics(const Options& o) {
  if (o.positional.size() > 1) return Usage("metrics takes no arguments");
  const std::string dir = ControlDir(o);
  absl::StatusOr<std::string> text = AdminCallAny(dir, "metrics");
  if (!text.ok()) {
    std::fprintf(stderr, "sluice: metrics: %s\n", std::string(text.status().message()).c_str());
    return 1;
  }
  if (text->empty() || text->front() == '{') {  // an older daemon: {"error":"unknown command"}
    std::fprintf(stderr, "sluice: metrics: unexpected reply: %s\n", text->substr(0, 200).c_str());
    return 1;
  }
  std::fwrite(text->data(), 1, text->size(), stdout);
  std::fputc('\n', stdout);
  return std::fflush(stdout) == 0 ? 0 : 1;
}

// `sluice queue ...` (queue_command.h): the spool and control directories
// come from --config/--spool/--control-dir as for `serve`.
int Queue(const Options& o) {
  QueueContext q;
  q.args.assign(o.positional.begin() + 1, o.positional.end());
  if (q.args.empty() || q.args[0] == "help")
    return QueueUsage(q.args.empty() ? "queue needs a command" : "");
  q.spool_dir = SpoolDir(o);
  q.control_dir = ControlDir(o);
  q.json = o.json;
  q.recipient = o.recipient;
  q.flags = o.queue_flags;
  return RunQueueCommand(q);
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
  if (!pickup::PrepareTemplate(manifest.template_file, template_bytes, limits, prepared, error,
                               &manifest)) {
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
    // Line numbers of the user's file: the envelope lines added above are
    // not in it.
    const size_t added = o.to.size() + (o.from_given ? 1 : 0);
    if (parsed.error.line > added) parsed.error.line -= added;
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

// `sluice http-token NAME`: a new bearer token for the HTTP admin API
// (tls/bearer_tokens.h). The token is printed once and kept nowhere; the
// tokens file gets only its SHA-256, on the line printed after it.
int HttpToken(const Options& o) {
  if (o.positional.size() != 2) return Usage("http-token needs exactly one token name");
  const std::string& name = o.positional[1];
  if (auto parsed = tls::BearerTokens::Parse(name + ":" + tls::TokenDigestHex(""), "NAME");
      !parsed.ok()) {
    return Usage(absl::StrCat("http-token: bad name: ", parsed.status().message()));
  }
  auto token = tls::NewBearerToken();
  if (!token.ok()) {
    std::fprintf(stderr, "sluice: http-token: %s\n", std::string(token.status().message()).c_str());
    return 1;
  }
  std::printf("token: %s\nline: %s:%s\n", token->c_str(), name.c_str(),
              tls::TokenDigestHex(*token).c_str());
  std::fprintf(stderr,
               "sluice: append the line to http.tokens_file and run 'sluice reload'; send the "
               "token as 'Authorization: Bearer TOKEN' (it is shown only now)\n");
  return 0;
}

// Run as "sendmail" (a link, deploy/README.md) or as `sluice sendmail`.
bool IsSendmail(std::string_view argv0) {
  const size_t slash = argv0.rfind('/');
  return argv0.substr(slash == std::string_view::npos ? 0 : slash + 1) == "sendmail";
}

int Main(int argc, char** argv) {
  if (IsSendmail(argv[0])) return SendmailMain(argc, argv, DefaultConfigFile());
  if (argc < 2) return Usage("no command given");
  const std::string_view command = argv[1];
  if (command == "sendmail") return SendmailMain(argc - 1, argv + 1, DefaultConfigFile());
  if (command == "--help" || command == "-h") return Usage("");
  if (command == "version" || command == "--version") {
    std::printf("sluice 0.1.0\n");
    return 0;
  }
  if (command == "help") return argc > 2 ? CommandHelp(argv[2]) : Usage("");
  for (int i = 2; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") return CommandHelp(command);
  }
  if (command == "dkim") return DkimCommand(argc - 2, argv + 2);
  Options o;
  std::string error;
  if (!ParseArgs(argc, argv, 1, o, error)) return Usage(error);
  if (o.config_file.empty()) o.config_file = DefaultConfigFile();
  if (command == "serve") return Serve(o);
  if (command == "check-config") return CheckConfig(o);
  if (command == "inject") return Inject(o);
  if (command == "passwd") return Passwd(o);
  if (command == "http-token") return HttpToken(o);
  if (command == "queue") return Queue(o);
  if (command == "metrics") return Metrics(o);
  if (command == "reload") return Reload(o);
  if (command == "log") return Log(o);
  return Usage(absl::StrCat("unknown command '", base::Av(command), "'"));
}

}  // namespace
}  // namespace sluice::cli

int main(int argc, char** argv) { return sluice::cli::Main(argc, argv); }
