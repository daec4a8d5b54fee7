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
#include <cmath>
#include <cstdint>
#include <iterator>
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
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/types/span.h"
#include "sluice/base/limits.h"
#include "sluice/base/strings.h"
#include "sluice/queue/token_bucket.h"

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
//   server.transaction_timeout_s 1 .. 86,400     deadlines that progress does not reset;
//   server.session_timeout_s     1 .. 604,800    a week is far past any real session.
//   server.max_connections_per_ip 0 .. 1,000,000 0 = no limit (relay_from is exempt).
//   server.max_connection_rate_per_ip
//                                0 .. 1,000,000  per minute; 0 = no limit.
//   server.receive_memory_per_shard
//                                1 MiB .. 64 GiB copied body bytes before early spilling.
//   server.shutdown_grace_s      0 .. 3,600      0 = close at once on SIGTERM.
//   server.memory_trim_interval_s 0 .. 86,400   0 = never; below 1 s a trim would
//                                                run every few loop turns of a shard.
//   server.max_hops              1 .. 1,000      Postfix's hopcount_limit is 50; a real
//                                                path is rarely past 20 hops.
//   server.metrics_top_destinations
//                                0 .. 500        0 = only domain="other"; past a few
//                                                hundred a scrape is megabytes and every
//                                                row is a Prometheus series per family.
//   spool.min_free_bytes         0 .. 1 PiB      0 = no free-space check.
//   pickup.scan_interval_s       1 .. 86,400     inotify does the work; the scan catches
//                                                what it missed (overflow, restarts).
//   pickup.max_batch_recipients  1 .. 20,000,000 a batch's stored recipients and values
//                                                must also fit in 1 GiB (the envelope's
//                                                u32 size), ~50 bytes a recipient.
//   pickup.max_recipients_file_size
//                                1 KiB .. 16 GiB the CSV is streamed, never held whole.
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
constexpr Range kTrimIntervalRange{0, 86'400};
constexpr Range kSessionTimeoutRange{1, 604'800};
constexpr Range kPerIpRange{0, 1'000'000};
constexpr Range kReceiveMemoryRange{1 * kMiB, 64 * kGiB};
constexpr Range kHopsRange{1, 1'000};
constexpr Range kTopDestinationsRange{0, 500};
constexpr Range kMinFreeRange{0, 1 * kPiB};
constexpr Range kBatchRecipientsRange{1, 20'000'000};
constexpr Range kRecipientsFileRange{1 * kKiB, 16 * kGiB};
// [http]: a request must hold at least a request line and a few headers;
// 64 MiB is far past anything the admin API needs (it is held in memory).
constexpr Range kHttpRequestBytesRange{1 * kKiB, 64 * kMiB};
constexpr Range kHttpInjectBytesRange{1 * kKiB, 1024 * kMiB};
constexpr Range kHttpHeadersRange{1, 1'000};
constexpr Range kHttpClientsRange{1, 100'000};

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
    MakeIntField<&Config::transaction_timeout_s>("server", "transaction_timeout_s", kTimeoutRange),
    MakeIntField<&Config::session_timeout_s>("server", "session_timeout_s", kSessionTimeoutRange),
    MakeIntField<&Config::max_connections_per_ip>("server", "max_connections_per_ip", kPerIpRange),
    MakeIntField<&Config::max_connection_rate_per_ip>("server", "max_connection_rate_per_ip",
                                                      kPerIpRange),
    MakeIntField<&Config::receive_memory_per_shard>("server", "receive_memory_per_shard",
                                                    kReceiveMemoryRange),
    MakeIntField<&Config::shutdown_grace_s>("server", "shutdown_grace_s", kGraceRange),
    MakeIntField<&Config::memory_trim_interval_s>("server", "memory_trim_interval_s",
                                                  kTrimIntervalRange),
    MakeIntField<&Config::max_hops>("server", "max_hops", kHopsRange),
    MakeIntField<&Config::metrics_top_destinations>("server", "metrics_top_destinations",
                                                    kTopDestinationsRange),
    MakeIntField<&Config::spool_min_free_bytes>("spool", "min_free_bytes", kMinFreeRange),
    MakeIntField<&Config::pickup_scan_interval_s>("pickup", "scan_interval_s", kTimeoutRange),
    MakeIntField<&Config::pickup_max_batch_recipients>("pickup", "max_batch_recipients",
                                                       kBatchRecipientsRange),
    MakeIntField<&Config::pickup_max_recipients_file_size>("pickup", "max_recipients_file_size",
                                                           kRecipientsFileRange),
    MakeIntField<&Config::http_max_request_bytes>("http", "max_request_bytes",
                                                  kHttpRequestBytesRange),
    MakeIntField<&Config::http_max_inject_bytes>("http", "max_inject_bytes", kHttpInjectBytesRange),
    MakeIntField<&Config::http_max_headers>("http", "max_headers", kHttpHeadersRange),
    MakeIntField<&Config::http_idle_timeout_s>("http", "idle_timeout_s", kTimeoutRange),
    MakeIntField<&Config::http_request_timeout_s>("http", "request_timeout_s", kTimeoutRange),
    MakeIntField<&Config::http_max_clients>("http", "max_clients", kHttpClientsRange),
};

const IntField* FindIntField(absl::string_view table, absl::string_view key) {
  for (const IntField& f : kIntFields) {
    if (f.table == table && f.key == key) return &f;
  }
  return nullptr;
}

// Every key of every table, for "did you mean" hints.
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
constexpr absl::string_view kSpoolKeys[] = {"dir", "min_free_bytes"};
constexpr absl::string_view kLogKeys[] = {"file"};
constexpr absl::string_view kPickupKeys[] = {"dir",
                                             "group",
                                             "scan_interval_s",
                                             "max_batch_recipients",
                                             "max_recipients_file_size",
                                             "feedback_id_sender"};

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

// "; did you mean 'max_recipients'?" for a near miss among `known`, else "".
std::string SuggestFrom(absl::Span<const absl::string_view> known, absl::string_view key) {
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

std::string Suggestion(absl::string_view table, absl::string_view key) {
  absl::Span<const absl::string_view> known;
  if (table == "server") known = kServerKeys;
  if (table == "spool") known = kSpoolKeys;
  if (table == "log") known = kLogKeys;
  if (table == "pickup") known = kPickupKeys;
  return SuggestFrom(known, key);
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

// "local@domain" with a plain local part (letters, digits and RFC 5322
// atext punctuation, dots inside) and a domain as CheckHostname wants it:
// the address every <postmaster> RCPT is rewritten to. Empty: none.
absl::Status CheckPostmasterAddress(absl::string_view address) {
  if (address.empty()) return absl::OkStatus();
  const size_t at = address.rfind('@');
  const absl::string_view local = at == absl::string_view::npos ? "" : address.substr(0, at);
  bool ok = !local.empty() && local.size() <= limits::kLocalPartMax && local.front() != '.' &&
            local.back() != '.' && local.find("..") == absl::string_view::npos;
  for (char c : local) {
    ok = ok && (absl::ascii_isalnum(c) ||
                absl::string_view("!#$%&'*+-/=?^_`{|}~.").find(c) != absl::string_view::npos);
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", address, "' is not an address like postmaster@example.com"));
  }
  if (absl::Status s = CheckHostname(address.substr(at + 1)); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("domain of '", address, "': ", s.message()));
  }
  return absl::OkStatus();
}

absl::Status CheckBareLinefeed(absl::string_view policy) {
  if (policy == "reject") return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("'", policy, "' is not a policy; the only one is \"reject\""));
}

// ---------------------------------------------------------------------------
// Settings of the delivery tables ([delivery], [delivery.timeouts], [retry],
// [[shaping]]). Unlike the [server] integers above, these come in several
// kinds: durations are strings ("30s"), fractions are floats (0.5), and they
// live in nested structs (DeliveryTimeouts, queue::RetryConfig,
// queue::ShapeParams), so each Field reads and writes through a type-erased
// pointer to the struct that holds it. Bounds, both ends inclusive:
//
//   delivery.dns_timeout        10ms .. 60s     per try; c-ares doubles it per round.
//   delivery.dns_tries          1 .. 10
//   delivery.dns_max_in_flight  1 .. 4096      queries out at once, per shard
//   delivery.mx_port            1 .. 65535
//   delivery.max_recipients_per_transaction
//                               1 .. 100,000    RFC 5321 4.5.3.1.8: servers take >= 100.
//   delivery.idle_connection    0 .. 5m         0 = QUIT as soon as the queue is empty;
//                                               servers drop idle clients after 5m.
//   delivery.max_outbound_connections
//                               1 .. 1,000,000  per shard; mind the open-file limit.
//   delivery.timeouts.*         10ms .. 1h      RFC 5321 4.5.3.2 asks for 2-10 minutes;
//                                               short values are for tests.
//   retry.initial, .max_interval, .intervals[]
//                               10ms .. 30d
//   retry.max_age               10ms .. 365d
//   retry.factor                1 .. 100        below 1 the intervals would shrink.
//   retry.jitter                0 .. 0.5        RetrySchedule::Validate's limit.
//   shaping.max_connections     1 .. 100,000
//   shaping.max_messages_per_connection, the rates and bursts
//                               0 .. 1,000,000  0 = unlimited (or "one second's
//                                               worth" for bursts); TokenBucket's cap.
//   shaping.backoff_factor      0.001 .. 1      ShapeParams' (0, 1] in thousandths.
//   shaping.backoff_min         0.001 .. 1
//   shaping.backoff_duration    0 .. 1d
//   shaping.recovery_successes  1 .. 1,000,000
// ---------------------------------------------------------------------------

constexpr uint64_t kMilli = 1000;  // microseconds
constexpr uint64_t kSecond = queue::kSecond;
constexpr uint64_t kMinute = queue::kMinute;
constexpr uint64_t kHour = queue::kHour;
constexpr uint64_t kDay = queue::kDay;

enum class Kind {
  kUint,      // a TOML integer
  kBool,      // a TOML boolean
  kMillis,    // a duration string, stored in milliseconds
  kMicros,    // a duration string, stored in microseconds
  kPermille,  // a TOML float (or integer), stored in thousandths
};

struct Field {
  absl::string_view key;
  Kind kind;
  Range range;                          // kUint: the value; durations: microseconds;
                                        // kPermille: thousandths; kBool: unused
  uint64_t (*get)(const void* target);  // in the unit of `range`
  void (*set)(void* target, uint64_t value);
};

template <typename T>
struct MemberTraits;
template <typename C, typename M>
struct MemberTraits<M C::*> {
  using Class = C;
  using Type = M;
};

// A Field for `kMember`, a pointer to a data member of the struct that the
// reader passes as the target.
template <auto kMember, Kind kKind>
constexpr Field MakeField(absl::string_view key, Range range = {0, 1}) {
  using C = typename MemberTraits<decltype(kMember)>::Class;
  using M = typename MemberTraits<decltype(kMember)>::Type;
  return Field{key, kKind, range,
               [](const void* target) -> uint64_t {
                 const uint64_t v = static_cast<uint64_t>(static_cast<const C*>(target)->*kMember);
                 return kKind == Kind::kMillis ? v * kMilli : v;
               },
               [](void* target, uint64_t v) {
                 static_cast<C*>(target)->*kMember =
                     static_cast<M>(kKind == Kind::kMillis ? v / kMilli : v);
               }};
}

constexpr Range kDnsTimeoutRange{10 * kMilli, 60 * kSecond};
constexpr Range kDnsTriesRange{1, 10};
constexpr Range kDnsInFlightRange{1, 4096};
constexpr Range kPortRange{1, 65535};
constexpr Range kIdleConnectionRange{0, 5 * kMinute};
constexpr Range kOutboundConnectionsRange{1, 1'000'000};
constexpr Range kStepTimeoutRange{10 * kMilli, kHour};
constexpr Range kRetryIntervalRange{10 * kMilli, 30 * kDay};
constexpr Range kMaxAgeRange{10 * kMilli, 365 * kDay};
constexpr Range kFactorRange{1000, 100'000};
constexpr Range kJitterRange{0, 500};
constexpr Range kShapeConnectionsRange{1, 100'000};
constexpr Range kShapeCountRange{0, queue::TokenBucket::kMaxTokens};
constexpr Range kBackoffFractionRange{1, 1000};
constexpr Range kBackoffDurationRange{0, kDay};
constexpr Range kRecoveryRange{1, 1'000'000};

// Lists: most entries, longest entry.
constexpr size_t kMaxRetryIntervals = 100;
constexpr size_t kMaxBackoffPatterns = 100;
constexpr size_t kMaxBackoffPatternLength = 256;

// Target: Config.
const Field kDeliveryFields[] = {
    MakeField<&Config::delivery_enabled, Kind::kBool>("enabled"),
    MakeField<&Config::dns_timeout_ms, Kind::kMillis>("dns_timeout", kDnsTimeoutRange),
    MakeField<&Config::dns_tries, Kind::kUint>("dns_tries", kDnsTriesRange),
    MakeField<&Config::dns_max_in_flight, Kind::kUint>("dns_max_in_flight", kDnsInFlightRange),
    MakeField<&Config::mx_port, Kind::kUint>("mx_port", kPortRange),
    MakeField<&Config::max_recipients_per_transaction, Kind::kUint>(
        "max_recipients_per_transaction", kRecipientsRange),
    MakeField<&Config::outbound_pipelining, Kind::kBool>("pipelining"),
    MakeField<&Config::outbound_chunking, Kind::kBool>("chunking"),
    MakeField<&Config::idle_connection_ms, Kind::kMillis>("idle_connection", kIdleConnectionRange),
    MakeField<&Config::max_outbound_connections, Kind::kUint>("max_outbound_connections",
                                                              kOutboundConnectionsRange),
};
// [delivery] keys that are not Fields.
constexpr absl::string_view kDeliveryOtherKeys[] = {
    "dns", "source_address", "helo_name", "timeouts", "tls", "tls_ca_file", "tls_policy"};

// Target: DeliveryTimeouts.
const Field kTimeoutFields[] = {
    MakeField<&DeliveryTimeouts::connect_ms, Kind::kMillis>("connect", kStepTimeoutRange),
    MakeField<&DeliveryTimeouts::greeting_ms, Kind::kMillis>("greeting", kStepTimeoutRange),
    MakeField<&DeliveryTimeouts::ehlo_ms, Kind::kMillis>("ehlo", kStepTimeoutRange),
    MakeField<&DeliveryTimeouts::starttls_ms, Kind::kMillis>("starttls", kStepTimeoutRange),
    MakeField<&DeliveryTimeouts::mail_ms, Kind::kMillis>("mail", kStepTimeoutRange),
    MakeField<&DeliveryTimeouts::rcpt_ms, Kind::kMillis>("rcpt", kStepTimeoutRange),
    MakeField<&DeliveryTimeouts::data_init_ms, Kind::kMillis>("data_init", kStepTimeoutRange),
    MakeField<&DeliveryTimeouts::data_block_ms, Kind::kMillis>("data_block", kStepTimeoutRange),
    MakeField<&DeliveryTimeouts::final_dot_ms, Kind::kMillis>("final_dot", kStepTimeoutRange),
    MakeField<&DeliveryTimeouts::rset_ms, Kind::kMillis>("rset", kStepTimeoutRange),
    MakeField<&DeliveryTimeouts::quit_ms, Kind::kMillis>("quit", kStepTimeoutRange),
};

// Target: queue::RetryConfig.
const Field kRetryFields[] = {
    MakeField<&queue::RetryConfig::initial, Kind::kMicros>("initial", kRetryIntervalRange),
    MakeField<&queue::RetryConfig::factor_permille, Kind::kPermille>("factor", kFactorRange),
    MakeField<&queue::RetryConfig::max_interval, Kind::kMicros>("max_interval",
                                                                kRetryIntervalRange),
    MakeField<&queue::RetryConfig::max_age, Kind::kMicros>("max_age", kMaxAgeRange),
    MakeField<&queue::RetryConfig::jitter_permille, Kind::kPermille>("jitter", kJitterRange),
};
constexpr absl::string_view kRetryOtherKeys[] = {"intervals"};

// Target: queue::ShapeParams.
const Field kShapingFields[] = {
    MakeField<&queue::ShapeParams::max_connections, Kind::kUint>("max_connections",
                                                                 kShapeConnectionsRange),
    MakeField<&queue::ShapeParams::max_messages_per_connection, Kind::kUint>(
        "max_messages_per_connection", kShapeCountRange),
    MakeField<&queue::ShapeParams::messages_per_second, Kind::kUint>("messages_per_second",
                                                                     kShapeCountRange),
    MakeField<&queue::ShapeParams::message_burst, Kind::kUint>("message_burst", kShapeCountRange),
    MakeField<&queue::ShapeParams::messages_per_hour, Kind::kUint>("messages_per_hour",
                                                                   kShapeCountRange),
    MakeField<&queue::ShapeParams::connections_per_second, Kind::kUint>("connections_per_second",
                                                                        kShapeCountRange),
    MakeField<&queue::ShapeParams::connection_burst, Kind::kUint>("connection_burst",
                                                                  kShapeCountRange),
    MakeField<&queue::ShapeParams::backoff_on_421, Kind::kBool>("backoff_on_421"),
    MakeField<&queue::ShapeParams::backoff_factor_permille, Kind::kPermille>("backoff_factor",
                                                                             kBackoffFractionRange),
    MakeField<&queue::ShapeParams::backoff_min_permille, Kind::kPermille>("backoff_min",
                                                                          kBackoffFractionRange),
    MakeField<&queue::ShapeParams::backoff_duration, Kind::kMicros>("backoff_duration",
                                                                    kBackoffDurationRange),
    MakeField<&queue::ShapeParams::recovery_successes, Kind::kUint>("recovery_successes",
                                                                    kRecoveryRange),
};
constexpr absl::string_view kShapingOtherKeys[] = {"pattern", "by_mx", "backoff_patterns"};

constexpr absl::string_view kRouteKeys[] = {"domain", "next_hop"};
constexpr absl::string_view kAdminKeys[] = {"control_dir"};
constexpr absl::string_view kHttpKeys[] = {
    "listen",      "tokens_file",    "metrics_require_token", "max_request_bytes",
    "max_headers", "idle_timeout_s", "request_timeout_s",     "max_clients"};

constexpr absl::string_view kTables[] = {"server", "spool", "log",     "pickup", "delivery",
                                         "retry",  "admin", "shaping", "route",  "tls",
                                         "auth",   "dkim",  "http"};
constexpr absl::string_view kTableList =
    "the tables are [server], [spool], [log], [pickup], [delivery], [retry], [admin], "
    "[tls], [auth], [dkim], [http], [[shaping]] and [[route]]";
// [tls] and [auth]: checked further by tls::Credentials (files, listeners).
constexpr absl::string_view kTlsKeys[] = {"cert_file", "key_file", "min_version", "listen",
                                          "require_tls_on"};
constexpr absl::string_view kAuthKeys[] = {"password_file", "allow_plaintext", "require_auth_on",
                                           "max_failures", "lock_s"};

const Field* FindField(absl::Span<const Field> fields, absl::string_view key) {
  for (const Field& f : fields) {
    if (f.key == key) return &f;
  }
  return nullptr;
}

std::vector<absl::string_view> KeysOf(absl::Span<const Field> fields,
                                      absl::Span<const absl::string_view> others) {
  std::vector<absl::string_view> keys(others.begin(), others.end());
  for (const Field& f : fields) keys.push_back(f.key);
  return keys;
}

// 500 -> "0.5", 63 -> "0.063", 2000 -> "2".
std::string PermilleText(uint64_t permille) {
  std::string out = absl::StrCat(permille / 1000);
  if (const uint64_t rest = permille % 1000; rest != 0) {
    std::string frac = absl::StrCat(1000 + rest).substr(1);  // three digits
    while (frac.back() == '0') frac.pop_back();
    absl::StrAppend(&out, ".", frac);
  }
  return out;
}

std::string ValueText(Kind kind, uint64_t value) {
  switch (kind) {
    case Kind::kMillis:
    case Kind::kMicros:
      return FormatDuration(value);
    case Kind::kPermille:
      return PermilleText(value);
    case Kind::kUint:
    case Kind::kBool:
      break;
  }
  return absl::StrCat(value);
}

std::string RangeText(Kind kind, Range r) {
  return absl::StrCat("must be between ", ValueText(kind, r.min), " and ", ValueText(kind, r.max));
}

// Range checks of every Field in `fields` over `target`, for Finalize():
// "<table>.<key><where>: must be between ..., got ...".
absl::Status CheckFields(absl::Span<const Field> fields, const void* target,
                         absl::string_view table, absl::string_view where = "") {
  for (const Field& f : fields) {
    if (f.kind == Kind::kBool) continue;
    const uint64_t value = f.get(target);
    if (value < f.range.min || value > f.range.max) {
      return absl::InvalidArgumentError(absl::StrCat(table, ".", f.key, where, ": ",
                                                     RangeText(f.kind, f.range), ", got ",
                                                     ValueText(f.kind, value)));
    }
  }
  return absl::OkStatus();
}

// Lower case, without a trailing dot: the form patterns and names are
// compared in.
std::string NormalizeName(absl::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  return absl::AsciiStrToLower(name);
}

// [dkim] values.
constexpr absl::string_view kDkimKeys[] = {"default_domain", "signer"};
constexpr absl::string_view kDkimSignerKeys[] = {
    "domain",           "selector", "key_file", "signing_domain",
    "canonicalization", "headers",  "oversign", "expire"};
// 10,000 signing domains are normal; a million entries would be a
// configuration file of 100 MB, which is a mistake.
constexpr size_t kMaxDkimSigners = 1'000'000;
constexpr size_t kMaxDkimHeaders = 100;  // names in one h= list

absl::Status CheckOptionalName(absl::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  return name.empty() ? absl::OkStatus() : CheckHostname(name);
}

// A [[dkim.signer]] domain: "example.com" or "*.example.com" ("*" alone is
// what [dkim] default_domain is for).
absl::Status CheckDkimPattern(absl::string_view pattern) {
  absl::string_view name = pattern;
  if (absl::StartsWith(name, "*.")) name.remove_prefix(2);
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || !CheckHostname(name).ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", pattern,
                     "' is not a From: domain pattern (write \"example.com\" or \"*.example.com\"; "
                     "mail from other domains is signed by [dkim] default_domain)"));
  }
  return absl::OkStatus();
}

// A selector: dot-separated labels (RFC 6376 3.1).
absl::Status CheckSelector(absl::string_view s) {
  if (CheckHostname(s).ok()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("'", s, "' is not a selector (labels of letters, digits and '-')"));
}

// "relaxed/relaxed", "simple/relaxed", ...; one word is header/simple (RFC
// 6376 3.5 c=).
absl::Status CheckCanonicalization(absl::string_view c) {
  for (absl::string_view word : {"simple", "relaxed"}) {
    for (absl::string_view body : {"/simple", "/relaxed", ""}) {
      if (c == absl::StrCat(word, body)) return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("'", c,
                   "' is not header/body canonicalization (\"relaxed/relaxed\", "
                   "\"relaxed/simple\", \"simple/simple\" or \"simple/relaxed\")"));
}

// A header field name (RFC 5322 2.2: printable ASCII except ':').
absl::Status CheckHeaderName(absl::string_view name) {
  bool ok = !name.empty() && name.size() <= 76;
  for (char c : name) ok = ok && c > ' ' && c < 127 && c != ':';
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("'", name, "' is not a header field name"));
}

// A destination pattern of [[shaping]] and [[route]]: "example.com",
// "*.example.com" (the names below example.com) or "*".
absl::Status CheckPattern(absl::string_view pattern) {
  if (pattern == "*") return absl::OkStatus();
  absl::string_view name = pattern;
  if (absl::StartsWith(name, "*.")) name.remove_prefix(2);
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (pattern.empty() || !CheckHostname(name).ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", pattern,
        "' is not a domain pattern (write an exact name \"example.com\", \"*.example.com\" for "
        "every name below example.com, or \"*\" for all)"));
  }
  return absl::OkStatus();
}

absl::Status CheckOptionalHostname(absl::string_view s) {
  return s.empty() ? absl::OkStatus() : CheckHostname(s);
}

absl::Status CheckSourceAddress(absl::string_view s) {
  if (s.empty()) return absl::OkStatus();
  if (!base::IpAddress::Parse(Std(s)).ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", s, "' is not an IP address (a literal IPv4 or IPv6 address, no port, no name)"));
  }
  return absl::OkStatus();
}

// A DNS server as c-ares wants it, "ADDR:PORT" or "[v6]:PORT". A bare
// address, "10.0.0.53" or "[2001:db8::53]", gets port 53. A bare IPv6
// address without brackets is refused: in "::1:53" the 53 could be a port.
absl::StatusOr<std::string> NormalizeDnsServer(absl::string_view text) {
  absl::string_view bare = text;
  const bool bracketed = absl::ConsumePrefix(&bare, "[") && absl::ConsumeSuffix(&bare, "]");
  if (auto ip = base::IpAddress::Parse(Std(bracketed ? bare : text)); ip.ok()) {
    if (ip->v6 != bracketed) {
      return absl::InvalidArgumentError(
          ip->v6 ? absl::StrCat("'", text, "': an IPv6 address needs brackets: \"[", text,
                                "]\" (port 53) or \"[ADDR]:PORT\"")
                 : absl::StrCat("'", text, "': brackets are for IPv6 addresses"));
    }
    return ip->v6 ? absl::StrCat("[", ip->ToString(), "]:53") : absl::StrCat(ip->ToString(), ":53");
  }
  auto addr = base::SocketAddress::Parse(Std(text));
  if (!addr.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not ADDR:PORT or an IP address: ", addr.status().message()));
  }
  std::string normal = addr->ToString();
  if (absl::EndsWith(normal, ":0")) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "': port 0"));
  }
  return normal;
}

