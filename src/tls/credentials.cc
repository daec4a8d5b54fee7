#include "sluice/tls/credentials.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace sluice::tls {
namespace {

// "*" or ADDR:PORT naming one of `listeners`, written as ToString() does.
absl::StatusOr<std::vector<std::string>> ParseListenerList(
    const std::vector<std::string>& entries, const std::vector<base::SocketAddress>& listeners,
    std::string_view key) {
  std::vector<std::string> out;
  for (const std::string& e : entries) {
    if (e == "*") {
      out.push_back(e);
      continue;
    }
    auto addr = base::SocketAddress::Parse(e);
    if (!addr.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(std::string(key), ": '", e, "' is not ADDR:PORT or \"*\""));
    }
    const std::string norm = addr->ToString();
    const bool known = std::any_of(listeners.begin(), listeners.end(),
                                   [&](const auto& l) { return l.ToString() == norm; });
    if (!known) {
      return absl::InvalidArgumentError(absl::StrCat(
          std::string(key), ": '", e, "' is not one of the listen or listen_tls addresses"));
    }
    out.push_back(norm);
  }
  return out;
}

bool Listed(const std::vector<std::string>& list, const std::string& addr) {
  return std::any_of(list.begin(), list.end(),
                     [&](const std::string& e) { return e == "*" || e == addr; });
}

}  // namespace

Credentials::Credentials(const config::Config& c)
    : cert_file_(c.tls_cert_file),
      key_file_(c.tls_key_file),
      min_version_(c.tls_min_version),
      password_file_(c.auth_password_file),
      auth_plaintext_(c.auth_allow_plaintext),
      limiter_(c.auth_max_failures, c.auth_lock_s) {}

absl::StatusOr<std::unique_ptr<Credentials>> Credentials::Create(const config::Config& c) {
  std::unique_ptr<Credentials> creds(new Credentials(c));
  if (c.auth_max_failures < 1 || c.auth_max_failures > 1000) {
    return absl::InvalidArgumentError("auth.max_failures: must be between 1 and 1000");
  }
  if (c.auth_lock_s < 1 || c.auth_lock_s > 86400) {
    return absl::InvalidArgumentError("auth.lock_s: must be between 1 and 86400");
  }
  if (c.tls_cert_file.empty() != c.tls_key_file.empty()) {
    return absl::InvalidArgumentError("tls.cert_file and tls.key_file go together");
  }
  std::vector<base::SocketAddress> all = c.listen_addresses;
  for (const std::string& l : c.listen_tls) {
    auto addr = base::SocketAddress::Parse(l);
    if (!addr.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tls.listen: '", l, "' is not ADDR:PORT: ", addr.status().message()));
    }
    for (const auto& seen : all) {
      if (seen.ToString() == addr->ToString()) {
        return absl::InvalidArgumentError(absl::StrCat("tls.listen: '", l, "' is listed twice"));
      }
    }
    creds->implicit_.push_back(*addr);
    all.push_back(*addr);
  }
  if (!creds->implicit_.empty() && c.tls_cert_file.empty()) {
    return absl::InvalidArgumentError("tls.listen needs tls.cert_file and tls.key_file");
  }
  if (c.http_tls && c.tls_cert_file.empty()) {
    return absl::InvalidArgumentError("http.tls needs tls.cert_file and tls.key_file");
  }
  if (c.http_tls && c.http_listen.empty()) {
    return absl::InvalidArgumentError("http.tls needs http.listen");
  }
  auto tls_on = ParseListenerList(c.require_tls_on, all, "tls.require_tls_on");
  if (!tls_on.ok()) return tls_on.status();
  if (!tls_on->empty() && c.tls_cert_file.empty()) {
    return absl::InvalidArgumentError("tls.require_tls_on needs tls.cert_file and tls.key_file");
  }
  auto auth_on = ParseListenerList(c.require_auth_on, all, "auth.require_auth_on");
  if (!auth_on.ok()) return auth_on.status();
  if (!auth_on->empty() && c.auth_password_file.empty()) {
    return absl::InvalidArgumentError("auth.require_auth_on needs auth.password_file");
  }
  creds->require_tls_on_ = *std::move(tls_on);
  creds->require_auth_on_ = *std::move(auth_on);
  if (absl::Status s = creds->Load(); !s.ok()) return s;
  return creds;
}

absl::Status Credentials::Load() {
  std::shared_ptr<const Context> context;
  if (!cert_file_.empty()) {
    ContextOptions o;
    o.mode = Mode::kServer;
    o.cert_file = cert_file_;
    o.key_file = key_file_;
    o.min_version = min_version_;
    auto made = Context::Create(o);
    if (!made.ok()) return made.status();
    context = *std::move(made);
  }
  std::shared_ptr<Verifier> verifier;
  if (!password_file_.empty()) {
    auto file = PasswordFile::Load(password_file_);
    if (!file.ok()) {
      return absl::Status(file.status().code(),
                          absl::StrCat("auth.password_file: ", file.status().message()));
    }
    verifier = std::make_shared<Verifier>(*std::move(file));
  }
  context_.store(std::move(context));
  verifier_.store(std::move(verifier));
  return absl::OkStatus();
}

absl::Status Credentials::Reload() { return Load(); }

std::shared_ptr<const Context> Credentials::server_context() const { return context_.load(); }

std::shared_ptr<Verifier> Credentials::verifier() const { return verifier_.load(); }

ListenerPolicy Credentials::PolicyFor(const base::SocketAddress& address, bool implicit_tls) const {
  const std::string a = address.ToString();
  ListenerPolicy p;
  p.implicit_tls = implicit_tls;
  p.require_tls = !implicit_tls && Listed(require_tls_on_, a);
  p.require_auth = Listed(require_auth_on_, a);
  return p;
}

}  // namespace sluice::tls
