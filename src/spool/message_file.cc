#include "sluice/spool/message_file.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "little_endian.h"
#include "sluice/base/check.h"
#include "sluice/base/crc32c.h"
#include "sluice/base/strings.h"

namespace sluice::spool {
namespace {

void PutField(std::string& out, std::string_view key, std::string_view value) {
  absl::StrAppend(&out, base::Av(key), " ", value.size(), "\n");
  out.append(value);
  out.push_back('\n');
}

// Reads one "key len\nvalue\n" field from `in`.
bool NextField(std::string_view& in, std::string_view& key, std::string_view& value) {
  size_t space = in.find(' ');
  size_t nl = in.find('\n');
  if (space == std::string_view::npos || nl == std::string_view::npos || space > nl) return false;
  key = in.substr(0, space);
  uint64_t len = 0;
  if (!base::ParseUint64(in.substr(space + 1, nl - space - 1), len)) return false;
  in.remove_prefix(nl + 1);
  if (len >= in.size() || in[len] != '\n') return false;  // no overflow: len < size
  value = in.substr(0, len);
  in.remove_prefix(len + 1);
  return true;
}

// The fields before the recipients, in the order records have always had.
void AppendHead(std::string& out, const Envelope& e) {
  PutField(out, "version", absl::StrCat(kFormatVersion));
  PutField(out, "id", e.id.ToString());
  PutField(out, "arrival", absl::StrCat(e.arrival_micros));
  PutField(out, "client", e.client_ip);
  PutField(out, "helo", e.helo);
  PutField(out, "protocol", e.protocol);
  PutField(out, "sender", e.sender);
  PutField(out, "body", e.eight_bit ? "8BITMIME" : "7BIT");
  PutField(out, "smtputf8", e.smtputf8 ? "1" : "0");
  PutField(out, "headers", e.added_headers);
  PutField(out, "body_size", absl::StrCat(e.body_size));
}

// The optional fields after the recipients, each only when set.
void AppendTail(std::string& out, const Envelope& e) {
  if (!e.origin.empty()) PutField(out, "origin", e.origin);
  if (e.untrusted) PutField(out, "untrusted", "1");
  if (!e.campaign.empty()) PutField(out, "campaign", e.campaign);
  if (!e.tenant.empty()) PutField(out, "tenant", e.tenant);
  for (const std::string& f : e.merge_fields) PutField(out, "field", f);
  if (!e.message_id_host.empty()) PutField(out, "msgid_host", e.message_id_host);
}

}  // namespace

void PackRecipient(std::string& out, std::string_view address,
                   const std::vector<std::string_view>& values) {
  PutField(out, "rcpt", address);
  for (std::string_view v : values) PutField(out, "value", v);
}

std::string EncodeEnvelope(const Envelope& e) {
  SLUICE_CHECK(!e.partial);  // a shard's share of the recipients is not the record
  std::string out;
  if (e.packed_count > 0) {
    // Packed recipients go first (see EncodeEnvelope(Envelope&&)).
    out.reserve(e.packed_recipients.size() + 512 + e.added_headers.size());
    out = e.packed_recipients;
    AppendHead(out, e);
    AppendTail(out, e);
    return out;
  }
  out.reserve(256 + e.added_headers.size() + e.recipients.size() * 40);
  AppendHead(out, e);
  for (const Recipient& r : e.recipients) {
    PutField(out, "rcpt", r.address);
    for (const std::string& v : r.values) PutField(out, "value", v);
  }
  AppendTail(out, e);
  return out;
}

std::string EncodeEnvelope(Envelope&& e) {
  if (e.packed_count == 0) return EncodeEnvelope(static_cast<const Envelope&>(e));
  // The decoder takes fields in any order, so the packed block (possibly
  // tens of megabytes) becomes the start of the encoding without a copy.
  std::string out = std::move(e.packed_recipients);
  e.packed_recipients.clear();
  AppendHead(out, e);
  AppendTail(out, e);
  return out;
}

namespace {

// The envelope fields stored as they are read; false for any other key.
bool ApplyPlainField(std::string_view key, std::string_view value, Envelope& e) {
  if (key == "client") {
    e.client_ip = std::string(value);
  } else if (key == "helo") {
    e.helo = std::string(value);
  } else if (key == "protocol") {
    e.protocol = std::string(value);
  } else if (key == "sender") {
    e.sender = std::string(value);
  } else if (key == "body") {
    e.eight_bit = value == "8BITMIME";
  } else if (key == "smtputf8") {
    e.smtputf8 = value == "1";
  } else if (key == "headers") {
    e.added_headers = std::string(value);
  } else if (key == "origin") {
    e.origin = std::string(value);
  } else if (key == "untrusted") {
    e.untrusted = value == "1";
  } else if (key == "campaign") {
    e.campaign = std::string(value);
  } else if (key == "tenant") {
    e.tenant = std::string(value);
  } else if (key == "msgid_host") {
    e.message_id_host = std::string(value);
  } else {
    return false;
  }
  return true;
}

// DecodeEnvelope's state from field to field: the envelope so far, which
// required fields were seen, and the merge values per recipient when they
// are counted rather than kept (DecodeOptions::merge_values false).
class EnvelopeDecoder {
 public:
  explicit EnvelopeDecoder(const DecodeOptions& options) : options_(options) {}

