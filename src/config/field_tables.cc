// The field tables (field_tables.h): one line per setting that the generic
// field machinery (fields.h) reads and checks. Pure data.

#include "field_tables.h"

namespace sluice::config {
namespace {

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
    MakeIntField<&Config::http_max_inject_in_flight>("http", "max_inject_in_flight",
                                                     kHttpInjectInFlightRange),
};

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

}  // namespace

absl::Span<const IntField> IntFields() { return kIntFields; }

const IntField* FindIntField(absl::string_view table, absl::string_view key) {
  for (const IntField& f : kIntFields) {
    if (f.table == table && f.key == key) return &f;
  }
  return nullptr;
}

absl::Span<const Field> DeliveryFields() { return kDeliveryFields; }
absl::Span<const Field> TimeoutFields() { return kTimeoutFields; }
absl::Span<const Field> RetryFields() { return kRetryFields; }
absl::Span<const Field> ShapingFields() { return kShapingFields; }

}  // namespace sluice::config
