// Reads Sluice's TOML configuration into config::Config and checks the result.
//
// ApplyToml() accepts only the keys it knows; anything else (unknown table or
// key, wrong type, value out of range) is an absl::InvalidArgumentError of the
// form "<source>:<line>: <table>.<key>: <problem>". Config::Finalize() checks
// the same ranges again, because command-line flags bypass the TOML reader,
// then the relations between values, and fills the derived fields.
//
// The reader's files (all in src/config, private headers beside them):
//   config.cc         this file: the entry points, the table registry, Finalize()
//   toml_walk.{h,cc}  the generic walk: file order, typed reads, error texts
//   fields.{h,cc}     the field-table machinery (IntField, Field, Range, suggestions)
//   field_tables.{h,cc} the bounds of every setting, with reasons, and the field tables
//   checks.{h,cc}     value checks: names, paths, addresses, patterns, next hops
//   <name>_table.cc   one reader per TOML table (tables.h lists them)
//   durations.cc, routing.cc  the public helpers of config.h
//
// Adding a table [foo] (or [[foo]]):
//   1. foo_table.cc with `absl::Status ReadFooTable(Walk&, absl::string_view
//      name, const toml::table&)` (or `ReadFooTables(Walk&, const toml::array&)`
//      for [[foo]]), declared in tables.h. Copy a small one (admin_table.cc,
//      route_table.cc): walk.ForEach over the keys, one branch a key,
//      walk.Unknown(...) last with the list of known keys.
//   2. One line in kTableReaders below (new tables go last: the order is the
//      order of the "the tables are ..." list in errors).
//   3. The file in meson.build; if command-line flags or defaults can make a
//      value wrong, a check in Finalize() below.
// Adding a key to an existing table: the member in config.h, a branch in its
// table's reader (for an integer of a flat table, an IntField line in
// field_tables.cc instead), the key in that reader's known-key list, its
// entry in reload.cc's table (reloadable or restart-only),
// docs/CONFIGURATION.md and deploy/sluice.toml.

#include "sluice/config/config.h"

#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "checks.h"
#include "field_tables.h"
#include "fields.h"
#include "sluice/queue/retry_schedule.h"
#include "sluice/queue/shaping.h"
#include "tables.h"
#include "toml_walk.h"
#include "views.h"
#include "webhook_config.h"