  absl::Status Field(std::string_view key, std::string_view value) {
    if (key == "version") {
      uint64_t v = 0;
      if (!base::ParseUint64(value, v) || v != kFormatVersion) {
        return absl::DataLossError("unknown envelope version");
      }
      have_version_ = true;
    } else if (key == "id") {
      auto id = base::QueueId::Parse(value);
      if (!id) return absl::DataLossError("bad queue id in envelope");
      e_.id = *id;
      have_id_ = true;
    } else if (key == "arrival") {
      if (!base::ParseUint64(value, e_.arrival_micros)) return absl::DataLossError("bad arrival");
    } else if (key == "body_size") {
      if (!base::ParseUint64(value, e_.body_size)) return absl::DataLossError("bad body size");
      have_size_ = true;
    } else if (key == "rcpt") {
      return AddRecipient(value);
    } else if (key == "value") {
      return MergeValue(value);
    } else if (key == "field") {
      if (e_.merge_fields.size() >= kMaxMergeFields) {
        return absl::DataLossError("too many merge fields");
      }
      e_.merge_fields.emplace_back(value);
    } else {
      // Unknown keys are skipped: a newer writer may add fields.
      ApplyPlainField(key, value, e_);
    }
    return absl::OkStatus();
  }

  // The envelope, once every field is read and the whole checks out.
  absl::StatusOr<Envelope> Finish() && {
    if (!have_version_ || !have_id_ || !have_size_) {
      return absl::DataLossError("envelope lacks version, id or body size");
    }
    if (total_ == 0) return absl::DataLossError("envelope has no recipients");
    // A merge record gives every recipient exactly one value per field; any
    // other record gives none.
    for (uint32_t i = 0; i < total_; ++i) {
      const size_t n = counting() ? counts_[i] : e_.recipients[i].values.size();
      if (n != e_.merge_fields.size()) {
        return absl::DataLossError("a recipient's merge values do not match the merge fields");
      }
    }
    if (options_.keep) {
      e_.partial = true;
      e_.recipient_total = total_;
    }
    return std::move(e_);
  }

 private:
  // Values are counted apart from the recipients when some are not kept.
  bool counting() const { return !options_.merge_values || options_.keep; }

