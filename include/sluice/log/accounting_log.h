// The accounting log: one JSON line per event: Reception and Rejection on the
// way in; Delivery, TransientFailure, Bounce and Expiration per recipient on
// the way out. The fields are listed in docs/PROTOCOL.md.
//
// Each shard owns one AccountingLog writing to the same O_APPEND file: a
// record is appended to the shard's buffer and the buffer goes out in one
// io_uring write per loop turn (whole lines only, so shards never interleave
// inside a line). Records are written, not fsynced: the spool, not the log,
// is the durable truth.
//
// Records are whole lines or absent, even when writes fail (full disk, EIO):
// the shards share a LogFile whose writer token lets one write at a time
// reach the file, so a short write is completed with its rest and a failed
// one has its partial last line cut back out of the file; the whole lines not
// written are kept and retried (log_file.h). The buffer is bounded
// (limits::kLogBufferMax): past it, while writes fail, records are dropped
// whole and counted; while they succeed, the shard writes synchronously if
// no write is in flight (back-pressure without loss), else the buffer waits
// for the write in flight. Failures reach stderr a few lines per episode,
// and stats() counts them for a metrics endpoint.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/io/loop.h"
#include "sluice/log/log_file.h"

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
//   Deletion          removed by the administrator (`sluice queue delete`): no DSN
enum class DeliveryType : uint8_t { kDelivery, kTransientFailure, kBounce, kExpiration, kDeletion };
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

// Something refused on the way in. Source "pickup": a dropped file that
// went to bad/ with an .error note (file, reason). Source "smtp": a 4xx/5xx
// reply to a client (client, helo, sender, command, argument, reply); the
// empty fields of the other source are left out.
struct RejectionRecord {
  uint64_t ts_micros = 0;
  std::string_view source;    // "pickup" or "smtp"
  std::string_view file;      // the name it had in new/ (or its claimed name)
  std::string_view reason;    // "line N: ..." as in the .error file
  std::string_view client;    // smtp: the client's address
  std::string_view helo;      // smtp: its EHLO/HELO name, if given
  std::string_view sender;    // smtp: MAIL FROM of the open transaction, if any
  std::string_view command;   // smtp: the verb answered ("" for junk or a timeout)
  std::string_view argument;  // smtp: its argument (bounded; never AUTH's)
  std::string_view reply;     // smtp: the reply line
};

// A Reception lists at most this many recipients per line: a batch of a
// million is ~100 lines of ~300 KB (each with "part" and "parts"), not one
// line of 30 MB that log shippers truncate.
inline constexpr size_t kReceptionRecipientsPerLine = 10'000;

// One shard's log counters (sum them over shards for the process).
struct AccountingLogStats {
  uint64_t records_written = 0;  // lines that reached the file whole
  uint64_t records_lost = 0;     // lines dropped whole: buffer full while failing, or left at exit
  uint64_t bytes_written = 0;
  uint64_t write_errors = 0;    // writes that failed (errno) or wrote nothing
  uint64_t short_writes = 0;    // writes the kernel cut short (then completed or cut back)
  uint64_t fragments_cut = 0;   // partial lines removed from the file after a failed write
  uint64_t fragments_left = 0;  // partial lines that could not be removed (then ended by '\n')
};

class AccountingLog {
 public:
  // fd < 0: logging disabled, records are dropped silently. Shards writing
  // the same fd share its LogFile::ForFd.
  AccountingLog(io::Loop& ring, int fd);
  AccountingLog(io::Loop& ring, std::shared_ptr<LogFile> file);
  // Makes one last synchronous attempt at what is still buffered (waiting a
  // little for another shard's write); what remains is counted lost. The
  // shard must not destroy a log with a write in flight (idle()).
  ~AccountingLog();
  AccountingLog(const AccountingLog&) = delete;
  AccountingLog& operator=(const AccountingLog&) = delete;

  void Reception(const ReceptionRecord& r);
  // {"type":"Rejection","ts":...,"source":...,"file":...,"reason":...}
  void Rejection(const RejectionRecord& r);
  // {"type":"Delivery","ts":...,"id":...,"sender":...,"recipient":...,
  //  "domain":...,"mx":...,"ip":...,"code":250,"enhanced":"2.0.0","text":...,
  //  "attempt":1,"queue_time_s":0.042,"tls":""}, and the same fields with
  // "type":"TransientFailure", "Bounce" or "Expiration".
  void Write(DeliveryType type, const DeliveryRecord& r);
  // Starts a write of everything buffered if none is in flight, no other
  // shard's write is, and writes are not failing with the retry not due.
  void Flush();
  // Nothing to wait for: no write in flight, and nothing buffered or writes
  // failing (what is buffered then is the destructor's to try last).
  bool idle() const {
    return !writing_ && (buffer_.empty() || (file_ != nullptr && file_->failing()));
  }
  // Ordering against the spool: a recipient's final outcome must not become
  // durable in the ledger before its record reached the file, or a crash in
  // between leaves a recipient whose fate no record tells. mark() names the
  // records buffered so far; Reached(mark) is true once every one of them
  // reached the file, or never will in order (logging off, writes failing:
  // the ledger does not wait on a broken disk). Lines reach the file in the
  // order they were buffered (a failed batch's rest goes back in front).
  uint64_t mark() const { return admitted_total_; }
  bool Reached(uint64_t mark) const {
    return written_total_ >= mark || file_ == nullptr || file_->failing();
  }
  const AccountingLogStats& stats() const { return stats_; }

  static void FormatTimestamp(std::string& out, uint64_t micros);
  // Appends one DeliveryRecord line of the given type (what Write
  // buffers); public so tests can check the bytes.
  static void FormatDelivery(std::string& out, DeliveryType type, const DeliveryRecord& r);
  // The same for a Reception: one line, or, past kReceptionRecipientsPerLine
  // recipients, one line per that many with "part" (from 1) and "parts".
  static void FormatReception(std::string& out, const ReceptionRecord& r);

 private:
  // Before a record of `lines` lines is buffered: false if it is dropped.
  bool Admit(size_t lines);
  // Moves the buffer into the batch; the token must be held.
  void StartBatch();
  void Submit();
  void OnWritten(int result, uint32_t flags);
  // Accounts for one write of the batch (bytes or -errno); true when the
  // batch's rest must be written next (the token is still held).
  bool Advance(int result);
  void Failed(int err);
  void CutFragment(size_t at, size_t size);
  // Writes the batch synchronously to its end or its failure.
  void WriteBatchNow();
  void Lost(uint64_t records);

  io::Loop& ring_;
  std::shared_ptr<LogFile> file_;  // null when disabled
  int fd_;
  std::string buffer_;
  uint64_t buffer_lines_ = 0;    // records in buffer_ (lines, counted as admitted)
  uint64_t admitted_total_ = 0;  // lines ever buffered (mark())
  uint64_t written_total_ = 0;   // of those, the ones that reached the file whole
  std::string in_flight_;        // the batch: whole lines, maybe after a '\n' ending a torn tail
  size_t in_flight_done_ = 0;
  uint64_t in_flight_lines_ = 0;
  bool lead_newline_ = false;  // in_flight_ starts with that '\n'
  int interrupted_ = 0;        // EINTR/EAGAIN in a row
  bool writing_ = false;       // an io_uring write is in flight (the token is held)
  AccountingLogStats stats_;
  io::MemberCompletion<AccountingLog, &AccountingLog::OnWritten> written_{this};
};

}  // namespace sluice::log