namespace sluice::config {
namespace {

// Every top-level table and its reader. One table a line: branches that add
// tables then merge without conflicts.
// clang-format off
constexpr TableReader kTableReaders[] = {
    {"server", ReadServerTable, nullptr},
    {"spool", ReadSpoolTable, nullptr},
    {"log", ReadLogTable, nullptr},
    {"pickup", ReadPickupTable, nullptr},
    {"delivery", ReadDeliveryTable, nullptr},
    {"retry", ReadRetryTable, nullptr},
    {"admin", ReadAdminTable, nullptr},
    {"shaping", nullptr, ReadShapingTables},
    {"route", nullptr, ReadRouteTables},
    {"tls", ReadTlsTable, nullptr},
    {"auth", ReadAuthTable, nullptr},
    {"dkim", ReadDkimTable, nullptr},
    {"http", ReadHttpTable, nullptr},
    {"webhook", nullptr, ReadWebhookTables},
};
// clang-format on

// A configuration file larger than this is not a configuration file.
constexpr size_t kMaxFileSize = 1 * kMiB;

const TableReader* FindTableReader(absl::string_view name) {
  for (const TableReader& reader : kTableReaders) {
    if (reader.name == name) return &reader;
  }
  return nullptr;
}

// "the tables are [server], ..., [[shaping]] and [[route]]": the tables in
// registry order, then the arrays of tables.
std::string TableList() {
  std::vector<std::string> names;
  for (const TableReader& r : kTableReaders) {
    if (r.read_table != nullptr) names.push_back(absl::StrCat("[", r.name, "]"));
  }
  for (const TableReader& r : kTableReaders) {
    if (r.read_array != nullptr) names.push_back(absl::StrCat("[[", r.name, "]]"));
  }
  std::string out = "the tables are ";
  for (size_t i = 0; i < names.size(); ++i) {
    const absl::string_view separator = i == 0 ? "" : i + 1 == names.size() ? " and " : ", ";
    absl::StrAppend(&out, separator, names[i]);
  }
  return out;
}

absl::Status UnknownAtRoot(const Walk& walk, const toml::key& key, const toml::node& node) {
  const absl::string_view name = Sv(key.str());
  if (node.is_table() || node.is_array_of_tables()) {
    std::vector<absl::string_view> tables;
    for (const TableReader& r : kTableReaders) tables.push_back(r.name);
    return walk.Error(key, KeyText(name),
                      absl::StrCat("unknown table (", TableList(), ")", SuggestFrom(tables, name)));
  }
  return walk.Error(key, KeyText(name),
                    absl::StrCat("unknown key outside any table (", TableList(), ")"));
}

// Checks that `node` has the shape the reader wants, then runs it.
absl::Status ReadTopLevel(Walk& walk, const TableReader& reader, const toml::node& node) {
  if (reader.read_array != nullptr) {
    const toml::array* array = node.as_array();
    // An empty array ("route = []") is no entries: it clears the list.
    if (array == nullptr || (!array->empty() && !array->is_array_of_tables())) {
      return walk.Error(node, reader.name,
                        absl::StrCat("expected an array of tables, written [[", reader.name,
                                     "]], got ", TypeName(node)));
    }
    return reader.read_array(walk, *array);
  }
  const toml::table* table = node.as_table();
  if (table == nullptr) {
    return walk.Error(node, reader.name, absl::StrCat("expected a table, got ", TypeName(node)));
  }
  return reader.read_table(walk, reader.name, *table);
}

absl::Status ReadRoot(Walk& walk, const toml::table& root) {
  for (const auto& [key, node] : InFileOrder(root)) {
    const TableReader* reader = FindTableReader(Sv(key->str()));
    absl::Status status =
        reader != nullptr ? ReadTopLevel(walk, *reader, *node) : UnknownAtRoot(walk, *key, *node);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ApplyToml(std::string_view toml_text, std::string_view source_name, Config& config) {
  const std::string source = source_name.empty() ? "<config>" : std::string(source_name);
  toml::parse_result result = toml::parse(toml_text, source);
  if (!result) {
    const toml::parse_error& error = result.error();
    return absl::InvalidArgumentError(
        absl::StrCat(source, ":", error.source().begin.line, ": syntax error (column ",
                     error.source().begin.column, "): ", Sv(error.description())));
  }
  // Work on a copy so that a bad file leaves `config` as it was.
  Config updated = config;
  Walk walk(source, updated);
  if (absl::Status status = ReadRoot(walk, result.table()); !status.ok()) return status;
  config = std::move(updated);
  return absl::OkStatus();
}

absl::Status ApplyTomlFile(const std::string& path, Config& config) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("cannot open ", path));
  std::string text;
  char buf[16 * 1024];
  absl::Status status;
  while (true) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = absl::ErrnoToStatus(errno, absl::StrCat("cannot read ", path));
      break;
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxFileSize) {
      status = absl::InvalidArgumentError(
          absl::StrCat(path, ": larger than ", kMaxFileSize, " bytes; not a configuration file?"));
      break;
    }
  }
  close(fd);
  if (!status.ok()) return status;
  return ApplyToml(text, path, config);
}

std::string DefaultLogFile(std::string_view spool_dir) {
  absl::string_view spool = Sv(spool_dir);
  while (spool.size() > 1 && absl::ConsumeSuffix(&spool, "/")) {
  }
  const size_t slash = spool.rfind('/');
  if (slash == absl::string_view::npos) return "./log/sluice.log";  // "spool": beside it, here
  return absl::StrCat(spool.substr(0, slash), "/log/sluice.log");   // "/spool" -> "/log/..."
}

// ---------------------------------------------------------------------------
// Finalize(): the checks once every source (file, then flags) is applied, in
// the order below, which is the order of their errors. Each step checks one
// table (or the relation between tables) and computes the derived values
// into Derived, which Finalize() commits only when every step passed.
// ---------------------------------------------------------------------------

namespace {

struct Derived {
  std::string hostname;
  std::vector<base::SocketAddress> listen;
  std::vector<base::SocketAddress> http;
  base::NetworkSet relay;
  std::vector<std::string> dns;
  std::vector<queue::ShapingRule> shaping;
  std::vector<Route> routes;
};

absl::Status Invalid(absl::string_view where, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", problem));
}

// server.hostname, or gethostname() when it is not set.
absl::StatusOr<std::string> FinalHostname(const std::string& hostname) {
  if (!hostname.empty()) {
    if (absl::Status s = CheckHostname(hostname); !s.ok()) {
      return Invalid("server.hostname", s.message());
    }
    return hostname;
  }
  char buf[HOST_NAME_MAX + 1] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) {
    return absl::ErrnoToStatus(errno, "server.hostname: not set, and gethostname() failed");
  }
  if (absl::Status s = CheckHostname(buf); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "server.hostname: not set, and the name from gethostname() will not do: ", s.message(),
        "; set server.hostname or --hostname"));
  }
  return std::string(buf);
}

