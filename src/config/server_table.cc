// [server]: the SMTP listener and its limits (docs/CONFIGURATION.md). The
// integer keys are IntFields (field_tables.cc); listen and relay_from are
// parsed here so that an error points at the array element at fault.

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_join.h"
#include "checks.h"
#include "field_tables.h"
#include "tables.h"

namespace sluice::config {
namespace {

// Every key, for "did you mean" hints.
// One key a line: branches that add keys then merge without conflicts.
// clang-format off
constexpr absl::string_view kServerKeys[] = {
    "listen",
    "hostname",
    "shards",
    "relay_from",
    "max_message_size",
    "max_recipients",
    "max_line_length",
    "max_data_line_length",
    "max_connections",
    "max_errors",
    "idle_timeout_s",
    "data_timeout_s",
    "shutdown_grace_s",
    "bare_linefeed",
    "transaction_timeout_s",
    "session_timeout_s",
    "max_connections_per_ip",
    "max_connection_rate_per_ip",
    "receive_memory_per_shard",
    "max_hops",
    "postmaster_address",
    "require_from",
    "memory_trim_interval_s",
    "metrics_top_destinations",
};
// clang-format on

absl::Status ReadListen(Walk& walk, const Entry& e) {
  const toml::array* array = e.node.as_array();
  if (array == nullptr) {
    return walk.Error(
        e.node, e.dotted,
        absl::StrCat("expected an array of \"ADDR:PORT\" strings, got ", TypeName(e.node)));
  }
  std::vector<std::string> listen;
  for (const toml::node& element : *array) {
    const auto* s = element.as_string();
    if (s == nullptr) {
      return walk.Error(element, e.dotted,
                        absl::StrCat("expected \"ADDR:PORT\" strings, got ", TypeName(element)));
    }
    listen.push_back(s->get());
  }
  size_t bad = 0;
  auto parsed = ParseListen(listen, &bad);
  if (!parsed.ok()) {
    return walk.Error(array->empty() ? e.node : *array->get(bad), e.dotted,
                      parsed.status().message());
  }
  walk.config().listen = std::move(listen);
  return absl::OkStatus();
}

// Either "cidr,cidr" or ["cidr", "cidr"]; stored comma-joined.
absl::Status ReadRelayFrom(Walk& walk, const Entry& e) {
  std::vector<absl::string_view> parts;
  std::vector<const toml::node*> where;  // the node that holds parts[i]
  if (const auto* s = e.node.as_string()) {
    parts = SplitNetworks(s->get());
    where.assign(parts.size(), &e.node);
  } else if (const toml::array* array = e.node.as_array()) {
    for (const toml::node& element : *array) {
      const auto* el = element.as_string();
      if (el == nullptr) {
        return walk.Error(element, e.dotted,
                          absl::StrCat("expected CIDR strings, got ", TypeName(element)));
      }
      parts.push_back(absl::StripAsciiWhitespace(el->get()));
      where.push_back(&element);
    }
  } else {
    return walk.Error(
        e.node, e.dotted,
        absl::StrCat("expected a string \"cidr,cidr\" or an array of CIDR strings, got ",
                     TypeName(e.node)));
  }
  size_t bad = 0;
  auto parsed = ParseNetworks(parts, &bad);
  if (!parsed.ok()) {
    return walk.Error(where.empty() ? e.node : *where[bad], e.dotted, parsed.status().message());
  }
  walk.config().relay_from = absl::StrJoin(parts, ",");
  return absl::OkStatus();
}

}  // namespace

absl::Status ReadServerTable(Walk& walk, absl::string_view name, const toml::table& t) {
  Config& c = walk.config();
  return walk.ForEach(t, name, [&](const Entry& e) {
    if (const IntField* field = FindIntField(name, e.name)) return walk.ReadIntField(*field, e);
    if (e.name == "listen") return ReadListen(walk, e);
    if (e.name == "relay_from") return ReadRelayFrom(walk, e);
    if (e.name == "require_from") {
      return walk.ReadBool(e.dotted, e.node, "true or false", &c.require_from);
    }
    if (e.name == "hostname") {
      // Empty means "ask gethostname()", as it does by default.
      return walk.ReadString(e.dotted, e.node, CheckOptionalHostname, &c.hostname);
    }
    if (e.name == "postmaster_address") {
      return walk.ReadString(e.dotted, e.node, CheckPostmasterAddress, &c.postmaster_address);
    }
    if (e.name == "bare_linefeed") {
      // One policy so far: nothing to store.
      return walk.ReadString(e.dotted, e.node, CheckBareLinefeed, nullptr);
    }
    return walk.Unknown(name, e, kServerKeys);
  });
}

}  // namespace sluice::config
