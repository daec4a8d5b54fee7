// [delivery]: the outbound side (docs/CONFIGURATION.md), with its nested
// tables [delivery.timeouts] (one deadline per SMTP step) and
// [delivery.tls_policy] ("pattern" = "policy", most specific pattern wins).
// The plain settings are Fields (field_tables.cc).

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "checks.h"
#include "field_tables.h"
#include "tables.h"

namespace sluice::config {
namespace {

// [delivery] keys that are not Fields.
constexpr absl::string_view kDeliveryOtherKeys[] = {
    "dns", "source_address", "helo_name", "timeouts", "tls", "tls_ca_file", "tls_policy"};

absl::Status ReadOutboundTls(Walk& walk, const std::string& dotted, const toml::node& node,
                             OutboundTls* out) {
  const auto* v = node.as_string();
  if (v == nullptr) {
    return walk.Error(node, dotted, absl::StrCat("expected a string, got ", TypeName(node)));
  }
  auto policy = ParseOutboundTls(v->get());
  if (!policy.ok()) return walk.Error(node, dotted, policy.status().message());
  *out = *policy;
  return absl::OkStatus();
}

// [delivery.tls_policy]: "pattern" = "policy", most specific pattern wins.
absl::Status ReadTlsPolicies(Walk& walk, const Entry& e) {
  const toml::table* t = e.node.as_table();
  if (t == nullptr) {
    return walk.Error(e.node, e.dotted, absl::StrCat("expected a table, got ", TypeName(e.node)));
  }
  std::vector<TlsPolicyEntry> entries;
  absl::Status status = walk.ForEach(*t, e.dotted, [&](const Entry& p) {
    if (absl::Status s = CheckPattern(p.name); !s.ok()) {
      return walk.Error(p.node, p.dotted, s.message());
    }
    TlsPolicyEntry entry;
    entry.pattern = NormalizeName(p.name);
    if (absl::Status r = ReadOutboundTls(walk, p.dotted, p.node, &entry.policy); !r.ok()) return r;
    for (const TlsPolicyEntry& seen : entries) {
      if (seen.pattern == entry.pattern) {
        return walk.Error(p.node, p.dotted, absl::StrCat("'", entry.pattern, "' appears twice"));
      }
    }
    entries.push_back(std::move(entry));
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  walk.config().tls_policies = std::move(entries);
  return absl::OkStatus();
}

absl::Status ReadTimeouts(Walk& walk, const Entry& e) {
  const toml::table* t = e.node.as_table();
  if (t == nullptr) {
    return walk.Error(e.node, e.dotted, absl::StrCat("expected a table, got ", TypeName(e.node)));
  }
  const std::vector<absl::string_view> known = KeysOf(TimeoutFields(), {});
  return walk.ForEach(*t, "delivery.timeouts", [&](const Entry& k) {
    const Field* f = FindField(TimeoutFields(), k.name);
    return f != nullptr ? walk.ReadField(*f, k.dotted, k.node, &walk.config().timeouts)
                        : walk.Unknown("delivery.timeouts", k, known);
  });
}

absl::Status ReadDns(Walk& walk, const Entry& e) {
  auto servers =
      walk.ReadStrings(e.dotted, e.node, "\"ADDR:PORT\" strings", SIZE_MAX,
                       [](absl::string_view s) { return NormalizeDnsServer(s).status(); });
  if (!servers.ok()) return servers.status();
  size_t bad = 0;
  if (auto normal = NormalizeDnsServers(*servers, &bad); !normal.ok()) {
    return walk.Error(*e.node.as_array()->get(bad), e.dotted, normal.status().message());
  }
  walk.config().dns_servers = *std::move(servers);
  return absl::OkStatus();
}

}  // namespace

absl::Status ReadDeliveryTable(Walk& walk, absl::string_view name, const toml::table& t) {
  const std::vector<absl::string_view> known = KeysOf(DeliveryFields(), kDeliveryOtherKeys);
  Config& c = walk.config();
  return walk.ForEach(t, name, [&](const Entry& e) {
    if (const Field* f = FindField(DeliveryFields(), e.name)) {
      return walk.ReadField(*f, e.dotted, e.node, &c);
    }
    if (e.name == "timeouts") return ReadTimeouts(walk, e);
    if (e.name == "dns") return ReadDns(walk, e);
    if (e.name == "source_address") {
      return walk.ReadString(e.dotted, e.node, CheckSourceAddress, &c.source_address);
    }
    if (e.name == "helo_name") {
      return walk.ReadString(e.dotted, e.node, CheckOptionalHostname, &c.helo_name);
    }
    if (e.name == "tls") return ReadOutboundTls(walk, e.dotted, e.node, &c.outbound_tls);
    if (e.name == "tls_ca_file") {
      return walk.ReadString(
          e.dotted, e.node, [](absl::string_view) { return absl::OkStatus(); },
          &c.outbound_tls_ca_file);
    }
    if (e.name == "tls_policy") return ReadTlsPolicies(walk, e);
    return walk.Unknown(name, e, known);
  });
}

}  // namespace sluice::config
