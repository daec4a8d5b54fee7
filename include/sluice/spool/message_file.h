// The on-disk format of one queued message (a "record"):
//
//   [preamble: 16 bytes: "SLUICEQ1", u64 record length (0: to end of file)]
//   [body: the message exactly as received, after dot-unstuffing]
//   [envelope: length-prefixed fields, see EncodeEnvelope]
//   [footer: 40 bytes, fixed layout below]
//
// so the body can be written while it arrives and the envelope (which needs
// facts known only at the end: size, missing headers) goes last. The footer
// locates the envelope and seals everything with CRC-32C: a record whose
// footer, envelope or body does not check out is corrupt.
//
// Records live in one of two kinds of file (spool/spool_writer.h):
// - a segment "<id>.seg": small messages of one shard appended back to back,
//   many per fdatasync (group commit); each record states its length;
// - a message file "<id>.msg": one large message streamed while it arrived,
//   written as "<id>.tmp", fdatasynced, renamed, directory fsynced.
// A ".tmp" file and a torn record at a segment's tail are unfinished writes
// (never acknowledged); a complete-looking record that fails its checks is
// corruption (set aside, never deleted silently).
//
// Pure code: bytes in, structs out. Trusts nothing it decodes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "sluice/base/queue_id.h"

namespace sluice::spool {

inline constexpr std::string_view kMagic = "SLUICEQ1";
inline constexpr size_t kPreambleSize = 16;
inline constexpr std::string_view kFooterMagic = "SLQEND01";
inline constexpr size_t kFooterSize = 40;
inline constexpr uint32_t kFormatVersion = 1;

struct Recipient {
  std::string address;
  // Per-recipient delivery state comes with the delivery engine; recipients
  // start out pending.
};

struct Envelope {
  base::QueueId id;
  uint64_t arrival_micros = 0;
  std::string client_ip;
  std::string helo;
  std::string protocol;  // "ESMTP", "SMTP", "pickup"
  std::string sender;    // "" is <>
  bool eight_bit = false;
  bool smtputf8 = false;
  std::string added_headers;  // CRLF-terminated lines Sluice puts above the body
  uint64_t body_size = 0;
  uint32_t body_crc = 0;
  std::vector<Recipient> recipients;
  // Where the message came from, when that must be known after a crash: for
  // a pickup file, its claimed name "<id>.pickup" (docs/PICKUP.md). Written
  // only when set, so records without it are byte-identical to older ones;
  // older readers skip the unknown key.
  std::string origin;
};

// Serialises the envelope: "key len\nvalue\n" per field.
std::string EncodeEnvelope(const Envelope& envelope);
absl::StatusOr<Envelope> DecodeEnvelope(std::string_view bytes);

struct Footer {
  uint64_t envelope_offset = 0;
  uint32_t envelope_size = 0;
  uint32_t envelope_crc = 0;
  uint32_t body_crc = 0;
};

// Footer layout: magic[8] | envelope_offset u64 | envelope_size u32 |
// envelope_crc u32 | body_crc u32 | version u32 | reserved u32 | footer_crc
// u32 (over the 36 bytes before it). Little-endian.
std::string EncodeFooter(const Footer& footer);
absl::StatusOr<Footer> DecodeFooter(std::string_view bytes);

// Everything after the body: envelope and footer, ready to append.
std::string EncodeTrailer(const Envelope& envelope);

// The 16-byte preamble of a record of `record_length` bytes (0: unknown,
// the record runs to the end of its file).
std::string EncodePreamble(uint64_t record_length);
// The record length a preamble declares; an error if the magic is wrong.
absl::StatusOr<uint64_t> DecodePreamble(std::string_view bytes);

// Parses and verifies one whole record held in memory.
struct ParsedFile {
  Envelope envelope;
  std::string_view body;  // into the input
};
absl::StatusOr<ParsedFile> ParseFile(std::string_view record);

// File names in a shard directory.
std::string MessageFileName(base::QueueId id);    // "<id>.msg"
std::string TemporaryFileName(base::QueueId id);  // "<id>.tmp"
std::string SegmentFileName(base::QueueId id);    // "<id>.seg"

}  // namespace sluice::spool
