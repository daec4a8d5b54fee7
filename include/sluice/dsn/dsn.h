// Delivery status notifications ("bounces", RFC 3464 in an RFC 6522
// multipart/report) for recipients that failed for good or expired.
//
// Pure code: facts in, the whole DSN message out, ready to spool with the
// null sender <> and the original sender as its one recipient. No I/O, no
// clock (times are passed in). What it trusts: reporting_mta must be our own
// host name (checked); everything else (remote reply text, MX host names,
// addresses, the original headers) may be hostile and is made safe.
//
// The message:
//
//   From: Mail Delivery System <MAILER-DAEMON@reporting_mta>
//   To: original sender
//   Subject: Undelivered Mail Returned to Sender
//   Date, Message-ID <id.now.dsn@reporting_mta>, Auto-Submitted: auto-replied
//   X-Failed-Recipients: a, b, ... (as Exim does; folded; at most
//     kFailedRecipientsHeaderMax bytes, the delivery-status part is the full list)
//   MIME-Version: 1.0
//   Content-Type: multipart/report; report-type=delivery-status; boundary="..."
//   1. text/plain: what happened, one paragraph per recipient
//   2. message/delivery-status: Reporting-MTA: dns; X, X-Sluice-Queue-ID,
//      Arrival-Date; per recipient Final-Recipient, Action: failed, Status,
//      Remote-MTA (when known), Diagnostic-Code, Last-Attempt-Date (when known)
//   3. text/rfc822-headers: the original header section, possibly cut
//
// Choices, so nobody has to rediscover them:
// - Lines are CRLF and at most 998 bytes (RFC 5322 2.1.1). Header fields,
//   the delivery-status fields included, are folded at spaces near 78
//   columns. A word too long for one line (no real address or host name is)
//   is broken by inserting a fold, which shows as a space when unfolded.
// - Untrusted text for header fields (diagnostic, Remote-MTA, queue id):
//   CR/LF runs become "; " (a raw multi-line reply reads like a joined one),
//   other control bytes become spaces, bytes >= 0x80 become '?', runs of
//   white space collapse to one. No input can start a header line or a MIME
//   part. The delivery-status part is therefore always 7-bit.
// - Status must be "4.x.y" or "5.x.y" (failed is either; 4.4.7 for expiry);
//   anything else is replaced by 5.0.0 (4.4.7 when expired), never rejected:
//   a bounce must not be lost over a malformed code.
// - Diagnostic-Code: "smtp; <reply>" when the diagnostic has the shape of an
//   SMTP reply (three digits 4xx/5xx then space, '-' or end), else
//   "X-Sluice; <text>" (a local reason: DNS failure, connection refused).
//   Omitted when the diagnostic is empty.
// - Addresses: CTL bytes and invalid UTF-8 become '?', one pair of angle
//   brackets around the address is dropped. An ASCII address is
//   "Final-Recipient: rfc822; a@b". A non-ASCII (SMTPUTF8) address is
//   "Final-Recipient: utf-8; " in the 7-bit utf-8-addr-xtext form of RFC 6533
//   (non-ASCII, '\', '+', '=', space as \x{HEX}), so the delivery-status part
//   stays 7-bit; in To:, X-Failed-Recipients and the text it appears as
//   UTF-8, which sets `smtputf8` (RFC 6532 headers).
// - The original header section ends at the first empty line or at the first
//   line that is neither a field nor a continuation (body text is never
//   returned). Its lines are re-terminated with CRLF, NUL and bare CR become
//   spaces, a line over 998 bytes is folded. It is cut at the last header
//   field boundary within max_returned_header_bytes (a single field bigger
//   than that is cut at its last line boundary within the limit); never more
//   than the limit is returned, and the text part says it was cut. 8-bit
//   header bytes are returned as they are (Content-Transfer-Encoding: 8bit),
//   which sets `eight_bit`.
// - The boundary is built from the queue id and now_micros and checked
//   against the content of every part; on a clash a counter is appended.
// - Dates are RFC 5322 ("Tue, 03 Mar 2026 09:05:07 +0000"), always UTC, and
//   do not depend on the locale.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace sluice::dsn {

enum class Action { kFailed, kDelayed };  // kDelayed reserved; we send failed only

struct FailedRecipient {
  std::string address;     // original recipient, no angle brackets
  std::string status;      // enhanced code "5.1.1" (or "4.4.7" for expiry)
  std::string remote_mta;  // MX host name that answered, "" if none
  // The remote reply "550 5.1.1 <x>: user unknown" (multi-line joined with
  // "; "), or local text ("Host or domain name not found").
  std::string diagnostic;
  uint64_t last_attempt_micros = 0;  // wall clock us since epoch; 0: not known, omitted
};

struct DsnInput {
  std::string reporting_mta;    // our host name (letters, digits, '-', '.')
  std::string original_id;      // our queue id
  std::string original_sender;  // the DSN's recipient; must be non-empty
  uint64_t arrival_micros = 0;  // 0: Arrival-Date omitted
  uint64_t now_micros = 0;
  bool expired = false;  // "could not be delivered within N" wording
  // The queue lifetime N for that wording; 0: now_micros - arrival_micros.
  uint64_t max_queue_time_micros = 0;
  std::string_view original_message;        // added headers + body as queued (CRLF lines)
  std::vector<FailedRecipient> recipients;  // non-empty
  size_t max_returned_header_bytes = 64 * 1024;
};

struct Dsn {
  std::string message;
  // Some byte >= 0x80 in the message: spool with BODY=8BITMIME.
  bool eight_bit = false;
  // The DSN's own header section has UTF-8 (a non-ASCII address): it needs
  // SMTPUTF8 downstream, like a message received with SMTPUTF8.
  bool smtputf8 = false;
};

// X-Failed-Recipients stops listing addresses past this many bytes.
inline constexpr size_t kFailedRecipientsHeaderMax = 8 * 1024;

// The whole DSN message (RFC 5322, CRLF lines, ready to spool with sender <>).
// InvalidArgument if reporting_mta is not a host name, original_sender is
// empty (never bounce a bounce: see LooksLikeDsn), recipients is empty or a
// recipient's address is empty. Total: any other input gives a valid message.
absl::StatusOr<Dsn> BuildDsn(const DsnInput& in);

// True if a message is itself a bounce, so no DSN may be sent for it: its
// sender is null ("" or "<>"), or (belt and braces, for a bounce relayed
// with a real sender) its top-level header section has a Content-Type of
// multipart/report with report-type=delivery-status (or RFC 6533's
// global-delivery-status), folding, case and quoting notwithstanding.
bool LooksLikeDsn(std::string_view sender, std::string_view message);

}  // namespace sluice::dsn
