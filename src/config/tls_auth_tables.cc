// [tls] and [auth]: inbound STARTTLS and SMTP AUTH (docs/CONFIGURATION.md).
// Only the shape of the values is checked here; tls::Credentials checks the
// files and that the listeners named are SMTP listeners.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "checks.h"
#include "tables.h"

namespace sluice::config {
namespace {

absl::Status AnyString(absl::string_view) { return absl::OkStatus(); }

absl::Status CheckTlsVersion(absl::string_view v) {
  return v == "1.2" || v == "1.3" ? absl::OkStatus()
                                  : absl::InvalidArgumentError("must be \"1.2\" or \"1.3\"");
}

// A list of SMTP listen addresses, into `*out`.
absl::Status ReadListeners(Walk& walk, const Entry& e, std::vector<std::string>* out) {
  auto list = walk.ReadStrings(e.dotted, e.node, "\"ADDR:PORT\" strings", 1000, AnyString);
  if (!list.ok()) return list.status();
  *out = *std::move(list);
  return absl::OkStatus();
}

}  // namespace

absl::Status ReadTlsTable(Walk& walk, absl::string_view name, const toml::table& t) {
  static constexpr absl::string_view kTlsKeys[] = {"cert_file", "key_file", "min_version", "listen",
                                                   "require_tls_on"};
  Config& c = walk.config();
  return walk.ForEach(t, name, [&](const Entry& e) {
    if (e.name == "cert_file") {
      return walk.ReadString(e.dotted, e.node, CheckOptionalPath, &c.tls_cert_file);
    }
    if (e.name == "key_file") {
      return walk.ReadString(e.dotted, e.node, CheckOptionalPath, &c.tls_key_file);
    }
    if (e.name == "min_version") {
      return walk.ReadString(e.dotted, e.node, CheckTlsVersion, &c.tls_min_version);
    }
    if (e.name == "listen") return ReadListeners(walk, e, &c.listen_tls);
    if (e.name == "require_tls_on") return ReadListeners(walk, e, &c.require_tls_on);
    return walk.Unknown(name, e, kTlsKeys);
  });
}

absl::Status ReadAuthTable(Walk& walk, absl::string_view name, const toml::table& t) {
  static constexpr absl::string_view kAuthKeys[] = {"password_file", "allow_plaintext",
                                                    "require_auth_on", "max_failures", "lock_s"};
  Config& c = walk.config();
  return walk.ForEach(t, name, [&](const Entry& e) {
    if (e.name == "require_auth_on") return ReadListeners(walk, e, &c.require_auth_on);
    if (e.name == "password_file") {
      return walk.ReadString(e.dotted, e.node, CheckOptionalPath, &c.auth_password_file);
    }
    if (e.name == "allow_plaintext") {
      return walk.ReadBool(e.dotted, e.node, "a boolean", &c.auth_allow_plaintext);
    }
    if (e.name == "max_failures" || e.name == "lock_s") {
      const auto* i = e.node.as_integer();
      const int64_t max = e.name == "max_failures" ? 1000 : 86400;
      if (i == nullptr || i->get() < 1 || i->get() > max) {
        return walk.Error(e.node, e.dotted,
                          absl::StrCat("expected an integer between 1 and ", max));
      }
      (e.name == "max_failures" ? c.auth_max_failures : c.auth_lock_s) =
          static_cast<uint32_t>(i->get());
      return absl::OkStatus();
    }
    return walk.Unknown(name, e, kAuthKeys);
  });
}

}  // namespace sluice::config
