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
// A ".tmp" file and a torn record at the tail of a shard directory's newest
// segment are unfinished writes (never acknowledged); anything else that
// fails its checks is corruption (set aside, never deleted silently).
//
// What the CRCs cover: the footer CRC covers the footer's first 36 bytes
// (magic, envelope offset and size, the two other CRCs, version); those
// CRCs cover the envelope and the body. The 16-byte preamble (magic and
// record length) is covered by none, but is redundant: the footer states
// the record's length too (RecordLengthFromFooter), so recovery finds a
// record by its footer and never has to trust the preamble's length.
//
// Pure code: bytes in, structs out. Trusts nothing it decodes.
#pragma once

#include <cstdint>
#include <functional>
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
  // A mail-merge batch (docs/PICKUP.md): this recipient's value of each of
  // the envelope's merge_fields, in that order. Empty otherwise.
  std::vector<std::string> values;
};

// Bounds a decoded envelope must respect (untrusted bytes on disk).
inline constexpr size_t kMaxMergeFields = 64;

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
  // The submitter was neither inside relay_from nor authenticated (only
  // mail to postmaster_address is taken from such a client): its sender is
  // unverified, so delivery never sends it a DSN (backscatter). Written only
  // when set; records without it (all older ones) are trusted.
  bool untrusted = false;

  // Bulk batches (docs/PICKUP.md). Each is written only when set, so other
  // records stay byte-identical to those written before they existed.
  std::string campaign;  // the manifest's campaign id
  std::string tenant;    // the manifest's tenant id
  // A mail merge: the body is a template (merge/template.h) and each
  // recipient carries its values of these fields, in this order. Empty: the
  // body is the message itself, the same for every recipient.
  std::vector<std::string> merge_fields;
  // A merge whose template has no Message-ID: delivery gives each
  // recipient's rendering its own "Message-ID: <ID.N@message_id_host>" (N
  // its recipient index), because receivers take one Message-ID for one
  // message and may drop the "duplicates". Empty otherwise: the template
  // has one, or added_headers carries the one every recipient shares.
  std::string message_id_host;

  // Encoding only, for batches of up to a million recipients: recipients
  // already serialised with PackRecipient, used instead of `recipients`
  // (which must then be empty), so a batch is never held as a million
  // Recipient objects. EncodeEnvelope writes them first; DecodeEnvelope
  // never fills these (it fills `recipients`).
  std::string packed_recipients;
  uint32_t packed_count = 0;

  // Decoded with DecodeOptions::keep: `recipients` holds only the kept
  // ones, `recipient_indexes` their indexes in the record (ascending), and
  // recipient_total how many the record has. Such an envelope is for
  // reading only (never encoded again).
  bool partial = false;
  std::vector<uint32_t> recipient_indexes;
  uint32_t recipient_total = 0;

  bool is_merge() const { return !merge_fields.empty(); }
  size_t recipient_count() const {
    return partial ? recipient_total : recipients.size() + packed_count;
  }
  // The recipient at `index` in the record; null if there is none or it was
  // not kept.
  const Recipient* FindRecipient(uint32_t index) const;
};

// Serialises the envelope: "key len\nvalue\n" per field. A recipient is
// "rcpt" followed by one "value" per merge field; merge fields are "field"
// keys, in order.
std::string EncodeEnvelope(const Envelope& envelope);
// The same, taking packed_recipients over as the start of the result
// instead of copying it (the encoding is identical).
std::string EncodeEnvelope(Envelope&& envelope);

struct DecodeOptions {
  // False: a merge record's per-recipient values are checked (one per merge
  // field) but not kept, for readers that need only the addresses: start-up
  // recovery and `queue messages` hold a million-recipient batch in about
  // half the memory.
  bool merge_values = true;
  // Set: only the recipients whose address it accepts are kept (with their
  // values), the others are checked and counted (Envelope::partial). A
  // delivery shard keeps the recipients of the domains it owns: a batch of
  // a million costs each shard only its own.
  std::function<bool(std::string_view address)> keep;
};
absl::StatusOr<Envelope> DecodeEnvelope(std::string_view bytes);
absl::StatusOr<Envelope> DecodeEnvelope(std::string_view bytes, const DecodeOptions& options);

// Appends one recipient, encoded as EncodeEnvelope encodes it, to `out`
// (Envelope::packed_recipients).
void PackRecipient(std::string& out, std::string_view address,
                   const std::vector<std::string_view>& values);

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
std::string EncodeTrailer(Envelope&& envelope);  // takes packed_recipients over

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
absl::StatusOr<ParsedFile> ParseFile(std::string_view record, const DecodeOptions& options);

// The same checks without the preamble: everything the CRCs cover (footer,
// envelope, body) and nothing they do not. Recovery uses it to find records
// whose magic or length field was damaged (spool/segment_map.h).
absl::StatusOr<ParsedFile> ParseRecordContent(std::string_view record,
                                              const DecodeOptions& options);
// The whole record's length as a footer states it (its fields are covered by
// the footer CRC, unlike the preamble's length); an error if impossible.
absl::StatusOr<uint64_t> RecordLengthFromFooter(const Footer& footer);

// File names in a shard directory.
std::string MessageFileName(base::QueueId id);    // "<id>.msg"
std::string TemporaryFileName(base::QueueId id);  // "<id>.tmp"
std::string SegmentFileName(base::QueueId id);    // "<id>.seg"

}  // namespace sluice::spool
