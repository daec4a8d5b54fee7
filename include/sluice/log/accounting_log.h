// The accounting log: one JSON line per event (Reception now; Delivery,
// TransientFailure, Bounce and Expiration with the delivery engine).
//
// Each shard owns one AccountingLog writing to the same O_APPEND file: a
// record is appended to the shard's buffer and the buffer goes out in one
// io_uring write per loop turn (whole lines only, so shards never interleave
// inside a line). Records are written, not fsynced: the spool, not the log,
// is the durable truth. The buffer is bounded (limits::kLogBufferMax); past
// it the shard waits for the write in flight rather than drop a record.
#pragma once

#include <cstdint>
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
  uint64_t size = 0;
  std::string_view client;
  std::string_view helo;
  std::string_view protocol;
};

// A dropped file that could not be accepted (source "pickup"): it went to
// bad/ with an .error note.
struct RejectionRecord {
  uint64_t ts_micros = 0;
  std::string_view source;  // "pickup"
  std::string_view file;    // the name it had in new/ (or its claimed name)
  std::string_view reason;  // "line N: ..." as in the .error file
};

class AccountingLog {
 public:
  // fd < 0: logging disabled, records are dropped silently.
  AccountingLog(io::Ring& ring, int fd) : ring_(ring), fd_(fd) {}

  void Reception(const ReceptionRecord& r);
  // {"type":"Rejection","ts":...,"source":...,"file":...,"reason":...}
  void Rejection(const RejectionRecord& r);
  // Starts a write of everything buffered if none is in flight.
  void Flush();
  bool idle() const { return !writing_ && buffer_.empty(); }

  static void FormatTimestamp(std::string& out, uint64_t micros);

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