// Checks and normalizes a list of DNS servers. On failure `*bad` is the
// index of the culprit.
absl::StatusOr<std::vector<std::string>> NormalizeDnsServers(const std::vector<std::string>& in,
                                                             size_t* bad) {
  std::vector<std::string> out;
  for (size_t i = 0; i < in.size(); ++i) {
    *bad = i;
    auto normal = NormalizeDnsServer(in[i]);
    if (!normal.ok()) return normal.status();
    if (std::find(out.begin(), out.end(), *normal) != out.end()) {
      return absl::InvalidArgumentError(absl::StrCat("'", in[i], "' is listed twice"));
    }
    out.push_back(*std::move(normal));
  }
  return out;
}

// The host and port of a next hop ("host", "host:port", "[host]:port",
// "[v6]:port", ...), into `route`.
absl::Status ParseNextHop(absl::string_view text, Route& route) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not a next hop: ", why));
  };
  if (text.empty()) return absl::InvalidArgumentError("must not be empty");
  absl::string_view host = text;
  absl::string_view port_text;
  bool has_port = false;
  if (text.front() == '[') {
    const size_t close = text.find(']');
    if (close == absl::string_view::npos) return bad("no ']' after '['");
    host = text.substr(1, close - 1);
    const absl::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return bad("expected ':PORT' after ']'");
      port_text = rest.substr(1);
      has_port = true;
    }
  } else if (const size_t colon = text.find(':'); colon != absl::string_view::npos) {
    if (text.find(':', colon + 1) != absl::string_view::npos) {
      return bad(absl::StrCat("an IPv6 address needs brackets, as in \"[2001:db8::1]:25\""));
    }
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    has_port = true;
  }
  uint64_t port = 25;
  if (has_port && (!base::ParseUint64(Std(port_text), port) || port < 1 || port > 65535)) {
    return bad(absl::StrCat("bad port '", port_text, "' (1 to 65535)"));
  }
  absl::string_view name = host;  // a trailing dot ends a fully qualified name
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  // A name of digits and dots is a mistyped address (no top-level domain is numeric).
  const bool numeric = name.find_first_not_of("0123456789.") == absl::string_view::npos;
  if (auto ip = base::IpAddress::Parse(Std(host)); ip.ok()) {
    route.host = ip->ToString();
  } else if (!numeric && CheckHostname(name).ok()) {
    route.host = NormalizeName(host);
  } else {
    return bad(absl::StrCat("'", host, "' is neither an IP address nor a host name"));
  }
  route.port = static_cast<uint16_t>(port);
  return absl::OkStatus();
}

