// `sluice check-config`: loads what `serve` would load (the configuration,
// certificate and key, password file, outbound CA file, DKIM keys, HTTP
// tokens) and checks the folders it would write, so that a bad file fails
// here and not at 3 a.m. Prints a summary; exit 2 on an error, 0 with only
// warnings.
//
// Limits: checks the folders for one service user (--user, else whoever
// runs it); binds no sockets, so a listen address in use is found only by
// `serve`.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "commands.h"
#include "load_config.h"
#include "path_check.h"
#include "sluice/dkim/signer.h"
#include "sluice/server/startup_report.h"
#include "sluice/tls/bearer_tokens.h"
#include "sluice/tls/credentials.h"
#include "sluice/tls/tls.h"

namespace sluice::cli {
namespace {

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

}  // namespace

int RunCheckConfig(const Options& o) {
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

}  // namespace sluice::cli
