// The inbound server's TLS and AUTH state, shared by every shard: the
// server context (certificate chain and key), the password verifier, the
// per-address AUTH failure limiter, and each listener's policy.
//
// Reload() (SIGHUP) re-reads the certificate, key and password file. New
// connections get the new context and verifier; connections already running
// keep the ones they started with (shared_ptr), so nothing is dropped. A
// reload that fails (a bad file) keeps the old state and says why.
//
// Thread-safe: shards call server_context()/verifier() on accept and AUTH
// (an atomic shared_ptr load, no mutex), the main thread calls Reload().
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "sluice/base/cidr.h"
#include "sluice/config/config.h"
#include "sluice/tls/password.h"
#include "sluice/tls/tls.h"

namespace sluice::tls {

struct ListenerPolicy {
  bool implicit_tls = false;  // TLS from the first byte (RFC 8314)
  bool require_tls = false;
  bool require_auth = false;
};

class Credentials {
 public:
  // Checks the [tls]/[auth] settings and loads the files. A configuration
  // without a certificate and without a password file gives an object that
  // offers neither.
  static absl::StatusOr<std::unique_ptr<Credentials>> Create(const config::Config& config);

  absl::Status Reload();

  // nullptr when no certificate is configured (STARTTLS answers 502).
  std::shared_ptr<const Context> server_context() const;
  // nullptr when no password file is configured (AUTH answers 502).
  std::shared_ptr<Verifier> verifier() const;
  AuthLimiter& limiter() { return limiter_; }
  bool auth_plaintext() const { return auth_plaintext_; }

  // The implicit-TLS listen addresses (config.listen_tls, parsed).
  const std::vector<base::SocketAddress>& implicit_tls_addresses() const { return implicit_; }
  ListenerPolicy PolicyFor(const base::SocketAddress& address, bool implicit_tls) const;

 private:
  Credentials(const config::Config& config);
  absl::Status Load();

  const std::string cert_file_;
  const std::string key_file_;
  const std::string min_version_;
  const std::string password_file_;
  const bool auth_plaintext_;
  std::vector<base::SocketAddress> implicit_;
  std::vector<std::string> require_tls_on_;  // normalised ADDR:PORT, or "*"
  std::vector<std::string> require_auth_on_;
  AuthLimiter limiter_;

  // Read by every shard per connection, replaced by a reload on the main
  // thread: atomic shared pointers, so a reader takes no mutex.
  std::atomic<std::shared_ptr<const Context>> context_;
  std::atomic<std::shared_ptr<Verifier>> verifier_;
};

}  // namespace sluice::tls
