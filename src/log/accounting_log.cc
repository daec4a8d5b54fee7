// The accounting log's records: each event formatted as one JSON line (or,
// for a huge batch's Reception, a few) into the shard's buffer. Field
// values are untrusted and escaped (json.h); timestamps are UTC with
// microseconds. The write path is in accounting_log_write.cc.
#include "sluice/log/accounting_log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "sluice/base/clock.h"
#include "sluice/base/limits.h"
#include "sluice/base/utc_time.h"
#include "sluice/log/json.h"

namespace sluice::log {

void AccountingLog::FormatTimestamp(std::string& out, uint64_t micros) {
  out.push_back('"');
  base::AppendIso8601Micros(out, micros);
  out.push_back('"');
}

std::string_view DeliveryTypeName(DeliveryType type) {
  switch (type) {
    case DeliveryType::kDelivery:
      return "Delivery";
    case DeliveryType::kTransientFailure:
      return "TransientFailure";
    case DeliveryType::kBounce:
      return "Bounce";
    case DeliveryType::kExpiration:
      return "Expiration";
    case DeliveryType::kDeletion:
      return "Deletion";
  }
  return "Unknown";
}

void AccountingLog::Rejection(const RejectionRecord& r) {
  if (!Admit(1)) return;
  JsonLine line(buffer_);
  line.Str("type", "Rejection");
  FormatTimestamp(line.Key("ts"), r.ts_micros);
  line.Str("source", r.source);
  if (r.source == "smtp") {
    line.Str("client", r.client).Str("helo", r.helo).Str("sender", r.sender);
    line.Str("command", r.command).Str("argument", r.argument).Str("reply", r.reply).End();
    return;
  }
  line.Str("file", r.file).Str("reason", r.reason).End();
}

void AccountingLog::Reception(const ReceptionRecord& r) {
  const size_t total = r.recipients != nullptr        ? r.recipients->size()
                       : r.recipient_views != nullptr ? r.recipient_views->size()
                                                      : 0;
  const size_t lines =
      std::max<size_t>(1, (total + kReceptionRecipientsPerLine - 1) / kReceptionRecipientsPerLine);
  if (!Admit(lines)) return;
  FormatReception(buffer_, r);
}

void AccountingLog::FormatReception(std::string& o, const ReceptionRecord& r) {
  const size_t total = r.recipients != nullptr        ? r.recipients->size()
                       : r.recipient_views != nullptr ? r.recipient_views->size()
                                                      : 0;
  const size_t per = kReceptionRecipientsPerLine;
  const size_t parts = total <= per ? 1 : (total + per - 1) / per;
  for (size_t part = 0; part < parts; ++part) {
    JsonLine line(o);
    line.Str("type", "Reception");
    FormatTimestamp(line.Key("ts"), r.ts_micros);
    line.Str("id", r.id).Str("sender", r.sender);
    line.Key("recipients").push_back('[');
    for (size_t i = part * per; i < std::min(total, (part + 1) * per); ++i) {
      if (i > part * per) o.push_back(',');
      AppendJsonString(o, r.recipients != nullptr ? std::string_view((*r.recipients)[i])
                                                  : (*r.recipient_views)[i]);
    }
    o.push_back(']');
    if (parts > 1) line.Uint("part", part + 1).Uint("parts", parts);
    line.Uint("size", r.size).Str("client", r.client).Str("helo", r.helo);
    line.Str("protocol", r.protocol).StrIfSet("campaign", r.campaign).StrIfSet("tenant", r.tenant);
    if (r.skipped.has_value()) line.Uint("skipped", *r.skipped);
    line.End();
  }
}

void AccountingLog::FormatDelivery(std::string& o, DeliveryType type, const DeliveryRecord& r) {
  JsonLine line(o);
  line.Str("type", DeliveryTypeName(type));
  FormatTimestamp(line.Key("ts"), r.ts_micros);
  line.Str("id", r.id).Str("sender", r.sender).Str("recipient", r.recipient);
  line.Str("domain", r.domain).Str("mx", r.mx).Str("ip", r.ip).Int("code", r.code);
  line.Str("enhanced", r.enhanced).Str("text", r.text).Uint("attempt", r.attempt);
  // Seconds with millisecond precision, rounded: "queue_time_s":3600.125.
  const uint64_t ms = r.queue_time_micros / 1000 + (r.queue_time_micros % 1000 >= 500 ? 1 : 0);
  std::string& seconds = line.Key("queue_time_s");
  const unsigned fraction = static_cast<unsigned>(ms % 1000);
  absl::StrAppend(&seconds, ms / 1000, ".");
  const char digits[3] = {static_cast<char>('0' + fraction / 100),
                          static_cast<char>('0' + fraction / 10 % 10),
                          static_cast<char>('0' + fraction % 10)};
  seconds.append(digits, sizeof digits);
  line.Str("tls", r.tls);
  if (r.tls_resumed) line.Raw("tls_resumed", "true");
  line.StrIfSet("campaign", r.campaign).StrIfSet("tenant", r.tenant);
  if (!r.dkim.empty()) line.Raw("dkim", r.dkim);
  line.End();
}

void AccountingLog::Write(DeliveryType type, const DeliveryRecord& r) {
  if (!Admit(1)) return;
  FormatDelivery(buffer_, type, r);
}

}  // namespace sluice::log
