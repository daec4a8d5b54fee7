// The accounting log: one JSON line per event: Reception and Rejection on the
// way in; Delivery, TransientFailure, Bounce and Expiration per recipient on
// the way out. The fields are listed in docs/PROTOCOL.md.
//
// Each shard owns one AccountingLog writing to the same O_APPEND file: a
// record is appended to the shard's buffer and the buffer goes out in one
// io_uring write per loop turn (whole lines only, so shards never interleave
// inside a line). Records are written, not fsynced: the spool, not the log,
// is the durable truth. The buffer is bounded (limits::kLogBufferMax); past
// it the shard waits for the write in flight rather than drop a record.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/io/ring.h"

namespace sluice::log {

struct ReceptionRecord {
  uint64_t ts_micros = 0;
  std::string_view id;
  std::string_view sender;
  const std::vector<std::string>* recipients = nullptr;
  // Instead of `recipients` (a batch: views into one buffer, no copy per
  // recipient); used when `recipients` is null.
  const std::vector<std::string_view>* recipient_views = nullptr;
  uint64_t size = 0;
  std::string_view client;
  std::string_view helo;
  std::string_view protocol;
  // Batches (docs/PICKUP.md): written only when set.
  std::string_view campaign;
  std::string_view tenant;
  std::optional<uint64_t> skipped;  // recipient rows skipped as invalid
};

// The four records of a delivery attempt's outcome for one recipient, by
// their "type":
//   Delivery          2xx from the receiving server: done
//   TransientFailure  4xx or a local failure (DNS, connect, timeout): will retry
//   Bounce            5xx or a permanent local failure: a DSN goes to the sender
//   Expiration        still failing when the message reached its queue lifetime
enum class DeliveryType : uint8_t { kDelivery, kTransientFailure, kBounce, kExpiration };
std::string_view DeliveryTypeName(DeliveryType type);

// One delivery attempt's outcome for one recipient: the same fields for all
// four types.
// The strings are untrusted where they come from a peer (text, mx) and are
// escaped like every other field.
struct DeliveryRecord {
  uint64_t ts_micros = 0;
  std::string_view id;             // queue id
  std::string_view sender;         // envelope sender, "" for <>
  std::string_view recipient;      // envelope recipient
  std::string_view domain;         // the recipient domain (the queue it came from)
  std::string_view mx;             // host name of the server that answered, "" if none
  std::string_view ip;             // its address, "" if no connection was made
  int code = 0;                    // SMTP reply code, 0 when there was no reply
  std::string_view enhanced;       // "5.1.1" or ""
  std::string_view text;           // reply text after the codes, or the local reason (code 0)
  uint32_t attempt = 0;            // 1 for the first attempt
  uint64_t queue_time_micros = 0;  // since arrival; written as queue_time_s, ms precision
  std::string_view tls;            // "" without TLS; "TLSv1.3 TLS_AES_128_GCM_SHA256"
  bool tls_resumed = false;        // the handshake resumed a session; written only when true
  // The batch's ids (spool::Envelope::campaign/tenant); each written only
  // when non-empty, after "tls" (and "tls_resumed").
  std::string_view campaign;
  std::string_view tenant;
  // The DKIM signatures the message carried, a JSON array written as is:
  // [{"d":"example.com","s":"sel"}]; written (last) only when non-empty.
  std::string_view dkim;
};

// A dropped file that could not be accepted (source "pickup"): it went to
// bad/ with an .error note.
struct RejectionRecord {
  uint64_t ts_micros = 0;
  std::string_view source;  // "pickup"
  std::string_view file;    // the name it had in new/ (or its claimed name)
  std::string_view reason;  // "line N: ..." as in the .error file
};

// A Reception lists at most this many recipients per line: a batch of a
// million is ~100 lines of ~300 KB (each with "part" and "parts"), not one
// line of 30 MB that log shippers truncate.
inline constexpr size_t kReceptionRecipientsPerLine = 10'000;

class AccountingLog {
 public:
  // fd < 0: logging disabled, records are dropped silently.
  AccountingLog(io::Ring& ring, int fd) : ring_(ring), fd_(fd) {}

  void Reception(const ReceptionRecord& r);
  // {"type":"Rejection","ts":...,"source":...,"file":...,"reason":...}
  void Rejection(const RejectionRecord& r);
  // {"type":"Delivery","ts":...,"id":...,"sender":...,"recipient":...,
  //  "domain":...,"mx":...,"ip":...,"code":250,"enhanced":"2.0.0","text":...,
  //  "attempt":1,"queue_time_s":0.042,"tls":""}, and the same fields with
  // "type":"TransientFailure", "Bounce" or "Expiration".
  void Write(DeliveryType type, const DeliveryRecord& r);
  // Starts a write of everything buffered if none is in flight.
  void Flush();
  bool idle() const { return !writing_ && buffer_.empty(); }

  static void FormatTimestamp(std::string& out, uint64_t micros);
  // Appends one DeliveryRecord line of the given type (what Write
  // buffers); public so tests can check the bytes.
  static void FormatDelivery(std::string& out, DeliveryType type, const DeliveryRecord& r);
  // The same for a Reception: one line, or, past kReceptionRecipientsPerLine
  // recipients, one line per that many with "part" (from 1) and "parts".
  static void FormatReception(std::string& out, const ReceptionRecord& r);

 private:
  void OnWritten(int result, uint32_t flags);
  void MakeRoom();

  io::Ring& ring_;
  int fd_;
  std::string buffer_;
  std::string in_flight_;
  size_t in_flight_done_ = 0;
  bool writing_ = false;
  io::MemberCompletion<AccountingLog, &AccountingLog::OnWritten> written_{this};
};

}  // namespace sluice::log