// [server]: the relations of its limits, listen, relay_from, hostname.
absl::Status FinalizeServer(Config& c, Derived& d) {
  // The default line limit follows a smaller message size.
  if (c.max_data_line_length == Config().max_data_line_length &&
      c.max_message_size < c.max_data_line_length) {
    c.max_data_line_length = c.max_message_size;
  }
  if (c.max_data_line_length > c.max_message_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("server.max_data_line_length (", c.max_data_line_length,
                     ") must not exceed server.max_message_size (", c.max_message_size, ")"));
  }
  size_t bad = 0;
  auto addresses = ParseListen(c.listen, &bad);
  if (!addresses.ok()) return Invalid("server.listen", addresses.status().message());
  auto networks = ParseNetworks(SplitNetworks(c.relay_from), &bad);
  if (!networks.ok()) return Invalid("server.relay_from", networks.status().message());
  auto host = FinalHostname(c.hostname);
  if (!host.ok()) return host.status();
  d.listen = *std::move(addresses);
  d.relay = *std::move(networks);
  d.hostname = *std::move(host);
  return absl::OkStatus();
}

// The paths of [spool], [log], [pickup] and [admin]; the default log file.
absl::Status FinalizePaths(Config& c) {
  if (absl::Status s = CheckPath(c.spool_dir, /*may_be_empty=*/false); !s.ok()) {
    return Invalid("spool.dir", s.message());
  }
  if (!c.log_file_set) {
    c.log_file = DefaultLogFile(c.spool_dir);
    c.log_file_set = true;
  }
  if (absl::Status s = CheckOptionalPath(c.log_file); !s.ok()) {
    return Invalid("log.file", s.message());
  }
  if (absl::Status s = CheckOptionalPath(c.pickup_dir); !s.ok()) {
    return Invalid("pickup.dir", s.message());
  }
  if (absl::Status s = CheckOptionalPath(c.control_dir); !s.ok()) {
    return Invalid("admin.control_dir", s.message());
  }
  return absl::OkStatus();
}

// [http], and that it does not take an SMTP listen address.
absl::Status FinalizeHttp(const Config& c, Derived& d) {
  if (absl::Status s = CheckHttpListen(c.http_listen); !s.ok()) {
    return Invalid("http.listen", s.message());
  }
  if (absl::Status s = CheckOptionalPath(c.http_tokens_file); !s.ok()) {
    return Invalid("http.tokens_file", s.message());
  }
  if (c.http_listen.empty()) return absl::OkStatus();
  d.http.push_back(*base::SocketAddress::Parse(c.http_listen));
  for (const base::SocketAddress& smtp : d.listen) {
    if (smtp.ToString() == d.http[0].ToString()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "http.listen: ", c.http_listen, " is also an SMTP listen address (server.listen)"));
    }
  }
  return absl::OkStatus();
}

// [delivery] and [delivery.timeouts].
absl::Status FinalizeDelivery(const Config& c, Derived& d) {
  if (absl::Status s = CheckFields(DeliveryFields(), &c, "delivery"); !s.ok()) return s;
  if (absl::Status s = CheckFields(TimeoutFields(), &c.timeouts, "delivery.timeouts"); !s.ok()) {
    return s;
  }
  size_t bad = 0;
  auto dns = NormalizeDnsServers(c.dns_servers, &bad);
  if (!dns.ok()) return Invalid("delivery.dns", dns.status().message());
  if (absl::Status s = CheckSourceAddress(c.source_address); !s.ok()) {
    return Invalid("delivery.source_address", s.message());
  }
  if (absl::Status s = CheckOptionalHostname(c.helo_name); !s.ok()) {
    return Invalid("delivery.helo_name", s.message());
  }
  d.dns = *std::move(dns);
  return absl::OkStatus();
}

// [retry], then queue::RetrySchedule's own checks.
absl::Status FinalizeRetry(const Config& c) {
  if (absl::Status s = CheckFields(RetryFields(), &c.retry, "retry"); !s.ok()) return s;
  if (c.retry.intervals.size() > kMaxRetryIntervals) {
    return absl::InvalidArgumentError(absl::StrCat("retry.intervals: at most ", kMaxRetryIntervals,
                                                   " entries, got ", c.retry.intervals.size()));
  }
  for (queue::Micros interval : c.retry.intervals) {
    if (!InRange(interval, kRetryIntervalRange)) {
      return absl::InvalidArgumentError(
          absl::StrCat("retry.intervals: ", RangeText(Kind::kMicros, kRetryIntervalRange), ", got ",
                       FormatDuration(interval)));
    }
  }
  return queue::RetrySchedule::Validate(c.retry);
}

