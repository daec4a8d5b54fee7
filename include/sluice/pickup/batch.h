// Batches (mail merge) in the pickup directory (docs/PICKUP.md, "Batches").
//
// A batch is a directory NAME.batch/ dropped into new/ holding
//   manifest.toml   envelope sender, the two file names below, optional
//                   campaign and tenant ids, List-Unsubscribe URLs and the
//                   Feedback-ID sender (bulk_headers.h)
//   a template      an RFC 5322 message with {{field}} placeholders
//                   (merge/template.h)
//   recipients      CSV (csv.h) with a header row naming `email` and the
//                   template's fields
// The manifest and the template are checked whole: any fault rejects the
// batch. Recipient rows are checked one by one: a bad row is reported
// ("line N: reason") and skipped, the others are queued.
//
// Pure: bytes in, results out (the daemon's I/O is in
// pickup/ingester.h, `sluice inject --batch` in cli/main.cc). The
// recipients file is read in chunks through BatchBuilder, which keeps per
// recipient only what the spool record needs: the address and the values of
// the fields the template uses, packed in the envelope's encoding
// (spool::PackRecipient), and the address once more for the announcement to
// the delivery shards. A million recipients cost about their CSV size twice.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "sluice/merge/template.h"
#include "sluice/pickup/bulk_headers.h"
#include "sluice/pickup/csv.h"

namespace sluice::pickup {

inline constexpr std::string_view kBatchSuffix = ".batch";
inline constexpr std::string_view kManifestName = "manifest.toml";

// Every size a producer controls, bounded. The defaults are what the daemon
// uses, except the three taken from [server] and the two from [pickup]
// (pickup::BatchLimitsFor, config_limits.h).
struct BatchLimits {
  size_t max_manifest_size = 64 * 1024;
  size_t max_template_size = 50 * 1024 * 1024;  // server.max_message_size
  size_t max_message_size = 50 * 1024 * 1024;   // a rendered message (server.max_message_size)
  size_t max_line_length =
      1000;  // template and rendered lines, with CRLF (server.max_data_line_length)
  size_t max_recipients = 1'000'000;                         // pickup.max_batch_recipients
  uint64_t max_recipients_file_size = 512ull * 1024 * 1024;  // pickup.max_recipients_file_size
  size_t max_record_size = 64 * 1024;                        // one CSV record
  size_t max_columns = 64;                                   // CSV fields per record
  size_t max_value_length = 998;          // one CSV value (an RFC 5322 line's worth)
  size_t max_address_length = 256;        // RFC 5321 4.5.3.1.3
  size_t max_id_length = 128;             // campaign, tenant
  size_t max_reported_lines = 1000;       // skipped rows listed one by one in NAME.error
  uint64_t max_packed_size = 1ull << 30;  // the stored recipients (the envelope's u32 size)
  // Policy from the configuration, not limits; false/"" here, the daemon's
  // defaults come from pickup::BatchLimitsFor.
  bool require_from = false;       // exactly one From: in the template (server.require_from)
  std::string feedback_id_sender;  // Feedback-ID's sender id unless the manifest gives one
                                   // (pickup.feedback_id_sender; "" for none)
};

// A fault, located: "manifest.toml line 3: ...", "template.eml line 4,
// column 9: ...", "recipients.csv line 1: ...", "batch: ...".
struct BatchError {
  std::string file;   // a file of the batch, or "batch" for the whole
  size_t line = 0;    // 0: the file as a whole
  size_t column = 0;  // 0: none
  std::string reason;
  std::string ToString() const;
};

struct Manifest {
  std::string sender;  // "" is the null sender <>
  std::string template_file;
  std::string recipients_file;
  std::string campaign;  // "" when not given
  std::string tenant;
  bool smtputf8 = false;  // the sender has non-ASCII characters
  BulkHeaders bulk;       // List-Unsubscribe, Feedback-ID (bulk_headers.h)
};

// Keys: sender (required; "" for <>), template, recipients (required; plain
// file names inside the batch directory), campaign, tenant (optional; 1 to
// max_id_length printable ASCII characters, no spaces), feedback_id_sender
// (optional), and the table [unsubscribe] with url, mailto (strings) and
// one_click (a boolean; default true for an https url). Anything else is an
// error. Feedback-ID is campaign:tenant:sender, the sender from the manifest
// or else limits.feedback_id_sender: from the manifest it needs campaign and
// tenant; from the configuration a batch without both gets none.
bool ParseManifest(std::string_view toml, const BatchLimits& limits, Manifest& out,
                   BatchError& error);

// A plain file name inside a batch directory: no '/', not "." or "..", not
// hidden, not the manifest, at most 255 bytes.
bool IsBatchFileName(std::string_view name);

struct PreparedTemplate {
  // What the spool stores as the body: the template with CRLF line ends
  // (placeholders kept) for a merge; without placeholders, the message
  // itself (escapes resolved), the same for every recipient.
  std::string stored;
  merge::CompiledTemplate compiled;
  bool eight_bit = false;
  bool has_date = false;
  bool has_message_id = false;
  size_t from_count = 0;  // From: fields in the template's header section
};

// Checks the template as a message (size, NUL, line ends, line length,
// header syntax, the empty line after the header; Bcc and
// X-Sluice-Envelope-* fields are refused: recipients come from the
// recipients file; with limits.require_from, not exactly one From: is
// refused) and compiles its placeholders. `file` names it in errors.
// With a manifest, its header fields (manifest->bulk) are written at the end
// of the header section; a template that already has List-Unsubscribe(-Post)
// when the manifest gives [unsubscribe], or Feedback-ID when the manifest
// gives feedback_id_sender, is refused (a Feedback-ID from the
// configuration's default yields to the template's). Positions in errors and
// in compiled.first_use are the template file's; a field only the manifest's
// URLs use has first_use {0, 0}.
bool PrepareTemplate(std::string_view file, std::string_view bytes, const BatchLimits& limits,
                     PreparedTemplate& out, BatchError& error, const Manifest* manifest = nullptr);

// Reads the recipients file in chunks and keeps what the spool needs.
class BatchBuilder {
 public:
  // `t` must outlive the builder. `file` names the recipients file in notes.
  BatchBuilder(const PreparedTemplate& t, std::string template_file, std::string file,
               const BatchLimits& limits);
  ~BatchBuilder();
  BatchBuilder(const BatchBuilder&) = delete;
  BatchBuilder& operator=(const BatchBuilder&) = delete;

