#include "sluice/log/accounting_log.h"

#include <unistd.h>

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

void AccountingLog::MakeRoom() {
  if (buffer_.size() > limits::kLogBufferMax) {
    // Back-pressure without loss: write synchronously. Rare by design.
    ssize_t n = write(fd_, buffer_.data(), buffer_.size());
    (void)n;
    buffer_.clear();
  }
}

void AccountingLog::Rejection(const RejectionRecord& r) {
  if (fd_ < 0) return;
  MakeRoom();
  std::string& o = buffer_;
  o += "{\"type\":\"Rejection\",\"ts\":";
  FormatTimestamp(o, r.ts_micros);
  o += ",\"source\":";
  AppendJsonString(o, r.source);
  o += ",\"file\":";
  AppendJsonString(o, r.file);
  o += ",\"reason\":";
  AppendJsonString(o, r.reason);
  o += "}\n";
}

void AccountingLog::Reception(const ReceptionRecord& r) {
  if (fd_ < 0) return;
  MakeRoom();
  FormatReception(buffer_, r);
}

void AccountingLog::FormatReception(std::string& o, const ReceptionRecord& r) {
  o += "{\"type\":\"Reception\",\"ts\":";
  FormatTimestamp(o, r.ts_micros);
  o += ",\"id\":";
  AppendJsonString(o, r.id);
  o += ",\"sender\":";
  AppendJsonString(o, r.sender);
  o += ",\"recipients\":[";
  if (r.recipients != nullptr) {
    for (size_t i = 0; i < r.recipients->size(); ++i) {
      if (i > 0) o.push_back(',');
      AppendJsonString(o, (*r.recipients)[i]);
    }
  } else if (r.recipient_views != nullptr) {
    for (size_t i = 0; i < r.recipient_views->size(); ++i) {
      if (i > 0) o.push_back(',');
      AppendJsonString(o, (*r.recipient_views)[i]);
    }
  }
  absl::StrAppend(&o, "],\"size\":", r.size, ",\"client\":");
  AppendJsonString(o, r.client);
  o += ",\"helo\":";
  AppendJsonString(o, r.helo);
  o += ",\"protocol\":";
  AppendJsonString(o, r.protocol);
  if (!r.campaign.empty()) {
    o += ",\"campaign\":";
    AppendJsonString(o, r.campaign);
  }
  if (!r.tenant.empty()) {
    o += ",\"tenant\":";
    AppendJsonString(o, r.tenant);
  }
  if (r.skipped.has_value()) absl::StrAppend(&o, ",\"skipped\":", *r.skipped);
  o += "}\n";
}

void AccountingLog::FormatDelivery(std::string& o, std::string_view type, const DeliveryRecord& r) {
  o += "{\"type\":";
  AppendJsonString(o, type);
  o += ",\"ts\":";
  FormatTimestamp(o, r.ts_micros);
  o += ",\"id\":";
  AppendJsonString(o, r.id);
  o += ",\"sender\":";
  AppendJsonString(o, r.sender);
  o += ",\"recipient\":";
  AppendJsonString(o, r.recipient);
  o += ",\"domain\":";
  AppendJsonString(o, r.domain);
  o += ",\"mx\":";
  AppendJsonString(o, r.mx);
  o += ",\"ip\":";
  AppendJsonString(o, r.ip);
  absl::StrAppend(&o, ",\"code\":", r.code, ",\"enhanced\":");
  AppendJsonString(o, r.enhanced);
  o += ",\"text\":";
  AppendJsonString(o, r.text);
  // Seconds with millisecond precision, rounded: "queue_time_s":3600.125.
  const uint64_t ms = r.queue_time_micros / 1000 + (r.queue_time_micros % 1000 >= 500 ? 1 : 0);
  absl::StrAppendFormat(&o, ",\"attempt\":%u,\"queue_time_s\":%u.%03u,\"tls\":", r.attempt,
                        ms / 1000, static_cast<unsigned>(ms % 1000));
  AppendJsonString(o, r.tls);
  if (!r.campaign.empty()) {
    o += ",\"campaign\":";
    AppendJsonString(o, r.campaign);
  }
  if (!r.tenant.empty()) {
    o += ",\"tenant\":";
    AppendJsonString(o, r.tenant);
  }
  o += "}\n";
}

void AccountingLog::Append(std::string_view type, const DeliveryRecord& r) {
  if (fd_ < 0) return;
  MakeRoom();
  FormatDelivery(buffer_, type, r);
}

void AccountingLog::Delivery(const DeliveryRecord& r) { Append("Delivery", r); }
void AccountingLog::TransientFailure(const DeliveryRecord& r) { Append("TransientFailure", r); }
void AccountingLog::Bounce(const DeliveryRecord& r) { Append("Bounce", r); }
void AccountingLog::Expiration(const DeliveryRecord& r) { Append("Expiration", r); }

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