// [[shaping]]: the per-rule checks name the key; Create() then checks the
// set (duplicates) and stays the authority on what the queue accepts.
absl::Status FinalizeShaping(const Config& c, Derived& d) {
  std::vector<queue::ShapingRule> rules = c.shaping;
  for (queue::ShapingRule& rule : rules) {
    const std::string where = absl::StrCat(" (rule '", rule.pattern, "')");
    if (absl::Status s = CheckPattern(rule.pattern); !s.ok()) {
      return Invalid("shaping.pattern", s.message());
    }
    rule.pattern = NormalizeName(rule.pattern);
    if (absl::Status s = CheckFields(ShapingFields(), &rule.params, "shaping", where); !s.ok()) {
      return s;
    }
    if (rule.params.backoff_patterns.size() > kMaxBackoffPatterns) {
      return absl::InvalidArgumentError(
          absl::StrCat("shaping.backoff_patterns", where, ": at most ", kMaxBackoffPatterns,
                       " entries, got ", rule.params.backoff_patterns.size()));
    }
    for (const std::string& p : rule.params.backoff_patterns) {
      if (absl::Status s = CheckBackoffPattern(p); !s.ok()) {
        return Invalid(absl::StrCat("shaping.backoff_patterns", where), s.message());
      }
    }
  }
  if (auto policy = queue::ShapingPolicy::Create(rules); !policy.ok()) {
    return Invalid("shaping", policy.status().message());
  }
  d.shaping = std::move(rules);
  return absl::OkStatus();
}

// [[route]]
absl::Status FinalizeRoutes(const Config& c, Derived& d) {
  std::vector<Route> checked;
  for (const Route& route : c.routes) {
    Route r = route;
    if (absl::Status s = CheckPattern(r.pattern); !s.ok()) {
      return Invalid("route.domain", s.message());
    }
    r.pattern = NormalizeName(r.pattern);
    // The host and port as ParseNextHop would have produced them.
    const std::string hop = absl::StrCat("[", r.host, "]:", r.port);
    if (absl::Status s = ParseNextHop(hop, r); !s.ok()) {
      return Invalid(absl::StrCat("route.next_hop (domain '", r.pattern, "')"), s.message());
    }
    for (const Route& seen : checked) {
      if (seen.pattern == r.pattern) {
        return absl::InvalidArgumentError(
            absl::StrCat("route.domain: '", r.pattern, "' has two routes"));
      }
    }
    checked.push_back(std::move(r));
  }
  d.routes = std::move(checked);
  return absl::OkStatus();
}

// [dkim] default_domain names the signers it uses through their patterns.
absl::Status CheckDkimDefault(const Config& c) {
  if (c.dkim_default_domain.empty()) return absl::OkStatus();
  for (const DkimSigner& s : c.dkim_signers) {
    absl::string_view p = s.pattern;
    if (p == c.dkim_default_domain ||
        (absl::ConsumePrefix(&p, "*") && absl::EndsWith(c.dkim_default_domain, p))) {
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "dkim.default_domain: no [[dkim.signer]] has a domain matching '", c.dkim_default_domain,
      "' (the default domain signs with its own signers' keys)"));
}

}  // namespace

absl::Status Config::Finalize() {
  // Ranges again: command-line flags do not pass through the TOML reader.
  for (const IntField& field : IntFields()) {
    if (absl::Status s = field.check(field, *this); !s.ok()) return s;
  }
  Derived d;
  if (absl::Status s = FinalizeServer(*this, d); !s.ok()) return s;
  if (absl::Status s = FinalizePaths(*this); !s.ok()) return s;
  if (absl::Status s = FinalizeHttp(*this, d); !s.ok()) return s;
  if (absl::Status s = FinalizeDelivery(*this, d); !s.ok()) return s;
  if (absl::Status s = FinalizeRetry(*this); !s.ok()) return s;
  if (absl::Status s = FinalizeShaping(*this, d); !s.ok()) return s;
  if (absl::Status s = FinalizeRoutes(*this, d); !s.ok()) return s;

  hostname = std::move(d.hostname);
  listen_addresses = std::move(d.listen);
  http_addresses = std::move(d.http);
  relay_networks = std::move(d.relay);
  if (helo_name.empty()) helo_name = hostname;
  if (control_dir.empty()) {
    control_dir = absl::StrCat(absl::StripSuffix(spool_dir, "/"), "/control");
  }
  dns_servers = std::move(d.dns);
  shaping = std::move(d.shaping);
  routes = std::move(d.routes);
  if (absl::Status s = CheckWebhooks(*this); !s.ok()) return s;
  return CheckDkimDefault(*this);
}

}  // namespace sluice::config
