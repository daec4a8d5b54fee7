#include "sluice/pickup/csv.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace sluice::pickup {
namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";

bool Plain(char c) { return c != ',' && c != '\n' && c != '\r' && c != '"'; }

}  // namespace

CsvReader::CsvReader(CsvLimits limits, Callback each) : limits_(limits), each_(std::move(each)) {}

bool CsvReader::Grow(size_t n) {
  record_bytes_ += n;
  if (record_bytes_ <= limits_.max_record_size) return true;
  Error(absl::StrCat("record longer than ", limits_.max_record_size, " bytes"));
  return false;
}

void CsvReader::EndField() {
  if (ends_.size() >= limits_.max_fields) {
    Error(absl::StrCat("more than ", limits_.max_fields, " fields"));
    return;
  }
  ends_.push_back(data_.size());
}

void CsvReader::EndRecord() {
  record_.line = record_line_;
  record_.error.clear();
  record_.fields.clear();
  size_t start = 0;
  for (size_t end : ends_) {
    record_.fields.push_back(std::string_view(data_).substr(start, end - start));
    start = end;
  }
  each_(record_);
  data_.clear();
  ends_.clear();
  record_bytes_ = 0;
  record_started_ = false;
  state_ = State::kFieldStart;
}

void CsvReader::Error(std::string reason) {
  record_.line = record_line_;
  record_.fields.clear();
  record_.error = std::move(reason);
  each_(record_);
  data_.clear();
  ends_.clear();
  record_bytes_ = 0;
  record_started_ = false;
  state_ = State::kSkip;
}

bool CsvReader::CheckBom(std::string_view& in) {
  // The first three bytes may arrive in pieces.
  while (!in.empty() && bom_.size() < kBom.size() && kBom[bom_.size()] == in.front()) {
    bom_.push_back(in.front());
    in.remove_prefix(1);
  }
  if (bom_.size() == kBom.size()) {
    bom_checked_ = true;  // a BOM: dropped
    bom_.clear();
    return true;
  }
  if (in.empty()) return false;  // still undecided
  bom_checked_ = true;           // not a BOM: what was held back is data
  std::string held;
  held.swap(bom_);
  Feed(held);
  return true;
}

void CsvReader::NextLine() {
  ++line_;
  record_line_ = line_;
}

// Each step below takes the bytes from `i` its state allows and returns
// where the next step starts. It returns `i` itself only after an error
// (Grow() or Error() put the reader in kSkip), so byte i is skipped next.

size_t CsvReader::SkipByte(std::string_view in, size_t i) {
  if (in[i] == '\n') {
    NextLine();
    state_ = State::kFieldStart;
  }
  return i + 1;
}

void CsvReader::Delimiter(char c) {
  EndField();
  if (c == ',') {
    if (state_ != State::kSkip) state_ = State::kFieldStart;
  } else if (c == '\r') {
    if (state_ != State::kSkip) state_ = State::kCr;
  } else {  // '\n'
    if (state_ != State::kSkip) EndRecord();
    state_ = State::kFieldStart;  // this LF ends even a record in error
    NextLine();
  }
}

size_t CsvReader::FieldBytes(std::string_view in, size_t i) {
  const char c = in[i];
  if (Plain(c) || (c == '"' && state_ == State::kUnquoted)) {
    // A run of ordinary bytes at once ('"' inside an unquoted field is
    // kept as it is, as most CSV readers do).
    size_t j = i + 1;
    while (j < in.size() && (Plain(in[j]) || in[j] == '"')) ++j;
    const size_t take = std::min(j - i, Room());
    data_.append(in.data() + i, take);
    record_bytes_ += take;
    state_ = State::kUnquoted;
    i += take;
    if (i < j) Grow(1);  // byte i is one too many: the error, then skipped
    return i;
  }
  if (!Grow(1)) return i;
  if (c == '"') {
    state_ = State::kQuoted;
  } else {
    Delimiter(c);
  }
  return i + 1;
}

size_t CsvReader::QuotedBytes(std::string_view in, size_t i) {
  size_t j = i;
  while (j < in.size() && in[j] != '"') ++j;
  if (j > i) {
    // Exactly as many bytes as the limit allows, so where an over-long
    // record is cut (and skipping starts) does not depend on chunks.
    const size_t take = std::min(j - i, Room());
    for (size_t k = i; k < i + take; ++k) line_ += in[k] == '\n';
    data_.append(in.data() + i, take);
    record_bytes_ += take;
    i += take;
    if (i < j) Grow(1);  // byte i is one too many: the error, then skipped
    return i;
  }
  if (!Grow(1)) return i;
  state_ = State::kQuote;
  return i + 1;
}

size_t CsvReader::AfterQuote(std::string_view in, size_t i) {
  const char c = in[i];
  if (!Grow(1)) return i;
  if (c == '"') {
    data_.push_back('"');
    state_ = State::kQuoted;
  } else if (c == ',' || c == '\r' || c == '\n') {
    Delimiter(c);
  } else {
    Error("text after the closing quote of a field");
    return i;  // this byte is skipped (or ends the skip) in kSkip
  }
  return i + 1;
}

size_t CsvReader::AfterCr(std::string_view in, size_t i) {
  if (in[i] != '\n') {
    Error("CR not followed by LF");
    return i;
  }
  if (!Grow(1)) return i;
  EndRecord();
  NextLine();
  return i + 1;
}

void CsvReader::Feed(std::string_view in) {
  if (!bom_checked_ && !CheckBom(in)) return;
  size_t i = 0;
  while (i < in.size()) {
    if (state_ == State::kSkip) {
      i = SkipByte(in, i);
      continue;
    }
    if (!record_started_) {
      record_started_ = true;
      record_line_ = line_;
    }
    switch (state_) {
      case State::kFieldStart:
      case State::kUnquoted:
        i = FieldBytes(in, i);
        break;
      case State::kQuoted:
        i = QuotedBytes(in, i);
        break;
      case State::kQuote:
        i = AfterQuote(in, i);
        break;
      case State::kCr:
        i = AfterCr(in, i);
        break;
      case State::kSkip:
        break;  // handled above
    }
  }
}

void CsvReader::Finish() {
  if (!bom_checked_) {
    bom_checked_ = true;
    std::string held;
    held.swap(bom_);
    if (!held.empty()) Feed(held);
  }
  switch (state_) {
    case State::kSkip:
      return;
    case State::kQuoted:
      Error("unterminated quoted field at the end of the file (truncated file?)");
      return;
    case State::kCr:
      EndRecord();
      return;
    case State::kFieldStart:
    case State::kUnquoted:
    case State::kQuote:
      if (!record_started_) return;
      EndField();
      if (state_ != State::kSkip) EndRecord();
      return;
  }
}

}  // namespace sluice::pickup
