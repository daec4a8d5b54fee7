// BatchBuilder (batch.h): a batch's recipients file, read in chunks through
// the CSV reader, checked row by row (a bad row is skipped and noted), the
// accepted recipients packed in the spool's envelope encoding. Pure.
#include <algorithm>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "batch_text.h"
#include "sluice/base/strings.h"
#include "sluice/pickup/batch.h"
#include "sluice/smtp/address.h"
#include "sluice/spool/message_file.h"

namespace sluice::pickup {

using base::Av;
using internal::HasNonAscii;
using internal::ParseAddress;
using internal::Shown;
using internal::Trim;

// ---------------------------------------------------------------------------
// The recipients

struct BatchBuilder::ArenaHash {
  const BatchBuilder* b;
  size_t operator()(uint32_t i) const { return absl::Hash<absl::string_view>()(Av(b->Address(i))); }
};
struct BatchBuilder::ArenaEq {
  const BatchBuilder* b;
  bool operator()(uint32_t x, uint32_t y) const { return b->Address(x) == b->Address(y); }
};

BatchBuilder::BatchBuilder(const PreparedTemplate& t, std::string template_file, std::string file,
                           const BatchLimits& limits)
    : t_(t),
      template_file_(std::move(template_file)),
      file_(std::move(file)),
      limits_(limits),
      reader_(CsvLimits{limits.max_record_size, limits.max_columns},
              [this](const CsvRecord& r) { OnRecord(r); }),
      seen_(std::make_unique<absl::flat_hash_set<uint32_t, ArenaHash, ArenaEq>>(0, ArenaHash{this},
                                                                                ArenaEq{this})) {}

BatchBuilder::~BatchBuilder() = default;

std::string_view BatchBuilder::Address(uint32_t i) const {
  const uint32_t begin = i == 0 ? 0 : address_ends_[i - 1];
  return std::string_view(addresses_).substr(begin, address_ends_[i] - begin);
}

std::vector<std::string_view> BatchBuilder::Addresses() const {
  std::vector<std::string_view> out;
  out.reserve(address_ends_.size());
  for (uint32_t i = 0; i < address_ends_.size(); ++i) out.push_back(Address(i));
  return out;
}

bool BatchBuilder::Feed(std::string_view bytes) {
  if (rejected_) return false;
  reader_.Feed(bytes);
  return !rejected_;
}

bool BatchBuilder::Finish() {
  if (rejected_) return false;
  reader_.Finish();
  if (rejected_) return false;
  if (!have_header_) {
    Reject(0, 0, file_, "empty file: no header row");
    return false;
  }
  if (accepted_ == 0) {
    Reject(0, 0, "batch",
           absl::StrCat("no valid recipient in ", file_,
                        skipped_ > 0 ? absl::StrCat(" (", skipped_, " rows skipped)") : ""));
    return false;
  }
  return true;
}

void BatchBuilder::Reject(size_t line, size_t column, std::string file, std::string reason) {
  if (rejected_) return;
  rejected_ = true;
  error_ = BatchError{std::move(file), line, column, std::move(reason)};
}

void BatchBuilder::Skip(size_t line, std::string reason) {
  ++skipped_;
  if (notes_.size() < limits_.max_reported_lines) {
    notes_.push_back(absl::StrCat("line ", line, ": ", reason));
  }
}

void BatchBuilder::OnRecord(const CsvRecord& r) {
  if (rejected_) return;
  if (!have_header_) return Header(r);
  Row(r);
}

void BatchBuilder::Header(const CsvRecord& r) {
  have_header_ = true;
  if (!r.error.empty()) return Reject(r.line, 0, file_, absl::StrCat("header row: ", r.error));
  if (r.fields.size() == 1 && Trim(r.fields[0]).empty()) {
    return Reject(r.line, 0, file_, "the first line must be the header row (email,...)");
  }
  bool have_email = false;
  for (size_t i = 0; i < r.fields.size(); ++i) {
    const std::string_view name = Trim(r.fields[i]);
    if (name.empty())
      return Reject(r.line, 0, file_, absl::StrCat("header row: column ", i + 1, " has no name"));
    for (const std::string& seen : columns_) {
      if (seen == name) {
        return Reject(r.line, 0, file_,
                      absl::StrCat("header row: column '", Shown(name), "' appears twice"));
      }
    }
    if (base::EqualsIgnoreCase(name, "email")) {
      if (have_email) return Reject(r.line, 0, file_, "header row: more than one email column");
      have_email = true;
      email_column_ = i;
    }
    columns_.emplace_back(name);
  }
  if (!have_email) {
    return Reject(r.line, 0, file_,
                  absl::StrCat("header row has no 'email' column (columns: ",
                               Shown(absl::StrJoin(columns_, ", "), 200), ")"));
  }
  for (size_t f = 0; f < t_.compiled.fields.size(); ++f) {
    const std::string& field = t_.compiled.fields[f];
    size_t col = columns_.size();
    for (size_t i = 0; i < columns_.size(); ++i) {
      if (columns_[i] == field) col = i;
    }
    if (col == columns_.size()) {
      const merge::CompiledTemplate::Position& at = t_.compiled.first_use[f];
      if (at.line == 0) {  // only the manifest's [unsubscribe] URLs use it
        return Reject(
            0, 0, std::string(kManifestName),
            absl::StrCat("[unsubscribe] uses the field '", field, "' but ", file_,
                         " has only the columns ", Shown(absl::StrJoin(columns_, ", "), 200)));
      }
      return Reject(at.line, at.column, template_file_,
                    absl::StrCat("unknown field '", field, "' (", file_, " has the columns ",
                                 Shown(absl::StrJoin(columns_, ", "), 200), ")"));
    }
    field_columns_.push_back(col);
  }
  values_.resize(field_columns_.size());
}

void BatchBuilder::Row(const CsvRecord& r) {
  if (!r.error.empty()) return Skip(r.line, r.error);
  if (r.fields.size() == 1 && r.fields[0].empty()) return;  // a blank line
  if (r.fields.size() != columns_.size()) {
    return Skip(r.line, absl::StrCat(r.fields.size(), r.fields.size() == 1 ? " field" : " fields",
                                     ", the header row has ", columns_.size()));
  }
  const std::string_view email = Trim(r.fields[email_column_]);
  if (email.empty()) return Skip(r.line, "empty email");
  if (email.size() > limits_.max_address_length) {
    return Skip(r.line, absl::StrCat("address longer than ", limits_.max_address_length, " bytes"));
  }
  std::string address, why;
  bool utf8 = false;
  if (!ParseAddress(email, smtp::PathKind::kForwardPath, address, utf8, why)) {
    return Skip(r.line, absl::StrCat("bad address '", Shown(email), "': ", why));
  }
  for (size_t f = 0; f < field_columns_.size(); ++f) {
    const std::string_view v = r.fields[field_columns_[f]];
    const std::string& name = t_.compiled.fields[f];
    if (v.size() > limits_.max_value_length) {
      return Skip(r.line,
                  absl::StrCat("field '", name, "': value of ", v.size(),
                               " bytes exceeds the limit (", limits_.max_value_length, ")"));
    }
    if (v.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos) {
      return Skip(r.line, absl::StrCat("field '", name,
                                       "': a line break or NUL in a value (a value fills part of "
                                       "one line)"));
    }
    values_[f] = v;
  }
  if (t_.compiled.has_placeholders()) {
    const size_t longest = merge::LongestMergedLine(t_.compiled, values_);
    if (longest > limits_.max_line_length) {
      return Skip(r.line, absl::StrCat("the merged message would have a line of ", longest,
                                       " bytes, over the line length limit (",
                                       limits_.max_line_length, ")"));
    }
    const size_t size = merge::RenderedSize(t_.compiled, values_);
    if (size > limits_.max_message_size) {
      return Skip(r.line, absl::StrCat("the merged message would be ", size,
                                       " bytes, over the message size limit (",
                                       limits_.max_message_size, ")"));
    }
  }
  // The same address twice is one recipient: the first row wins.
  const uint32_t index = static_cast<uint32_t>(address_ends_.size());
  addresses_.append(address);
  address_ends_.push_back(static_cast<uint32_t>(addresses_.size()));
  if (!seen_->insert(index).second) {
    address_ends_.pop_back();
    addresses_.resize(index == 0 ? 0 : address_ends_.back());
    return Skip(r.line, absl::StrCat("duplicate recipient <", Shown(address), ">"));
  }
  if (accepted_ >= limits_.max_recipients) {
    return Reject(0, 0, file_,
                  absl::StrCat("more than ", limits_.max_recipients,
                               " recipients (the limit per batch): split it into several"));
  }
  spool::PackRecipient(packed_, address, values_);
  if (packed_.size() > limits_.max_packed_size) {
    return Reject(0, 0, file_,
                  absl::StrCat("the recipients and their values exceed ", limits_.max_packed_size,
                               " bytes: split the batch"));
  }
  ++accepted_;
  smtputf8_ |= utf8;
  if (!eight_bit_) {
    for (std::string_view v : values_) eight_bit_ |= HasNonAscii(v);
  }
}

}  // namespace sluice::pickup
