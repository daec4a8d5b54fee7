// The help text of the sluice command; see usage.h. The text is the one
// place a command and its options are described for the command line, so
// CommandHelp cuts a command's part out of it rather than keeping a copy.
#include "usage.h"

#include <cstdio>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "sluice/base/strings.h"

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

}  // namespace

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

}  // namespace sluice::cli
