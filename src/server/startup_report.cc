// The ready line and the start-up warnings; see sluice/server/startup_report.h.
#include "sluice/server/startup_report.h"

#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace sluice::server {
namespace {

constexpr char kResolvConf[] = "/etc/resolv.conf";

// The "nameserver" lines of resolv.conf, as c-ares reads them; at most a
// line's worth (c-ares uses the first few anyway).
std::string NameServers() {
  FILE* f = std::fopen(kResolvConf, "re");
  if (f == nullptr) return "unreadable";
  std::string servers;
  char line[512];
  int count = 0;
  while (std::fgets(line, sizeof line, f) != nullptr && count < 8) {
    char address[256];
    if (std::sscanf(line, " nameserver %255s", address) == 1) {
      absl::StrAppend(&servers, servers.empty() ? "" : " ", address);
      ++count;
    }
  }
  std::fclose(f);
  return servers.empty() ? "no nameserver: c-ares falls back to 127.0.0.1" : servers;
}

}  // namespace

std::string ResolverSummary(const config::Config& config) {
  if (config.dns_servers.empty())
    return absl::StrCat("dns ", kResolvConf, " (", NameServers(), ")");
  std::string out = "dns";
  for (const std::string& s : config.dns_servers) absl::StrAppend(&out, " ", s);
  return out;
}

std::string ReadyLine(const config::Config& config) {
  std::string line = absl::StrCat(config.shards, " shards, listening on");
  for (const auto& a : config.listen_addresses) absl::StrAppend(&line, " ", a.ToString());
  for (const std::string& a : config.listen_tls) absl::StrAppend(&line, " ", a, " (tls)");
  if (!config.http_listen.empty()) absl::StrAppend(&line, " ", config.http_listen, " (http)");
  absl::StrAppend(&line, "; log ", config.log_file.empty() ? "off" : config.log_file);
  if (config.delivery_enabled) {
    absl::StrAppend(&line, "; delivery live, helo ", config.helo_name, ", ",
                    ResolverSummary(config));
    for (const config::Route& r : config.routes) {
      absl::StrAppend(&line, ", route ", r.pattern, "=[", r.host, "]:", r.port);
    }
    if (config.mx_port != 25) absl::StrAppend(&line, ", mx port ", config.mx_port);
  } else {
    line += "; delivery off (queue only)";
  }
  absl::StrAppend(&line, "; relay from ", config.relay_networks.ToString(), "; spool ",
                  config.spool_dir, "; pickup ",
                  config.pickup_dir.empty() ? "off" : config.pickup_dir);
  return line;
}

std::vector<std::string> ConfigWarnings(const config::Config& config) {
  std::vector<std::string> warnings;
  const std::string& host = config.hostname;
  if (host.find('.') == std::string::npos) {
    warnings.push_back(absl::StrCat(
        "host name '", host,
        "' is not fully qualified; it is the greeting and the outbound EHLO name, and many "
        "receivers refuse a single label: set server.hostname (or --hostname) to the "
        "machine's DNS name"));
  }
  if (config.helo_name != host && config.helo_name.find('.') == std::string::npos) {
    warnings.push_back(absl::StrCat("delivery.helo_name '", config.helo_name,
                                    "' is not fully qualified; receivers may refuse it"));
  }
  return warnings;
}

}  // namespace sluice::server
