// The bounds of every setting, with the reason for each, and the field tables
// that tie the settings to their TOML keys (fields.h says how a table is
// used). To add an integer key to [server], [spool], [pickup] or [http]: a
// Range here, one MakeIntField line in field_tables.cc, and the key in the
// table reader's list of known keys. Private to src/config.
#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/types/span.h"
#include "fields.h"
#include "sluice/base/limits.h"
#include "sluice/queue/token_bucket.h"

namespace sluice::config {

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
// Injections waiting for the spool per shard (http.max_inject_in_flight).
constexpr Range kHttpInjectInFlightRange{1, 100'000};

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

// The integer settings of the flat tables, checked again by Finalize().
absl::Span<const IntField> IntFields();
// The IntField for `table`.`key`, or null.
const IntField* FindIntField(absl::string_view table, absl::string_view key);

// The Fields of [delivery] (target: Config), [delivery.timeouts] (target:
// DeliveryTimeouts), [retry] (target: queue::RetryConfig) and [[shaping]]
// (target: queue::ShapeParams).
absl::Span<const Field> DeliveryFields();
absl::Span<const Field> TimeoutFields();
absl::Span<const Field> RetryFields();
absl::Span<const Field> ShapingFields();

}  // namespace sluice::config
