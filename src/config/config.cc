// Reads Sluice's TOML configuration into config::Config and checks the result.
//
// ApplyToml() accepts only the keys it knows; anything else (unknown table or
// key, wrong type, value out of range) is an absl::InvalidArgumentError of the
// form "<source>:<line>: <table>.<key>: <problem>". Config::Finalize() checks
// the same ranges again, because command-line flags bypass the TOML reader,
// then the relations between values, and fills the derived fields.

#include "sluice/config/config.h"

#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

// The Debian build of toml++ is a shared library compiled with exceptions.
// This file compiles the parser inline with exceptions off instead, so that
// toml::parse() returns a toml::parse_result and never throws.
#undef TOML_SHARED_LIB
#define TOML_SHARED_LIB 0
#undef TOML_HEADER_ONLY
#define TOML_HEADER_ONLY 1
#undef TOML_EXCEPTIONS
#define TOML_EXCEPTIONS 0
#include <toml++/toml.h>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/types/span.h"
#include "sluice/base/limits.h"

namespace sluice::config {
namespace {

// Debian's Abseil has its own absl::string_view, a type apart from
// std::string_view (elsewhere the two are one type and these are no-ops).
// Inside this file strings are absl::string_view; these cross the border.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }
std::string_view Std(absl::string_view s) { return std::string_view(s.data(), s.size()); }

// ---------------------------------------------------------------------------
// Bounds of the integer settings. Both ends are inclusive. The reasons:
//
//   server.shards                0 .. 256        0 = one per CPU; ids carry the shard
//                                                in 8 bits (limits::kShardsMax).
//   server.max_message_size      1 KiB .. 2 GiB  below 1 KiB not even the headers fit;
//                                                2 GiB is far past any real mail and
//                                                keeps SIZE within 32 bits.
//   server.max_recipients        1 .. 100,000    RFC 5321 4.5.3.1.8 asks for at least
//                                                100; more than 100k in one transaction
//                                                is a runaway client.
//   server.max_line_length       512 .. 2,048    RFC 5321 4.5.3.1.4 minimum; the command
//                                                buffers are sized for
//                                                limits::kCommandLineMax.
//   server.max_data_line_length  78 .. 1 MiB     78 is RFC 5322's recommended line; RFC
//                                                5321 4.5.3.1.6 says 1,000. Past 1 MiB
//                                                a "line" is binary junk.
//   server.max_connections       1 .. 1,000,000  must stay under the open-file limit
//                                                (LimitNOFILE=1048576 in the unit).
//   server.max_errors            1 .. 1,000
//   server.idle_timeout_s        1 .. 86,400     RFC 5321 4.5.3.2.7 asks for 300; a day
//   server.data_timeout_s        1 .. 86,400     is the most that makes any sense.
//   server.shutdown_grace_s      0 .. 3,600      0 = close at once on SIGTERM.
//   spool.min_free_bytes         0 .. 1 PiB      0 = no free-space check.
//   pickup.scan_interval_s       1 .. 86,400     inotify does the work; the scan catches
//                                                what it missed (overflow, restarts).
// ---------------------------------------------------------------------------

struct Range {
  uint64_t min;
  uint64_t max;
};

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * kKiB;
constexpr uint64_t kGiB = 1024 * kMiB;
constexpr uint64_t kPiB = 1024 * 1024 * kGiB;

constexpr Range kShardsRange{0, static_cast<uint64_t>(limits::kShardsMax)};
constexpr Range kMessageSizeRange{1 * kKiB, 2 * kGiB};
constexpr Range kRecipientsRange{1, 100'000};
constexpr Range kLineLengthRange{512, limits::kCommandLineMax};
constexpr Range kDataLineLengthRange{78, 1 * kMiB};
constexpr Range kConnectionsRange{1, 1'000'000};
constexpr Range kErrorsRange{1, 1'000};
constexpr Range kTimeoutRange{1, 86'400};
constexpr Range kGraceRange{0, 3'600};
constexpr Range kMinFreeRange{0, 1 * kPiB};

// A configuration file larger than this is not a configuration file.
constexpr size_t kMaxFileSize = 1 * kMiB;

std::string RangeText(Range r) { return absl::StrCat("must be between ", r.min, " and ", r.max); }

template <typename T>
bool InRange(T value, Range r) {
  if constexpr (std::is_signed_v<T>) {
    if (value < 0) return false;
  }
  const auto v = static_cast<uint64_t>(value);
  return v >= r.min && v <= r.max;
}

// One integer setting: where it lives in the file, its bounds, and how to
// store and check it. Built by MakeIntField<&Config::member>.
struct IntField {
  absl::string_view table;
  absl::string_view key;
  Range range;
  void (*set)(Config&, uint64_t);                         // value already in range
  absl::Status (*check)(const IntField&, const Config&);  // for Finalize()
};

template <auto kMember>
constexpr IntField MakeIntField(absl::string_view table, absl::string_view key, Range range) {
  using T = std::remove_reference_t<decltype(std::declval<Config&>().*kMember)>;
  return IntField{table, key, range, [](Config& c, uint64_t v) { c.*kMember = static_cast<T>(v); },
                  [](const IntField& f, const Config& c) {
                    const T value = c.*kMember;
                    if (InRange(value, f.range)) return absl::OkStatus();
                    return absl::InvalidArgumentError(absl::StrCat(
                        f.table, ".", f.key, ": ", RangeText(f.range), ", got ", value));
                  }};
}

const IntField kIntFields[] = {
    MakeIntField<&Config::shards>("server", "shards", kShardsRange),
    MakeIntField<&Config::max_message_size>("server", "max_message_size", kMessageSizeRange),
    MakeIntField<&Config::max_recipients>("server", "max_recipients", kRecipientsRange),
    MakeIntField<&Config::max_line_length>("server", "max_line_length", kLineLengthRange),
    MakeIntField<&Config::max_data_line_length>("server", "max_data_line_length",
                                                kDataLineLengthRange),
    MakeIntField<&Config::max_connections>("server", "max_connections", kConnectionsRange),
    MakeIntField<&Config::max_errors>("server", "max_errors", kErrorsRange),
    MakeIntField<&Config::idle_timeout_s>("server", "idle_timeout_s", kTimeoutRange),
    MakeIntField<&Config::data_timeout_s>("server", "data_timeout_s", kTimeoutRange),
    MakeIntField<&Config::shutdown_grace_s>("server", "shutdown_grace_s", kGraceRange),
    MakeIntField<&Config::spool_min_free_bytes>("spool", "min_free_bytes", kMinFreeRange),
    MakeIntField<&Config::pickup_scan_interval_s>("pickup", "scan_interval_s", kTimeoutRange),
};

const IntField* FindIntField(absl::string_view table, absl::string_view key) {
  for (const IntField& f : kIntFields) {
    if (f.table == table && f.key == key) return &f;
  }
  return nullptr;
}

// Every key of every table, for "did you mean" hints.
constexpr absl::string_view kServerKeys[] = {
    "listen",           "hostname",       "shards",          "relay_from",
    "max_message_size", "max_recipients", "max_line_length", "max_data_line_length",
    "max_connections",  "max_errors",     "idle_timeout_s",  "data_timeout_s",
    "shutdown_grace_s", "bare_linefeed"};
constexpr absl::string_view kSpoolKeys[] = {"dir", "min_free_bytes"};
constexpr absl::string_view kLogKeys[] = {"file"};
constexpr absl::string_view kPickupKeys[] = {"dir", "scan_interval_s"};

size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// "; did you mean 'max_recipients'?" for a near miss, else "".
std::string Suggestion(absl::string_view table, absl::string_view key) {
  absl::Span<const absl::string_view> known;
  if (table == "server") known = kServerKeys;
  if (table == "spool") known = kSpoolKeys;
  if (table == "log") known = kLogKeys;
  if (table == "pickup") known = kPickupKeys;
  absl::string_view best;
  size_t best_distance = 3;  // at most two typos
  for (absl::string_view candidate : known) {
    const size_t d = EditDistance(absl::AsciiStrToLower(key), candidate);
    if (d < best_distance) {
      best = candidate;
      best_distance = d;
    }
  }
  return best.empty() ? "" : absl::StrCat("; did you mean '", best, "'?");
}

// ---------------------------------------------------------------------------
// Value checks shared by the TOML reader and Finalize(). They return a bare
// problem ("must not be empty"); the caller says where.
// ---------------------------------------------------------------------------

// RFC 5321 Domain: dot-separated labels of letters, digits and inner hyphens.
absl::Status CheckHostname(absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("must not be empty");
  if (name.size() > limits::kDomainMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", name, "' is longer than ", limits::kDomainMax, " characters"));
  }
  for (absl::string_view label : absl::StrSplit(name, '.')) {
    bool ok = !label.empty() && label.size() <= 63 && label.front() != '-' && label.back() != '-';
    for (char c : label) ok = ok && (absl::ascii_isalnum(c) || c == '-');
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", name, "' is not a valid domain name (letters, digits, inner hyphens, dots)"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckPath(absl::string_view path, bool may_be_empty) {
  if (path.empty() && !may_be_empty) return absl::InvalidArgumentError("must not be empty");
  if (path.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError("must not contain a NUL character");
  }
  return absl::OkStatus();
}

absl::Status CheckBareLinefeed(absl::string_view policy) {
  if (policy == "reject") return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("'", policy, "' is not a policy; the only one is \"reject\""));
}

// Parses the listen addresses. On failure `*bad` is the index of the culprit.
absl::StatusOr<std::vector<base::SocketAddress>> ParseListen(const std::vector<std::string>& listen,
                                                             size_t* bad) {
  if (listen.empty()) {
    *bad = 0;
    return absl::InvalidArgumentError("must list at least one ADDR:PORT");
  }
  std::vector<base::SocketAddress> out;
  for (size_t i = 0; i < listen.size(); ++i) {
    *bad = i;
    auto addr = base::SocketAddress::Parse(listen[i]);
    if (!addr.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", listen[i], "' is not ADDR:PORT: ", addr.status().message()));
    }
    for (const base::SocketAddress& seen : out) {
      if (seen.ToString() == addr->ToString()) {
        return absl::InvalidArgumentError(
            seen.ToString() == listen[i]
                ? absl::StrCat("'", listen[i], "' is listed twice")
                : absl::StrCat("'", listen[i], "' is listed twice (as ", seen.ToString(), ")"));
      }
    }
    out.push_back(*addr);
  }
  return out;
}

// Parses CIDR networks. On failure `*bad` is the index of the culprit.
absl::StatusOr<base::NetworkSet> ParseNetworks(const std::vector<absl::string_view>& parts,
                                               size_t* bad) {
  base::NetworkSet set;
  for (size_t i = 0; i < parts.size(); ++i) {
    *bad = i;
    auto net = base::Network::Parse(Std(parts[i]));
    if (!net.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", parts[i], "' is not a CIDR network: ", net.status().message()));
    }
    set.Add(*net);
  }
  if (set.networks().empty()) {
    *bad = 0;
    return absl::InvalidArgumentError(
        "must name at least one network (a relay that relays for nobody is useless)");
  }
  return set;
}

std::vector<absl::string_view> SplitNetworks(absl::string_view comma_separated) {
  std::vector<absl::string_view> parts;
  for (absl::string_view p : absl::StrSplit(comma_separated, ',', absl::SkipWhitespace())) {
    parts.push_back(absl::StripAsciiWhitespace(p));
  }
  return parts;
}

// ---------------------------------------------------------------------------
// The TOML reader.
// ---------------------------------------------------------------------------

absl::string_view TypeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a floating-point number";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

// A key as it would be written in TOML: bare if it can be, quoted otherwise.
std::string KeyText(absl::string_view key) {
  bool bare = !key.empty();
  for (char c : key) bare = bare && (absl::ascii_isalnum(c) || c == '_' || c == '-');
  if (bare) return std::string(key);
  std::string out = "\"";
  for (char c : key) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// The entries of a table in the order they appear in the file, so that the
// first error reported is the first one in the file.
std::vector<std::pair<const toml::key*, const toml::node*>> InFileOrder(const toml::table& t) {
  std::vector<std::pair<const toml::key*, const toml::node*>> entries;
  for (auto&& [key, node] : t) entries.emplace_back(&key, &node);
  std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    const toml::source_position& pa = a.first->source().begin;
    const toml::source_position& pb = b.first->source().begin;
    return pa.line != pb.line ? pa.line < pb.line : pa.column < pb.column;
  });
  return entries;
}

class TomlReader {
 public:
  TomlReader(absl::string_view source, Config& config) : source_(source), config_(config) {}

  absl::Status ReadRoot(const toml::table& root) {
    for (const auto& [key, node] : InFileOrder(root)) {
      const absl::string_view name = Sv(key->str());
      absl::Status status;
      if (name == "server" || name == "spool" || name == "log" || name == "pickup") {
        const toml::table* table = node->as_table();
        if (table == nullptr) {
          return Error(*node, name, absl::StrCat("expected a table, got ", TypeName(*node)));
        }
        status = ReadTable(name, *table);
      } else if (node->is_table()) {
        return Error(*key, KeyText(name),
                     "unknown table (the tables are [server], [spool], [log] and [pickup])");
      } else {
        return Error(*key, KeyText(name),
                     "unknown key outside any table (the tables are [server], [spool], [log] "
                     "and [pickup])");
      }
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }

 private:
  // `where` is anything with a source(): a node or a key.
  template <typename Located>
  absl::Status Error(const Located& where, absl::string_view dotted, absl::string_view problem) {
    return absl::InvalidArgumentError(
        absl::StrCat(source_, ":", where.source().begin.line, ": ", dotted, ": ", problem));
  }

  absl::Status ReadTable(absl::string_view table, const toml::table& t) {
    for (const auto& [key, node] : InFileOrder(t)) {
      const absl::string_view name = Sv(key->str());
      const std::string dotted = absl::StrCat(table, ".", KeyText(name));
      absl::Status status = ReadKey(table, name, dotted, *key, *node);
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }

  absl::Status ReadKey(absl::string_view table, absl::string_view key, const std::string& dotted,
                       const toml::key& key_node, const toml::node& node) {
    if (const IntField* field = FindIntField(table, key)) {
      const auto* value = node.as_integer();
      if (value == nullptr) {
        return Error(node, dotted, absl::StrCat("expected an integer, got ", TypeName(node)));
      }
      const int64_t v = value->get();
      if (!InRange(v, field->range)) {
        return Error(node, dotted, absl::StrCat(RangeText(field->range), ", got ", v));
      }
      field->set(config_, static_cast<uint64_t>(v));
      return absl::OkStatus();
    }

    if (table == "server" && key == "listen") return ReadListen(dotted, node);
    if (table == "server" && key == "relay_from") return ReadRelayFrom(dotted, node);

    std::string* target = nullptr;
    absl::Status (*check)(absl::string_view) = nullptr;
    if (table == "server" && key == "hostname") {
      // Empty means "ask gethostname()", as it does by default.
      target = &config_.hostname;
      check = [](absl::string_view s) { return s.empty() ? absl::OkStatus() : CheckHostname(s); };
    } else if (table == "server" && key == "bare_linefeed") {
      check = CheckBareLinefeed;  // one policy so far: nothing to store
    } else if (table == "spool" && key == "dir") {
      target = &config_.spool_dir;
      check = [](absl::string_view s) { return CheckPath(s, /*may_be_empty=*/false); };
    } else if (table == "log" && key == "file") {
      target = &config_.log_file;
      check = [](absl::string_view s) { return CheckPath(s, /*may_be_empty=*/true); };
    } else if (table == "pickup" && key == "dir") {
      target = &config_.pickup_dir;
      check = [](absl::string_view s) { return CheckPath(s, /*may_be_empty=*/true); };
    } else if (node.is_table()) {
      return Error(key_node, dotted, absl::StrCat("unknown table in [", table, "]"));
    } else {
      return Error(key_node, dotted,
                   absl::StrCat("unknown key in [", table, "]", Suggestion(table, key)));
    }

    const auto* value = node.as_string();
    if (value == nullptr) {
      return Error(node, dotted, absl::StrCat("expected a string, got ", TypeName(node)));
    }
    if (absl::Status s = check(value->get()); !s.ok()) return Error(node, dotted, s.message());
    if (target != nullptr) *target = value->get();
    return absl::OkStatus();
  }

  absl::Status ReadListen(const std::string& dotted, const toml::node& node) {
    const toml::array* array = node.as_array();
    if (array == nullptr) {
      return Error(
          node, dotted,
          absl::StrCat("expected an array of \"ADDR:PORT\" strings, got ", TypeName(node)));
    }
    std::vector<std::string> listen;
    for (const toml::node& element : *array) {
      const auto* s = element.as_string();
      if (s == nullptr) {
        return Error(element, dotted,
                     absl::StrCat("expected \"ADDR:PORT\" strings, got ", TypeName(element)));
      }
      listen.push_back(s->get());
    }
    size_t bad = 0;
    auto parsed = ParseListen(listen, &bad);
    if (!parsed.ok()) {
      return Error(array->empty() ? node : *array->get(bad), dotted, parsed.status().message());
    }
    config_.listen = std::move(listen);
    return absl::OkStatus();
  }

  // Either "cidr,cidr" or ["cidr", "cidr"]; stored comma-joined.
  absl::Status ReadRelayFrom(const std::string& dotted, const toml::node& node) {
    std::vector<absl::string_view> parts;
    std::vector<const toml::node*> where;  // the node that holds parts[i]
    if (const auto* s = node.as_string()) {
      parts = SplitNetworks(s->get());
      where.assign(parts.size(), &node);
    } else if (const toml::array* array = node.as_array()) {
      for (const toml::node& element : *array) {
        const auto* e = element.as_string();
        if (e == nullptr) {
          return Error(element, dotted,
                       absl::StrCat("expected CIDR strings, got ", TypeName(element)));
        }
        parts.push_back(absl::StripAsciiWhitespace(e->get()));
        where.push_back(&element);
      }
    } else {
      return Error(node, dotted,
                   absl::StrCat("expected a string \"cidr,cidr\" or an array of CIDR strings, got ",
                                TypeName(node)));
    }
    size_t bad = 0;
    auto parsed = ParseNetworks(parts, &bad);
    if (!parsed.ok()) {
      return Error(where.empty() ? node : *where[bad], dotted, parsed.status().message());
    }
    config_.relay_from = absl::StrJoin(parts, ",");
    return absl::OkStatus();
  }

  absl::string_view source_;
  Config& config_;
};

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
  TomlReader reader(source, updated);
  if (absl::Status status = reader.ReadRoot(result.table()); !status.ok()) return status;
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

absl::Status Config::Finalize() {
  // Ranges again: command-line flags do not pass through the TOML reader.
  for (const IntField& field : kIntFields) {
    if (absl::Status s = field.check(field, *this); !s.ok()) return s;
  }

  // Relations.
  if (max_data_line_length > max_message_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("server.max_data_line_length (", max_data_line_length,
                     ") must not exceed server.max_message_size (", max_message_size, ")"));
  }

  size_t bad = 0;
  auto addresses = ParseListen(listen, &bad);
  if (!addresses.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("server.listen: ", addresses.status().message()));
  }
  auto networks = ParseNetworks(SplitNetworks(relay_from), &bad);
  if (!networks.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("server.relay_from: ", networks.status().message()));
  }

  std::string host = hostname;
  if (host.empty()) {
    char buf[HOST_NAME_MAX + 1] = {};
    if (gethostname(buf, sizeof buf - 1) != 0) {
      return absl::ErrnoToStatus(errno, "server.hostname: not set, and gethostname() failed");
    }
    host = buf;
    if (absl::Status s = CheckHostname(host); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "server.hostname: not set, and the name from gethostname() will not do: ", s.message(),
          "; set server.hostname or --hostname"));
    }
  } else if (absl::Status s = CheckHostname(host); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("server.hostname: ", s.message()));
  }

  if (absl::Status s = CheckPath(spool_dir, /*may_be_empty=*/false); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("spool.dir: ", s.message()));
  }
  if (absl::Status s = CheckPath(log_file, /*may_be_empty=*/true); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("log.file: ", s.message()));
  }
  if (absl::Status s = CheckPath(pickup_dir, /*may_be_empty=*/true); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("pickup.dir: ", s.message()));
  }

  hostname = std::move(host);
  listen_addresses = *std::move(addresses);
  relay_networks = *std::move(networks);
  return absl::OkStatus();
}

}  // namespace sluice::config