  absl::Status AddRecipient(std::string_view address) {
    if (total_ == UINT32_MAX) return absl::DataLossError("too many recipients");
    last_kept_ = !options_.keep || options_.keep(address);
    if (last_kept_) {
      e_.recipients.push_back(Recipient{std::string(address), {}});
      if (options_.keep) e_.recipient_indexes.push_back(total_);
    }
    if (counting()) counts_.push_back(0);
    ++total_;
    return absl::OkStatus();
  }

  // A "value" field: one merge value of the latest recipient.
  absl::Status MergeValue(std::string_view value) {
    if (total_ == 0) return absl::DataLossError("merge value before any recipient");
    if (counting()) {
      if (counts_.back() >= kMaxMergeFields) return absl::DataLossError("too many merge values");
      ++counts_.back();
    }
    if (!options_.merge_values || !last_kept_) return absl::OkStatus();
    std::vector<std::string>& values = e_.recipients.back().values;
    if (values.size() >= kMaxMergeFields) return absl::DataLossError("too many merge values");
    values.emplace_back(value);
    return absl::OkStatus();
  }

  const DecodeOptions& options_;
  Envelope e_;
  uint32_t total_ = 0;           // recipients seen, kept or not
  bool last_kept_ = true;        // the latest recipient is in e_.recipients
  std::vector<uint8_t> counts_;  // values per recipient, when counting()
  bool have_version_ = false;
  bool have_id_ = false;
  bool have_size_ = false;
};

}  // namespace

const Recipient* Envelope::FindRecipient(uint32_t index) const {
  if (!partial) return index < recipients.size() ? &recipients[index] : nullptr;
  auto it = std::lower_bound(recipient_indexes.begin(), recipient_indexes.end(), index);
  if (it == recipient_indexes.end() || *it != index) return nullptr;
  return &recipients[static_cast<size_t>(it - recipient_indexes.begin())];
}

absl::StatusOr<Envelope> DecodeEnvelope(std::string_view in) {
  return DecodeEnvelope(in, DecodeOptions{});
}

absl::StatusOr<Envelope> DecodeEnvelope(std::string_view in, const DecodeOptions& options) {
  EnvelopeDecoder decoder(options);
  std::string_view key, value;
  while (!in.empty()) {
    if (!NextField(in, key, value)) return absl::DataLossError("malformed envelope field");
    if (absl::Status s = decoder.Field(key, value); !s.ok()) return s;
  }
  return std::move(decoder).Finish();
}

std::string EncodeFooter(const Footer& f) {
  std::string out(kFooterMagic);
  PutU64(out, f.envelope_offset);
  PutU32(out, f.envelope_size);
  PutU32(out, f.envelope_crc);
  PutU32(out, f.body_crc);
  PutU32(out, kFormatVersion);
  PutU32(out, 0);
  PutU32(out, base::Crc32c(0, out.data(), out.size()));
  return out;
}

absl::StatusOr<Footer> DecodeFooter(std::string_view b) {
  if (b.size() != kFooterSize || b.substr(0, 8) != kFooterMagic) {
    return absl::DataLossError("no footer (file incomplete)");
  }
  if (GetU32(b.data() + 36) != base::Crc32c(0, b.data(), 36)) {
    return absl::DataLossError("footer checksum mismatch");
  }
  if (GetU32(b.data() + 28) != kFormatVersion) return absl::DataLossError("unknown footer version");
  Footer f;
  f.envelope_offset = GetU64(b.data() + 8);
  f.envelope_size = GetU32(b.data() + 16);
  f.envelope_crc = GetU32(b.data() + 20);
  f.body_crc = GetU32(b.data() + 24);
  return f;
}

namespace {

std::string SealTrailer(std::string trailer, uint64_t body_size, uint32_t body_crc) {
  // The footer holds the envelope size in 32 bits; batch producers bound
  // their envelopes far below (pickup/batch.h).
  SLUICE_CHECK(trailer.size() <= UINT32_MAX);
  Footer f;
  f.envelope_offset = kPreambleSize + body_size;
  f.envelope_size = static_cast<uint32_t>(trailer.size());
  f.envelope_crc = base::Crc32c(0, trailer.data(), trailer.size());
  f.body_crc = body_crc;
  trailer += EncodeFooter(f);
  return trailer;
}

}  // namespace

std::string EncodeTrailer(const Envelope& e) {
  return SealTrailer(EncodeEnvelope(e), e.body_size, e.body_crc);
}

std::string EncodeTrailer(Envelope&& e) {
  const uint64_t body_size = e.body_size;
  const uint32_t body_crc = e.body_crc;
  return SealTrailer(EncodeEnvelope(std::move(e)), body_size, body_crc);
}

std::string EncodePreamble(uint64_t record_length) {
  std::string out(kMagic);
  PutU64(out, record_length);
  return out;
}

absl::StatusOr<uint64_t> DecodePreamble(std::string_view b) {
  if (b.size() < kPreambleSize || b.substr(0, kMagic.size()) != kMagic) {
    return absl::DataLossError("no record preamble");
  }
  return GetU64(b.data() + kMagic.size());
}

absl::StatusOr<ParsedFile> ParseFile(std::string_view file) {
  return ParseFile(file, DecodeOptions{});
}

absl::StatusOr<ParsedFile> ParseFile(std::string_view file, const DecodeOptions& options) {
  if (file.size() < kPreambleSize + kFooterSize) return absl::DataLossError("record too short");
  auto declared = DecodePreamble(file);
  if (!declared.ok()) return declared.status();
  if (*declared != 0 && *declared != file.size()) {
    return absl::DataLossError("record length does not match its preamble");
  }
  return ParseRecordContent(file, options);
}

absl::StatusOr<uint64_t> RecordLengthFromFooter(const Footer& footer) {
  // Compared without adding first: crafted values near 2^64 must not wrap.
  if (footer.envelope_offset < kPreambleSize ||
      footer.envelope_offset > UINT64_MAX - footer.envelope_size - kFooterSize) {
    return absl::DataLossError("footer states an impossible record length");
  }
  return footer.envelope_offset + footer.envelope_size + kFooterSize;
}

absl::StatusOr<ParsedFile> ParseRecordContent(std::string_view file, const DecodeOptions& options) {
  if (file.size() < kPreambleSize + kFooterSize) return absl::DataLossError("record too short");
  auto footer = DecodeFooter(file.substr(file.size() - kFooterSize));
  if (!footer.ok()) return footer.status();
  // Compared without adding: a crafted offset near 2^64 must not wrap.
  const uint64_t envelope_room = file.size() - kFooterSize;
  if (footer->envelope_offset < kPreambleSize || footer->envelope_offset > envelope_room ||
      footer->envelope_size != envelope_room - footer->envelope_offset) {
    return absl::DataLossError("footer points outside the file");
  }
  std::string_view env_bytes = file.substr(footer->envelope_offset, footer->envelope_size);
  if (base::Crc32c(0, env_bytes.data(), env_bytes.size()) != footer->envelope_crc) {
    return absl::DataLossError("envelope checksum mismatch");
  }
  auto envelope = DecodeEnvelope(env_bytes, options);
  if (!envelope.ok()) return envelope.status();
  std::string_view body = file.substr(kPreambleSize, footer->envelope_offset - kPreambleSize);
  if (body.size() != envelope->body_size) return absl::DataLossError("body size mismatch");
  if (base::Crc32c(0, body.data(), body.size()) != footer->body_crc) {
    return absl::DataLossError("body checksum mismatch");
  }
  envelope->body_crc = footer->body_crc;
  return ParsedFile{std::move(*envelope), body};
}

std::string MessageFileName(base::QueueId id) { return id.ToString() + ".msg"; }
std::string TemporaryFileName(base::QueueId id) { return id.ToString() + ".tmp"; }
std::string SegmentFileName(base::QueueId id) { return id.ToString() + ".seg"; }

}  // namespace sluice::spool
