// A streaming RFC 4180 CSV reader for batch recipients files (docs/PICKUP.md).
//
// Records end with CRLF or LF (a CR elsewhere outside quotes is an error);
// fields are separated by ','; a field that starts with '"' is quoted: it
// may hold ',', CR, LF and '""' (a literal '"'), and must be followed by ','
// or the end of the record. A UTF-8 byte order mark at the very start is
// skipped. A last record without a line end is accepted; a quoted field
// still open at the end of the input is an error (a truncated file).
//
// The input comes in chunks of any size (Feed), so a file of any length is
// read with bounded memory: one record at most limits.max_record_size bytes.
// A malformed record is reported once (CsvRecord::error) and skipped up to
// the next LF; the reader then continues. Pure: no I/O (fuzz/csv_fuzzer).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::pickup {

struct CsvLimits {
  size_t max_record_size = 64 * 1024;  // bytes of one record, line ends and quotes included
  size_t max_fields = 64;              // fields in one record
};

struct CsvRecord {
  size_t line = 0;  // 1-based line where the record starts
  // The fields, unquoted; valid only during the callback. Empty when error.
  std::vector<std::string_view> fields;
  std::string error;  // non-empty: the record is malformed and was skipped
};

class CsvReader {
 public:
  using Callback = std::function<void(const CsvRecord&)>;

  CsvReader(CsvLimits limits, Callback each);

  // The next bytes of the input; runs the callback for each record they
  // complete.
  void Feed(std::string_view bytes);
  // End of input: the last record (if any) is delivered.
  void Finish();

  size_t lines() const { return line_; }  // LFs seen, plus one

 private:
  enum class State : uint8_t {
    kFieldStart,  // at the start of a field
    kUnquoted,    // inside an unquoted field
    kQuoted,      // inside a quoted field
    kQuote,       // a '"' inside a quoted field: end of field, or the first of '""'
    kCr,          // a CR outside quotes: LF must follow
    kSkip,        // after an error: up to the next LF
  };

  // Feed's parts (csv.cc).
  bool CheckBom(std::string_view& in);  // false: too few bytes yet to tell
  void NextLine();
  void Delimiter(char c);  // ',', CR or LF outside quotes
  size_t SkipByte(std::string_view in, size_t i);
  size_t FieldBytes(std::string_view in, size_t i);
  size_t QuotedBytes(std::string_view in, size_t i);
  size_t AfterQuote(std::string_view in, size_t i);
  size_t AfterCr(std::string_view in, size_t i);
  void EndField();
  void EndRecord();
  void Error(std::string reason);
  bool Grow(size_t n);  // counts n record bytes; false (and an error) past the limit
  size_t Room() const { return limits_.max_record_size - record_bytes_; }

  const CsvLimits limits_;
  Callback each_;
  State state_ = State::kFieldStart;
  bool bom_checked_ = false;
  std::string bom_;           // the first bytes, until we know whether they are a BOM
  std::string data_;          // the current record's field bytes, unquoted
  std::vector<size_t> ends_;  // end of each finished field in data_
  size_t record_bytes_ = 0;
  size_t line_ = 1;
  size_t record_line_ = 1;
  bool record_started_ = false;  // any byte of the current record seen
  CsvRecord record_;
};

}  // namespace sluice::pickup
