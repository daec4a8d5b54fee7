// Loading the configuration from --config and the flags; see load_config.h.
#include "load_config.h"

#include <unistd.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "sluice/base/strings.h"

namespace sluice::cli {
namespace {

bool ParseSize(const std::string& flag, const std::string& text, uint64_t& out,
               std::string& error) {
  if (!base::ParseUint64(text, out)) {
    error = absl::StrCat(flag, ": not a non-negative integer: '", text, "'");
    return false;
  }
  return true;
}

// --route PATTERN=NEXT_HOP flags replace the file's [[route]] list.
bool ApplyRouteFlags(const Options& o, config::Config& c, std::string& error) {
  if (o.routes.empty()) return true;
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
  return true;
}

// The TLS/AUTH flags. The first --listen-tls replaces the file's list
// (`listen_tls_given` remembers it was seen); later ones add to it.
void ApplyTlsFlag(const std::string& flag, const std::string& value, config::Config& c,
                  bool& listen_tls_given) {
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
}

// The other flags that set one configuration value each.
bool ApplyValueFlag(const std::string& flag, const std::string& value, config::Config& c,
                    std::string& error) {
  uint64_t n = 0;
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
  return true;
}

}  // namespace

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
  if (!ApplyRouteFlags(o, c, error)) return false;
  bool listen_tls_given = false;
  for (const auto& [flag, value] : o.overrides) {
    ApplyTlsFlag(flag, value, c, listen_tls_given);
    if (!ApplyValueFlag(flag, value, c, error)) return false;
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

}  // namespace sluice::cli