  // The next bytes of the file. False once the batch is rejected whole
  // (error()); the rest need not be fed.
  bool Feed(std::string_view bytes);
  // End of the file. False when the batch is rejected whole (no header
  // row, no valid recipient, ...).
  bool Finish();
  const BatchError& error() const { return error_; }

  // After Finish():
  uint32_t accepted() const { return accepted_; }
  size_t skipped() const { return skipped_; }
  // "line N: reason" for the first max_reported_lines skipped rows.
  const std::vector<std::string>& notes() const { return notes_; }
  bool eight_bit() const { return eight_bit_; }
  bool smtputf8() const { return smtputf8_; }
  // The packed recipients (spool::Envelope::packed_recipients); moves them out.
  std::string TakePacked() { return std::move(packed_); }
  // Every accepted address, in order (views into the builder).
  std::vector<std::string_view> Addresses() const;
  // The column names of the header row, as read.
  const std::vector<std::string>& columns() const { return columns_; }

 private:
  struct ArenaHash;
  struct ArenaEq;
  std::string_view Address(uint32_t i) const;
  void OnRecord(const CsvRecord& r);
  void Header(const CsvRecord& r);
  void Row(const CsvRecord& r);
  void Skip(size_t line, std::string reason);
  void Reject(size_t line, size_t column, std::string file, std::string reason);

  const PreparedTemplate& t_;
  const std::string template_file_;
  const std::string file_;
  const BatchLimits limits_;
  CsvReader reader_;
  bool rejected_ = false;
  bool have_header_ = false;
  BatchError error_;
  std::vector<std::string> columns_;
  size_t email_column_ = 0;
  std::vector<size_t> field_columns_;     // per template field, its CSV column
  std::vector<std::string_view> values_;  // scratch, one row
  std::string packed_;
  std::string addresses_;               // every accepted address, back to back
  std::vector<uint32_t> address_ends_;  // end of each in addresses_
  std::unique_ptr<absl::flat_hash_set<uint32_t, ArenaHash, ArenaEq>> seen_;
  uint32_t accepted_ = 0;
  size_t skipped_ = 0;
  std::vector<std::string> notes_;
  bool eight_bit_ = false;
  bool smtputf8_ = false;
};

}  // namespace sluice::pickup
