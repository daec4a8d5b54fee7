// The single-message pickup format (docs/PICKUP.md): an RFC 5322 message,
// optionally led by envelope lines
//
//   X-Sluice-Envelope-From: <sender@example.com>     (at most once; <> allowed)
//   X-Sluice-Envelope-To: <rcpt@example.net>         (repeatable)
//
// which are removed from the stored message. Without envelope recipients the
// recipients come from To/Cc/Bcc, and without an envelope sender the sender
// comes from Sender, else From (like `sendmail -t`). Bcc fields are always
// removed from the stored message.
//
// With Limits::require_from, a message without exactly one From: field is
// refused (RFC 5322 3.6; Gmail refuses several).
//
// Line ends: a bare LF is normalised to CRLF (files written on Unix); a CR
// not followed by LF is rejected. NUL bytes are rejected.
//
// Pure: bytes in, a result out; no I/O. Trusts nothing: a dropped file is
// untrusted input (fuzzed by fuzz/pickup_fuzzer.cc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::pickup {

inline constexpr std::string_view kEnvelopeFrom = "X-Sluice-Envelope-From";
inline constexpr std::string_view kEnvelopeTo = "X-Sluice-Envelope-To";

struct Limits {
  size_t max_message_size = 50 * 1024 * 1024;  // bytes of the file and of the result
  size_t max_line_length = 1000;               // per line, with its CRLF
  size_t max_recipients = 1000;
  // Loop protection (server.max_hops): more Received: fields than this in
  // the header section refuse the file ("too many hops").
  size_t max_hops = 50;
  // Not exactly one From: is an error (server.require_from; the daemon's
  // default is true, pickup::MessageLimitsFor).
  bool require_from = false;
};

struct Message {
  std::string sender;  // "" is the null sender <>
  std::vector<std::string> recipients;
  std::string body;  // what gets stored: CRLF line ends, envelope lines and Bcc removed
  bool envelope_from_given = false;  // sender came from X-Sluice-Envelope-From
  bool envelope_to_given = false;    // recipients came from X-Sluice-Envelope-To
  bool eight_bit = false;            // the body has bytes >= 0x80
  bool smtputf8 = false;             // an address has non-ASCII characters
  bool has_date = false;             // the header section has Date:
  bool has_message_id = false;       // ... and Message-ID:
  size_t from_count = 0;             // From: fields in the header section
};

struct Error {
  size_t line = 0;  // 1-based line of the input; 0: the file as a whole
  std::string reason;
  std::string ToString() const;  // "line N: reason" or "file: reason"
};

struct Result {
  bool ok = false;
  Message message;  // valid when ok
  Error error;      // valid when !ok
};

Result ParseMessage(std::string_view file, const Limits& limits);

// Extracts the addr-specs of an RFC 5322 address list (To/Cc/Bcc/From
// field value, unfolded): display names, comments and groups are dropped.
// Returns false on unbalanced quotes, comments or angle brackets.
bool ExtractAddresses(std::string_view value, std::vector<std::string>& out);

}  // namespace sluice::pickup
