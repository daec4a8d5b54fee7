// Building a webhook's POST body from accounting log lines (pure: no files,
// no sockets). A body is a JSON array of the records, each exactly the
// line the log holds (docs/PROTOCOL.md) without its newline:
//   [{"type":"Delivery",...},{"type":"Bounce",...}]
//
// What it trusts: the lines are the accounting log's, written by Sluice's
// own JSON writer (log/json.h): one object per line, starting with its
// "type" field. A line that does not look like that (a fragment left by a
// failed write, a hand edit) is never sent: RecordType() gives "" for it and
// Accepts() refuses it, so a receiver always gets a valid JSON array.
// Limits: a batch holds at most max_records records and max_bytes bytes of
// body; a single record longer than max_bytes is sent alone (never split,
// never dropped).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::webhook {

// The record types of docs/PROTOCOL.md, which webhook.types may name.
inline constexpr std::string_view kRecordTypes[] = {
    "Reception", "Rejection", "Delivery", "TransientFailure", "Bounce", "Expiration", "Deletion"};
bool IsRecordType(std::string_view type);

// The value of the line's leading "type" field ({"type":"Delivery",...}),
// or "" when the line is not a whole accounting record (no leading type,
// or not ending with '}').
std::string_view RecordType(std::string_view line);

// Which records a webhook wants: the types listed, or every type when the
// list is empty. Lines that are not records are never wanted.
class TypeFilter {
 public:
  explicit TypeFilter(std::vector<std::string> types) : types_(std::move(types)) {}
  bool Accepts(std::string_view line) const;

 private:
  std::vector<std::string> types_;
};

class Batch {
 public:
  Batch(size_t max_records, size_t max_bytes) : max_records_(max_records), max_bytes_(max_bytes) {}

  // Whether `record` (one line, newline removed) still fits: false when the
  // batch is full by count, or by bytes unless it is empty.
  bool Fits(std::string_view record) const;
  void Add(std::string_view record);
  size_t records() const { return records_; }
  bool empty() const { return records_ == 0; }
  // The JSON array of the records added, in order ("[]" when empty).
  std::string_view Body();
  void Clear();

 private:
  size_t max_records_;
  size_t max_bytes_;
  size_t records_ = 0;
  std::string body_ = "[";  // with the closing ']' only while closed_
  bool closed_ = false;
};

}  // namespace sluice::webhook
