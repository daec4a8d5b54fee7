#include "sluice/log/accounting_log.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "sluice/base/limits.h"
#include "sluice/log/json.h"

namespace sluice::log {

void AccountingLog::FormatTimestamp(std::string& out, uint64_t micros) {
  const time_t secs = static_cast<time_t>(micros / 1000000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  absl::StrAppendFormat(&out, "\"%04d-%02d-%02dT%02d:%02d:%02d.%06uZ\"", tm.tm_year + 1900,
                        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                        static_cast<unsigned>(micros % 1000000));
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
  }
  return "Unknown";
}

void AccountingLog::MakeRoom() {
  if (buffer_.size() <= limits::kLogBufferMax) return;
  // Back-pressure without loss: the loop is far behind the log's disk, so
  // write what is buffered synchronously, all of it. Rare by design. (A
  // write in flight may land after these lines: O_APPEND keeps every line
  // whole, only the order of the two batches can differ.)
  size_t done = 0;
  while (done < buffer_.size()) {
    const ssize_t n = write(fd_, buffer_.data() + done, buffer_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // a failed log write loses lines; the spool keeps the truth
    done += static_cast<size_t>(n);
  }
  buffer_.clear();
}

void AccountingLog::Rejection(const RejectionRecord& r) {
  if (fd_ < 0) return;
  MakeRoom();
  JsonLine line(buffer_);
  line.Str("type", "Rejection");
  FormatTimestamp(line.Key("ts"), r.ts_micros);
  line.Str("source", r.source).Str("file", r.file).Str("reason", r.reason).End();
}

void AccountingLog::Reception(const ReceptionRecord& r) {
  if (fd_ < 0) return;
  MakeRoom();
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
  absl::StrAppendFormat(&line.Key("queue_time_s"), "%u.%03u", ms / 1000,
                        static_cast<unsigned>(ms % 1000));
  line.Str("tls", r.tls);
  if (r.tls_resumed) line.Raw("tls_resumed", "true");
  line.StrIfSet("campaign", r.campaign).StrIfSet("tenant", r.tenant);
  if (!r.dkim.empty()) line.Raw("dkim", r.dkim);
  line.End();
}

void AccountingLog::Write(DeliveryType type, const DeliveryRecord& r) {
  if (fd_ < 0) return;
  MakeRoom();
  FormatDelivery(buffer_, type, r);
}

void AccountingLog::Flush() {
  if (fd_ < 0 || writing_ || buffer_.empty()) return;
  in_flight_.swap(buffer_);
  buffer_.clear();
  in_flight_done_ = 0;
  writing_ = true;
  io_uring_sqe* sqe = ring_.Prepare(&written_);
  io_uring_prep_write(sqe, fd_, in_flight_.data(), static_cast<unsigned>(in_flight_.size()),
                      static_cast<uint64_t>(-1));
}

void AccountingLog::OnWritten(int result, uint32_t) {
  if (result > 0 && in_flight_done_ + static_cast<size_t>(result) < in_flight_.size()) {
    in_flight_done_ += static_cast<size_t>(result);
    io_uring_sqe* sqe = ring_.Prepare(&written_);
    io_uring_prep_write(sqe, fd_, in_flight_.data() + in_flight_done_,
                        static_cast<unsigned>(in_flight_.size() - in_flight_done_),
                        static_cast<uint64_t>(-1));
    return;
  }
  // A failed log write loses those lines; the spool still holds the truth.
  writing_ = false;
  in_flight_.clear();
  Flush();
}

}  // namespace sluice::log