absl::Status CheckOptionalPath(absl::string_view path) {
  return CheckPath(path, /*may_be_empty=*/true);
}

// http.listen: one "ADDR:PORT", or "" for no HTTP listener.
absl::Status CheckHttpListen(absl::string_view text) {
  if (text.empty()) return absl::OkStatus();
  auto addr = base::SocketAddress::Parse(base::Sv(text));
  if (!addr.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", text, "' is not ADDR:PORT (\"\" turns HTTP off): ", addr.status().message()));
  }
  return absl::OkStatus();
}

absl::Status CheckBackoffPattern(absl::string_view pattern) {
  if (pattern.empty()) return absl::InvalidArgumentError("a pattern must not be empty");
  if (pattern.size() > kMaxBackoffPatternLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("a pattern is longer than ", kMaxBackoffPatternLength, " characters"));
  }
  return absl::OkStatus();
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
      if (name == "shaping" || name == "route") {
        status = ReadArrayOfTables(name, *node);
      } else if (std::find(std::begin(kTables), std::end(kTables), name) != std::end(kTables)) {
        const toml::table* table = node->as_table();
        if (table == nullptr) {
          return Error(*node, name, absl::StrCat("expected a table, got ", TypeName(*node)));
        }
        if (name == "delivery") {
          status = ReadDelivery(*table);
        } else if (name == "retry") {
          status = ReadRetry(*table);
        } else if (name == "admin") {
          status = ReadAdmin(*table);
        } else if (name == "http") {
          status = ReadHttp(*table);
        } else if (name == "tls" || name == "auth") {
          status = ReadTlsAuth(name, *table);
        } else if (name == "dkim") {
          status = ReadDkim(*table);
        } else {
          status = ReadTable(name, *table);
        }
      } else if (node->is_table() || node->is_array_of_tables()) {
        return Error(*key, KeyText(name),
                     absl::StrCat("unknown table (", kTableList, ")", SuggestFrom(kTables, name)));
      } else {
        return Error(*key, KeyText(name),
                     absl::StrCat("unknown key outside any table (", kTableList, ")"));
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
    if (table == "server" && key == "require_from") {
      const auto* b = node.as_boolean();
      if (b == nullptr) {
        return Error(node, dotted, absl::StrCat("expected true or false, got ", TypeName(node)));
      }
      config_.require_from = b->get();
      return absl::OkStatus();
    }

    std::string* target = nullptr;
    absl::Status (*check)(absl::string_view) = nullptr;
    if (table == "server" && key == "hostname") {
      // Empty means "ask gethostname()", as it does by default.
      target = &config_.hostname;
      check = [](absl::string_view s) { return s.empty() ? absl::OkStatus() : CheckHostname(s); };
    } else if (table == "server" && key == "postmaster_address") {
      target = &config_.postmaster_address;
      check = CheckPostmasterAddress;
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
    } else if (table == "pickup" && key == "feedback_id_sender") {
      // Feedback-ID's last part (pickup::IsFeedbackIdPart): "" for none.
      target = &config_.pickup_feedback_id_sender;
      check = [](absl::string_view s) {
        const bool ok = s.size() <= 128 && std::all_of(s.begin(), s.end(), [](char c) {
                          return c > 0x20 && c < 0x7f && c != ':';
                        });
        return ok ? absl::OkStatus()
                  : absl::InvalidArgumentError(
                        "at most 128 printable ASCII characters without spaces or ':'");
      };
    } else if (table == "pickup" && key == "group") {
      target = &config_.pickup_group;  // looked up at start-up (server.cc)
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
    if (target == &config_.log_file) config_.log_file_set = true;  // "" too: no log
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

  // --- the delivery tables -------------------------------------------------

  // Reads one Field's value from `node` into `target`.
  absl::Status ReadField(const Field& f, const std::string& dotted, const toml::node& node,
                         void* target) {
    uint64_t value = 0;
    switch (f.kind) {
      case Kind::kBool: {
        const auto* b = node.as_boolean();
        if (b == nullptr) {
          return Error(node, dotted,
                       absl::StrCat("expected a boolean (true or false), got ", TypeName(node)));
        }
        f.set(target, b->get() ? 1 : 0);
        return absl::OkStatus();
      }
      case Kind::kUint: {
        const auto* i = node.as_integer();
        if (i == nullptr) {
          return Error(node, dotted, absl::StrCat("expected an integer, got ", TypeName(node)));
        }
        if (!InRange(i->get(), f.range)) {
          return Error(node, dotted, absl::StrCat(RangeText(f.range), ", got ", i->get()));
        }
        value = static_cast<uint64_t>(i->get());
        break;
      }
      case Kind::kMillis:
      case Kind::kMicros: {
        auto micros = ReadDuration(dotted, node);
        if (!micros.ok()) return micros.status();
        value = *micros;
        if (!InRange(value, f.range)) {
          return Error(node, dotted,
                       absl::StrCat(RangeText(f.kind, f.range), ", got ", FormatDuration(value)));
        }
        break;
      }
      case Kind::kPermille: {
        double x = 0;
        if (const auto* d = node.as_floating_point()) {
          x = d->get();
        } else if (const auto* i = node.as_integer()) {
          x = static_cast<double>(i->get());
        } else {
          return Error(node, dotted, absl::StrCat("expected a number, got ", TypeName(node)));
        }
        // Thousandths, rounded; the comparison also turns away NaN.
        const bool finite = x >= 0 && x <= 1e12;
        value = finite ? static_cast<uint64_t>(std::llround(x * 1000)) : 0;
        if (!finite || !InRange(value, f.range)) {
          return Error(node, dotted, absl::StrCat(RangeText(f.kind, f.range), ", got ", x));
        }
        break;
      }
    }
    f.set(target, value);
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> ReadDuration(const std::string& dotted, const toml::node& node) {
    const auto* s = node.as_string();
    if (s == nullptr) {
      return Error(node, dotted,
                   absl::StrCat("expected a duration string such as \"30s\" or \"5m\", got ",
                                TypeName(node)));
    }
    auto micros = ParseDurationMicros(s->get());
    if (!micros.ok()) return Error(node, dotted, micros.status().message());
    return *micros;
  }

  // A string key checked by `check` and stored in `*target`.
  absl::Status ReadString(const std::string& dotted, const toml::node& node,
                          absl::Status (*check)(absl::string_view), std::string* target) {
    const auto* value = node.as_string();
    if (value == nullptr) {
      return Error(node, dotted, absl::StrCat("expected a string, got ", TypeName(node)));
    }
    if (absl::Status s = check(value->get()); !s.ok()) return Error(node, dotted, s.message());
    *target = value->get();
    return absl::OkStatus();
  }

  // The strings of an array, each checked by `check`.
  absl::StatusOr<std::vector<std::string>> ReadStrings(const std::string& dotted,
                                                       const toml::node& node,
                                                       absl::string_view what, size_t max_count,
                                                       absl::Status (*check)(absl::string_view)) {
    const toml::array* array = node.as_array();
    if (array == nullptr) {
      return Error(node, dotted,
                   absl::StrCat("expected an array of ", what, ", got ", TypeName(node)));
    }
    if (array->size() > max_count) {
      return Error(node, dotted,
                   absl::StrCat("at most ", max_count, " entries, got ", array->size()));
    }
    std::vector<std::string> out;
    for (const toml::node& element : *array) {
      const auto* s = element.as_string();
      if (s == nullptr) {
        return Error(element, dotted, absl::StrCat("expected ", what, ", got ", TypeName(element)));
      }
      if (absl::Status status = check(s->get()); !status.ok()) {
        return Error(element, dotted, status.message());
      }
      out.push_back(s->get());
    }
    return out;
  }

  absl::Status Unknown(absl::string_view table, const std::string& dotted, const toml::key& key,
                       const toml::node& node, absl::Span<const absl::string_view> known) {
    if (node.is_table()) return Error(key, dotted, absl::StrCat("unknown table in [", table, "]"));
    return Error(key, dotted,
                 absl::StrCat("unknown key in [", table, "]", SuggestFrom(known, Sv(key.str()))));
  }

  absl::Status ReadDelivery(const toml::table& t) {
    const std::vector<absl::string_view> known = KeysOf(kDeliveryFields, kDeliveryOtherKeys);
    for (const auto& [key, node] : InFileOrder(t)) {
      const absl::string_view name = Sv(key->str());
      const std::string dotted = absl::StrCat("delivery.", KeyText(name));
      absl::Status status;
      if (const Field* f = FindField(kDeliveryFields, name)) {
        status = ReadField(*f, dotted, *node, &config_);
      } else if (name == "timeouts") {
        status = ReadTimeouts(dotted, *node);
      } else if (name == "dns") {
        status = ReadDns(dotted, *node);
      } else if (name == "source_address") {
        status = ReadString(dotted, *node, CheckSourceAddress, &config_.source_address);
      } else if (name == "helo_name") {
        status = ReadString(dotted, *node, CheckOptionalHostname, &config_.helo_name);
      } else if (name == "tls") {
        status = ReadOutboundTls(dotted, *node, &config_.outbound_tls);
      } else if (name == "tls_ca_file") {
        status = ReadString(
            dotted, *node, [](absl::string_view) { return absl::OkStatus(); },
            &config_.outbound_tls_ca_file);
      } else if (name == "tls_policy") {
        status = ReadTlsPolicies(dotted, *node);
      } else {
        status = Unknown("delivery", dotted, *key, *node, known);
      }
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }

  absl::Status ReadOutboundTls(const std::string& dotted, const toml::node& node,
                               OutboundTls* out) {
    const auto* v = node.as_string();
    if (v == nullptr) {
      return Error(node, dotted, absl::StrCat("expected a string, got ", TypeName(node)));
    }
    auto policy = ParseOutboundTls(v->get());
    if (!policy.ok()) return Error(node, dotted, policy.status().message());
    *out = *policy;
    return absl::OkStatus();
  }

  // [delivery.tls_policy]: "pattern" = "policy", most specific pattern wins.
  absl::Status ReadTlsPolicies(const std::string& dotted, const toml::node& node) {
    const toml::table* t = node.as_table();
    if (t == nullptr) {
      return Error(node, dotted, absl::StrCat("expected a table, got ", TypeName(node)));
    }
    std::vector<TlsPolicyEntry> entries;
    for (const auto& [key, value] : InFileOrder(*t)) {
      const std::string key_dotted = absl::StrCat(dotted, ".", KeyText(Sv(key->str())));
      if (absl::Status p = CheckPattern(Sv(key->str())); !p.ok()) {
        return Error(*value, key_dotted, p.message());
      }
      TlsPolicyEntry e;
      e.pattern = NormalizeName(Sv(key->str()));
      if (absl::Status r = ReadOutboundTls(key_dotted, *value, &e.policy); !r.ok()) return r;
      for (const TlsPolicyEntry& seen : entries) {
        if (seen.pattern == e.pattern) {
          return Error(*value, key_dotted, absl::StrCat("'", e.pattern, "' appears twice"));
        }
      }
      entries.push_back(std::move(e));
    }
    config_.tls_policies = std::move(entries);
    return absl::OkStatus();
  }

  absl::Status ReadTimeouts(const std::string& dotted, const toml::node& node) {
    const toml::table* t = node.as_table();
    if (t == nullptr) {
      return Error(node, dotted, absl::StrCat("expected a table, got ", TypeName(node)));
    }
    const std::vector<absl::string_view> known = KeysOf(kTimeoutFields, {});
    for (const auto& [key, value] : InFileOrder(*t)) {
      const absl::string_view name = Sv(key->str());
      const std::string key_dotted = absl::StrCat("delivery.timeouts.", KeyText(name));
      const Field* f = FindField(kTimeoutFields, name);
      absl::Status status = f != nullptr
                                ? ReadField(*f, key_dotted, *value, &config_.timeouts)
                                : Unknown("delivery.timeouts", key_dotted, *key, *value, known);
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }

  absl::Status ReadDns(const std::string& dotted, const toml::node& node) {
    auto servers = ReadStrings(dotted, node, "\"ADDR:PORT\" strings", SIZE_MAX,
                               [](absl::string_view s) { return NormalizeDnsServer(s).status(); });
    if (!servers.ok()) return servers.status();
    size_t bad = 0;
    if (auto normal = NormalizeDnsServers(*servers, &bad); !normal.ok()) {
      return Error(*node.as_array()->get(bad), dotted, normal.status().message());
    }
    config_.dns_servers = *std::move(servers);
    return absl::OkStatus();
  }

  absl::Status ReadRetry(const toml::table& t) {
    const std::vector<absl::string_view> known = KeysOf(kRetryFields, kRetryOtherKeys);
    for (const auto& [key, node] : InFileOrder(t)) {
      const absl::string_view name = Sv(key->str());
      const std::string dotted = absl::StrCat("retry.", KeyText(name));
      absl::Status status;
      if (const Field* f = FindField(kRetryFields, name)) {
        status = ReadField(*f, dotted, *node, &config_.retry);
      } else if (name == "intervals") {
        status = ReadRetryIntervals(dotted, *node);
      } else {
        status = Unknown("retry", dotted, *key, *node, known);
      }
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }

  absl::Status ReadRetryIntervals(const std::string& dotted, const toml::node& node) {
    const toml::array* array = node.as_array();
    if (array == nullptr) {
      return Error(node, dotted,
                   absl::StrCat("expected an array of durations such as [\"1m\", \"5m\"], got ",
                                TypeName(node)));
    }
    if (array->size() > kMaxRetryIntervals) {
      return Error(node, dotted,
                   absl::StrCat("at most ", kMaxRetryIntervals, " entries, got ", array->size()));
    }
    std::vector<queue::Micros> intervals;
    for (const toml::node& element : *array) {
      auto micros = ReadDuration(dotted, element);
      if (!micros.ok()) return micros.status();
      if (!InRange(*micros, kRetryIntervalRange)) {
        return Error(element, dotted,
                     absl::StrCat(RangeText(Kind::kMicros, kRetryIntervalRange), ", got ",
                                  FormatDuration(*micros)));
      }
      intervals.push_back(*micros);
    }
    config_.retry.intervals = std::move(intervals);
    return absl::OkStatus();
  }

  absl::Status ReadAdmin(const toml::table& t) {
    for (const auto& [key, node] : InFileOrder(t)) {
      const absl::string_view name = Sv(key->str());
      const std::string dotted = absl::StrCat("admin.", KeyText(name));
      absl::Status status;
      if (name == "control_dir") {
        status = ReadString(dotted, *node, CheckOptionalPath, &config_.control_dir);
      } else {
        status = Unknown("admin", dotted, *key, *node, kAdminKeys);
      }
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }

  // [http] (docs/HTTP.md).
  absl::Status ReadHttp(const toml::table& t) {
    for (const auto& [key, node] : InFileOrder(t)) {
      const absl::string_view name = Sv(key->str());
      const std::string dotted = absl::StrCat("http.", KeyText(name));
      absl::Status status;
      if (const IntField* field = FindIntField("http", name)) {
        const auto* value = node->as_integer();
        if (value == nullptr) {
          return Error(*node, dotted, absl::StrCat("expected an integer, got ", TypeName(*node)));
        }
        if (!InRange(value->get(), field->range)) {
          return Error(*node, dotted,
                       absl::StrCat(RangeText(field->range), ", got ", value->get()));
        }
        field->set(config_, static_cast<uint64_t>(value->get()));
      } else if (name == "listen") {
        status = ReadString(dotted, *node, CheckHttpListen, &config_.http_listen);
      } else if (name == "tokens_file") {
        status = ReadString(dotted, *node, CheckOptionalPath, &config_.http_tokens_file);
      } else if (name == "metrics_require_token") {
        const auto* b = node->as_boolean();
        if (b == nullptr) {
          return Error(*node, dotted,
                       absl::StrCat("expected true or false, got ", TypeName(*node)));
        }
        config_.http_metrics_require_token = b->get();
      } else {
        status = Unknown("http", dotted, *key, *node, kHttpKeys);
      }
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }

  // [tls] and [auth] (docs/CONFIGURATION.md).
  absl::Status ReadTlsAuth(absl::string_view table, const toml::table& t) {
    for (const auto& [key, node] : InFileOrder(t)) {
      const absl::string_view name = Sv(key->str());
      const std::string dotted = absl::StrCat(table, ".", KeyText(name));
      absl::Status status;
      auto any = [](absl::string_view) { return absl::OkStatus(); };
      auto version = [](absl::string_view v) {
        return v == "1.2" || v == "1.3" ? absl::OkStatus()
                                        : absl::InvalidArgumentError("must be \"1.2\" or \"1.3\"");
      };
      if (table == "tls" && name == "cert_file") {
        status = ReadString(dotted, *node, CheckOptionalPath, &config_.tls_cert_file);
      } else if (table == "tls" && name == "key_file") {
        status = ReadString(dotted, *node, CheckOptionalPath, &config_.tls_key_file);
      } else if (table == "tls" && name == "min_version") {
        status = ReadString(dotted, *node, version, &config_.tls_min_version);
      } else if ((table == "tls" && (name == "listen" || name == "require_tls_on")) ||
                 (table == "auth" && name == "require_auth_on")) {
        auto list = ReadStrings(dotted, *node, "\"ADDR:PORT\" strings", 1000, any);
        if (!list.ok()) return list.status();
        (name == "listen"           ? config_.listen_tls
         : name == "require_tls_on" ? config_.require_tls_on
                                    : config_.require_auth_on) = *std::move(list);
      } else if (table == "auth" && name == "password_file") {
        status = ReadString(dotted, *node, CheckOptionalPath, &config_.auth_password_file);
      } else if (table == "auth" && name == "allow_plaintext") {
        const auto* b = node->as_boolean();
        if (b == nullptr) {
          return Error(*node, dotted, absl::StrCat("expected a boolean, got ", TypeName(*node)));
        }
        config_.auth_allow_plaintext = b->get();
      } else if (table == "auth" && (name == "max_failures" || name == "lock_s")) {
        const auto* i = node->as_integer();
        const int64_t max = name == "max_failures" ? 1000 : 86400;
        if (i == nullptr || i->get() < 1 || i->get() > max) {
          return Error(*node, dotted, absl::StrCat("expected an integer between 1 and ", max));
        }
        (name == "max_failures" ? config_.auth_max_failures : config_.auth_lock_s) =
            static_cast<uint32_t>(i->get());
      } else {
        status = Unknown(table, dotted, *key, *node,
                         table == "tls" ? absl::Span<const absl::string_view>(kTlsKeys)
                                        : absl::Span<const absl::string_view>(kAuthKeys));
      }
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }

  // [[shaping]] or [[route]]. The file's list replaces the one before.
  absl::Status ReadArrayOfTables(absl::string_view name, const toml::node& node) {
    const toml::array* array = node.as_array();
    // An empty array ("route = []") is no entries: it clears the list.
    if (array == nullptr || (!array->empty() && !array->is_array_of_tables())) {
      return Error(node, name,
                   absl::StrCat("expected an array of tables, written [[", name, "]], got ",
                                TypeName(node)));
    }
    std::vector<queue::ShapingRule> rules;
    std::vector<Route> routes;
    std::vector<int64_t> lines;  // where each entry's pattern is, for "already at line N"
    for (const toml::node& element : *array) {
      const toml::table& t = *element.as_table();
      absl::Status status =
          name == "shaping" ? ReadShapingRule(t, rules, lines) : ReadRoute(t, routes, lines);
      if (!status.ok()) return status;
    }
    if (name == "shaping") {
      config_.shaping = std::move(rules);
    } else {
      config_.routes = std::move(routes);
    }
    return absl::OkStatus();
  }

  absl::Status ReadShapingRule(const toml::table& t, std::vector<queue::ShapingRule>& rules,
                               std::vector<int64_t>& lines) {
    const std::vector<absl::string_view> known = KeysOf(kShapingFields, kShapingOtherKeys);
    queue::ShapingRule rule;
    const toml::node* pattern = nullptr;
    for (const auto& [key, node] : InFileOrder(t)) {
      const absl::string_view name = Sv(key->str());
      const std::string dotted = absl::StrCat("shaping.", KeyText(name));
      absl::Status status;
      if (const Field* f = FindField(kShapingFields, name)) {
        status = ReadField(*f, dotted, *node, &rule.params);
      } else if (name == "pattern") {
        status = ReadString(dotted, *node, CheckPattern, &rule.pattern);
        rule.pattern = NormalizeName(rule.pattern);
        pattern = node;
      } else if (name == "by_mx") {
        const auto* b = node->as_boolean();
        if (b == nullptr) {
          status = Error(*node, dotted,
                         absl::StrCat("expected a boolean (true or false), got ", TypeName(*node)));
        } else {
          rule.by_mx = b->get();
        }
      } else if (name == "backoff_patterns") {
        auto patterns =
            ReadStrings(dotted, *node, "strings", kMaxBackoffPatterns, CheckBackoffPattern);
        if (patterns.ok()) rule.params.backoff_patterns = *std::move(patterns);
        status = patterns.status();
      } else {
        status = Unknown("[shaping]", dotted, *key, *node, known);
      }
      if (!status.ok()) return status;
    }
    if (pattern == nullptr) {
      return Error(t, "shaping",
                   "missing key 'pattern' (the domains the rule is for: \"example.com\", "
                   "\"*.example.com\" or \"*\")");
    }
    for (size_t i = 0; i < rules.size(); ++i) {
      if (rules[i].pattern == rule.pattern && rules[i].by_mx == rule.by_mx) {
        return Error(*pattern, "shaping.pattern",
                     absl::StrCat("'", rule.pattern, "'", rule.by_mx ? " (by_mx)" : "",
                                  " already has a rule at line ", lines[i]));
      }
    }
    rules.push_back(std::move(rule));
    lines.push_back(pattern->source().begin.line);
    return absl::OkStatus();
  }

  absl::Status ReadRoute(const toml::table& t, std::vector<Route>& routes,
                         std::vector<int64_t>& lines) {
    Route route;
    const toml::node* domain = nullptr;
    const toml::node* next_hop = nullptr;
    for (const auto& [key, node] : InFileOrder(t)) {
      const absl::string_view name = Sv(key->str());
      const std::string dotted = absl::StrCat("route.", KeyText(name));
      absl::Status status;
      if (name == "domain") {
        status = ReadString(dotted, *node, CheckPattern, &route.pattern);
        route.pattern = NormalizeName(route.pattern);
        domain = node;
      } else if (name == "next_hop") {
        const auto* s = node->as_string();
        if (s == nullptr) {
          status = Error(*node, dotted, absl::StrCat("expected a string, got ", TypeName(*node)));
        } else if (absl::Status hop = ParseNextHop(s->get(), route); !hop.ok()) {
          status = Error(*node, dotted, hop.message());
        }
        next_hop = node;
      } else {
        status = Unknown("[route]", dotted, *key, *node, kRouteKeys);
      }
      if (!status.ok()) return status;
    }
    if (domain == nullptr) {
      return Error(t, "route",
                   "missing key 'domain' (the domains the route is for: \"example.com\", "
                   "\"*.example.com\" or \"*\")");
    }
    if (next_hop == nullptr) {
      return Error(t, "route", "missing key 'next_hop' (where the mail goes: \"[192.0.2.1]:25\")");
    }
    for (size_t i = 0; i < routes.size(); ++i) {
      if (routes[i].pattern == route.pattern) {
        return Error(*domain, "route.domain",
                     absl::StrCat("'", route.pattern, "' already has a route at line ", lines[i]));
      }
    }
    routes.push_back(std::move(route));
    lines.push_back(domain->source().begin.line);
    return absl::OkStatus();
  }

  // [dkim]: default_domain and the [[dkim.signer]] list (which replaces the
  // one before).
  absl::Status ReadDkim(const toml::table& t) {
    for (const auto& [key, node] : InFileOrder(t)) {
      const absl::string_view name = Sv(key->str());
      const std::string dotted = absl::StrCat("dkim.", KeyText(name));
      absl::Status status;
      if (name == "default_domain") {
        status = ReadString(dotted, *node, CheckOptionalName, &config_.dkim_default_domain);
        config_.dkim_default_domain = NormalizeName(config_.dkim_default_domain);
      } else if (name == "signer") {
        const toml::array* array = node->as_array();
        if (array == nullptr || (!array->empty() && !array->is_array_of_tables())) {
          return Error(*node, dotted,
                       absl::StrCat("expected an array of tables, written [[dkim.signer]], got ",
                                    TypeName(*node)));
        }
        if (array->size() > kMaxDkimSigners) {
          return Error(*node, dotted, absl::StrCat("at most ", kMaxDkimSigners, " signers"));
        }
        std::vector<DkimSigner> signers;
        for (const toml::node& element : *array) {
          DkimSigner signer;
          status = ReadDkimSigner(*element.as_table(), signer);
          if (!status.ok()) return status;
          signers.push_back(std::move(signer));
        }
        config_.dkim_signers = std::move(signers);
      } else {
        status = Unknown("dkim", dotted, *key, *node, kDkimKeys);
      }
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }

  absl::Status ReadDkimSigner(const toml::table& t, DkimSigner& signer) {
    bool has_domain = false, has_selector = false, has_key = false;
    for (const auto& [key, node] : InFileOrder(t)) {
      const absl::string_view name = Sv(key->str());
      const std::string dotted = absl::StrCat("dkim.signer.", KeyText(name));
      absl::Status status;
      if (name == "domain") {
        status = ReadString(dotted, *node, CheckDkimPattern, &signer.pattern);
        signer.pattern = NormalizeName(signer.pattern);
        has_domain = true;
      } else if (name == "selector") {
        status = ReadString(dotted, *node, CheckSelector, &signer.selector);
        signer.selector = absl::AsciiStrToLower(signer.selector);
        has_selector = true;
      } else if (name == "key_file") {
        status = ReadString(dotted, *node, CheckOptionalPath, &signer.key_file);
        has_key = status.ok() && !signer.key_file.empty();
      } else if (name == "signing_domain") {
        status = ReadString(dotted, *node, CheckOptionalName, &signer.signing_domain);
        signer.signing_domain = NormalizeName(signer.signing_domain);
      } else if (name == "canonicalization") {
        status = ReadString(dotted, *node, CheckCanonicalization, &signer.canonicalization);
      } else if (name == "headers" || name == "oversign") {
        auto list = ReadStrings(dotted, *node, "header names", kMaxDkimHeaders, CheckHeaderName);
        if (!list.ok()) return list.status();
        (name == "headers" ? signer.headers : signer.oversign) = *std::move(list);
      } else if (name == "expire") {
        auto micros = ReadDuration(dotted, *node);
        if (!micros.ok()) return micros.status();
        if (*micros < kSecond || *micros > 365 * kDay) {
          return Error(*node, dotted, "must be between 1s and 365d");
        }
        signer.expire_s = *micros / kSecond;
      } else {
        status = Unknown("[dkim.signer]", dotted, *key, *node, kDkimSignerKeys);
      }
      if (!status.ok()) return status;
    }
    auto missing = [&](absl::string_view what) {
      return Error(t, "dkim.signer", absl::StrCat("missing key '", what, "'"));
    };
    if (!has_domain) return missing("domain");
    if (!has_selector) return missing("selector");
    if (!has_key) return missing("key_file");
    const bool from =
        std::any_of(signer.headers.begin(), signer.headers.end(),
                    [](const std::string& h) { return absl::EqualsIgnoreCase(h, "from"); });
    if (!from) {
      return Error(t, "dkim.signer.headers",
                   "must include \"From\" (RFC 6376 5.4: the From: field is always signed)");
    }
    return absl::OkStatus();
  }

  absl::string_view source_;
  Config& config_;
};

}  // namespace

absl::StatusOr<uint64_t> ParseDurationMicros(std::string_view text_in) {
  const absl::string_view text = Sv(text_in);
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not a duration: ", why,
                     " (write a whole number and a unit: \"250ms\", \"30s\", \"5m\", \"4h\", "
                     "\"5d\")"));
  };
  size_t digits = 0;
  while (digits < text.size() && absl::ascii_isdigit(text[digits])) ++digits;
  if (text.empty()) return bad("empty");
  if (digits == 0) return bad(text.front() == '-' ? "negative" : "no number");
  const absl::string_view unit = text.substr(digits);
  uint64_t scale = 0;
  if (unit == "ms") {
    scale = kMilli;
  } else if (unit == "s") {
    scale = kSecond;
  } else if (unit == "m") {
    scale = kMinute;
  } else if (unit == "h") {
    scale = kHour;
  } else if (unit == "d") {
    scale = kDay;
  } else if (unit.empty()) {
    return bad("no unit");
  } else if (unit.front() == '.' || unit.front() == ',') {
    return bad("no fractions; use a smaller unit");
  } else {
    return bad(absl::StrCat("unknown unit '", unit, "'"));
  }
  uint64_t n = 0;
  if (!base::ParseUint64(Std(text.substr(0, digits)), n) || n > UINT64_MAX / scale) {
    return bad("too large");
  }
  return n * scale;
}

std::string FormatDuration(uint64_t micros) {
  if (micros == 0) return "0s";
  constexpr std::pair<uint64_t, absl::string_view> kUnits[] = {
      {kDay, "d"}, {kHour, "h"}, {kMinute, "m"}, {kSecond, "s"}, {kMilli, "ms"}};
  for (const auto& [scale, name] : kUnits) {
    if (micros % scale == 0) return absl::StrCat(micros / scale, name);
  }
  return absl::StrCat(micros, "us");
}

namespace {

// The entry whose pattern matches `domain_in` most specifically: the exact
// name, else the longest "*." suffix, else "*". Null when none matches.
template <typename Entry>
const Entry* MostSpecific(const std::vector<Entry>& entries, std::string_view domain_in) {
  absl::string_view domain = Sv(domain_in);
  if (!domain.empty() && domain.back() == '.') domain.remove_suffix(1);
  const Entry* suffix_match = nullptr;
  size_t suffix_length = 0;
  const Entry* any = nullptr;
  for (const Entry& entry : entries) {
    absl::string_view pattern = entry.pattern;
    if (!pattern.empty() && pattern.back() == '.') pattern.remove_suffix(1);
    if (pattern == "*") {
      if (any == nullptr) any = &entry;
    } else if (absl::StartsWith(pattern, "*.")) {
      const absl::string_view suffix = pattern.substr(1);  // ".example.com"
      if (domain.size() > suffix.size() && suffix.size() > suffix_length &&
          absl::EqualsIgnoreCase(domain.substr(domain.size() - suffix.size()), suffix)) {
        suffix_match = &entry;
        suffix_length = suffix.size();
      }
    } else if (absl::EqualsIgnoreCase(pattern, domain)) {
      return &entry;
    }
  }
  return suffix_match != nullptr ? suffix_match : any;
}

}  // namespace

const Route* FindRoute(const Config& config, std::string_view domain) {
  return MostSpecific(config.routes, domain);
}

OutboundTls FindOutboundTls(const Config& config, std::string_view domain) {
  const TlsPolicyEntry* e = MostSpecific(config.tls_policies, domain);
  return e != nullptr ? e->policy : config.outbound_tls;
}

absl::StatusOr<OutboundTls> ParseOutboundTls(std::string_view name) {
  if (name == "disabled") return OutboundTls::kDisabled;
  if (name == "opportunistic") return OutboundTls::kOpportunistic;
  if (name == "required") return OutboundTls::kRequired;
  if (name == "verify") return OutboundTls::kVerify;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown TLS policy '", Sv(name), "' (disabled, opportunistic, required or verify)"));
}

const char* OutboundTlsName(OutboundTls policy) {
  switch (policy) {
    case OutboundTls::kDisabled:
      return "disabled";
    case OutboundTls::kOpportunistic:
      return "opportunistic";
    case OutboundTls::kRequired:
      return "required";
    case OutboundTls::kVerify:
      return "verify";
  }
  return "?";
}

absl::StatusOr<Route> ParseRoute(std::string_view pattern, std::string_view next_hop) {
  if (absl::Status s = CheckPattern(Sv(pattern)); !s.ok()) return s;
  Route route;
  route.pattern = NormalizeName(Sv(pattern));
  if (absl::Status s = ParseNextHop(Sv(next_hop), route); !s.ok()) return s;
  return route;
}

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

std::string DefaultLogFile(std::string_view spool_dir) {
  absl::string_view spool = Sv(spool_dir);
  while (spool.size() > 1 && absl::ConsumeSuffix(&spool, "/")) {
  }
  const size_t slash = spool.rfind('/');
  if (slash == absl::string_view::npos) return "./log/sluice.log";  // "spool": beside it, here
  return absl::StrCat(spool.substr(0, slash), "/log/sluice.log");   // "/spool" -> "/log/..."
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

absl::Status Config::Finalize() {
  // Ranges again: command-line flags do not pass through the TOML reader.
  for (const IntField& field : kIntFields) {
    if (absl::Status s = field.check(field, *this); !s.ok()) return s;
  }

  // Relations. The default line limit follows a smaller message size.
  if (max_data_line_length == Config().max_data_line_length &&
      max_message_size < max_data_line_length) {
    max_data_line_length = max_message_size;
  }
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
  if (!log_file_set) {
    log_file = DefaultLogFile(spool_dir);
    log_file_set = true;
  }
  if (absl::Status s = CheckPath(log_file, /*may_be_empty=*/true); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("log.file: ", s.message()));
  }
  if (absl::Status s = CheckPath(pickup_dir, /*may_be_empty=*/true); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("pickup.dir: ", s.message()));
  }
  if (absl::Status s = CheckPath(control_dir, /*may_be_empty=*/true); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("admin.control_dir: ", s.message()));
  }
  // [http]
  if (absl::Status s = CheckHttpListen(http_listen); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("http.listen: ", s.message()));
  }
  if (absl::Status s = CheckPath(http_tokens_file, /*may_be_empty=*/true); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("http.tokens_file: ", s.message()));
  }
  std::vector<base::SocketAddress> http;
  if (!http_listen.empty()) {
    http.push_back(*base::SocketAddress::Parse(http_listen));
    for (const base::SocketAddress& smtp : *addresses) {
      if (smtp.ToString() == http[0].ToString()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "http.listen: ", http_listen, " is also an SMTP listen address (server.listen)"));
      }
    }
  }

  // [delivery]
  if (absl::Status s = CheckFields(kDeliveryFields, this, "delivery"); !s.ok()) return s;
  if (absl::Status s = CheckFields(kTimeoutFields, &timeouts, "delivery.timeouts"); !s.ok()) {
    return s;
  }
  auto dns = NormalizeDnsServers(dns_servers, &bad);
  if (!dns.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("delivery.dns: ", dns.status().message()));
  }
  if (absl::Status s = CheckSourceAddress(source_address); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("delivery.source_address: ", s.message()));
  }
  if (absl::Status s = CheckOptionalHostname(helo_name); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("delivery.helo_name: ", s.message()));
  }

  // [retry]
  if (absl::Status s = CheckFields(kRetryFields, &retry, "retry"); !s.ok()) return s;
  if (retry.intervals.size() > kMaxRetryIntervals) {
    return absl::InvalidArgumentError(absl::StrCat("retry.intervals: at most ", kMaxRetryIntervals,
                                                   " entries, got ", retry.intervals.size()));
  }
  for (queue::Micros interval : retry.intervals) {
    if (!InRange(interval, kRetryIntervalRange)) {
      return absl::InvalidArgumentError(
          absl::StrCat("retry.intervals: ", RangeText(Kind::kMicros, kRetryIntervalRange), ", got ",
                       FormatDuration(interval)));
    }
  }
  if (absl::Status s = queue::RetrySchedule::Validate(retry); !s.ok()) return s;

  // [[shaping]]: the per-rule checks name the key; Create() then checks the
  // set (duplicates) and stays the authority on what the queue accepts.
  std::vector<queue::ShapingRule> rules = shaping;
  for (queue::ShapingRule& rule : rules) {
    const std::string where = absl::StrCat(" (rule '", rule.pattern, "')");
    if (absl::Status s = CheckPattern(rule.pattern); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("shaping.pattern: ", s.message()));
    }
    rule.pattern = NormalizeName(rule.pattern);
    if (absl::Status s = CheckFields(kShapingFields, &rule.params, "shaping", where); !s.ok()) {
      return s;
    }
    if (rule.params.backoff_patterns.size() > kMaxBackoffPatterns) {
      return absl::InvalidArgumentError(
          absl::StrCat("shaping.backoff_patterns", where, ": at most ", kMaxBackoffPatterns,
                       " entries, got ", rule.params.backoff_patterns.size()));
    }
    for (const std::string& p : rule.params.backoff_patterns) {
      if (absl::Status s = CheckBackoffPattern(p); !s.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("shaping.backoff_patterns", where, ": ", s.message()));
      }
    }
  }
  if (auto policy = queue::ShapingPolicy::Create(rules); !policy.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("shaping: ", policy.status().message()));
  }

  // [[route]]
  std::vector<Route> checked_routes;
  for (const Route& route : routes) {
    Route r = route;
    if (absl::Status s = CheckPattern(r.pattern); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("route.domain: ", s.message()));
    }
    r.pattern = NormalizeName(r.pattern);
    // The host and port as ParseNextHop would have produced them.
    const std::string hop = absl::StrCat("[", r.host, "]:", r.port);
    if (absl::Status s = ParseNextHop(hop, r); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("route.next_hop (domain '", r.pattern, "'): ", s.message()));
    }
    for (const Route& seen : checked_routes) {
      if (seen.pattern == r.pattern) {
        return absl::InvalidArgumentError(
            absl::StrCat("route.domain: '", r.pattern, "' has two routes"));
      }
    }
    checked_routes.push_back(std::move(r));
  }

  hostname = std::move(host);
  listen_addresses = *std::move(addresses);
  http_addresses = std::move(http);
  relay_networks = *std::move(networks);
  if (helo_name.empty()) helo_name = hostname;
  if (control_dir.empty()) {
    control_dir = absl::StrCat(absl::StripSuffix(spool_dir, "/"), "/control");
  }
  dns_servers = *std::move(dns);
  shaping = std::move(rules);
  routes = std::move(checked_routes);
  return CheckDkimDefault(*this);
}

}  // namespace sluice::config
