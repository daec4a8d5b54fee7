// Filtering accounting lines and joining them into a JSON array; see
// sluice/webhook/batch.h.
#include "sluice/webhook/batch.h"

#include <algorithm>

namespace sluice::webhook {

bool IsRecordType(std::string_view type) {
  return std::find(std::begin(kRecordTypes), std::end(kRecordTypes), type) !=
         std::end(kRecordTypes);
}

std::string_view RecordType(std::string_view line) {
  constexpr std::string_view kPrefix = "{\"type\":\"";
  if (!line.starts_with(kPrefix) || !line.ends_with('}')) return {};
  const size_t end = line.find('"', kPrefix.size());
  if (end == std::string_view::npos) return {};
  return line.substr(kPrefix.size(), end - kPrefix.size());
}

bool TypeFilter::Accepts(std::string_view line) const {
  const std::string_view type = RecordType(line);
  if (type.empty()) return false;
  return types_.empty() || std::find(types_.begin(), types_.end(), type) != types_.end();
}

bool Batch::Fits(std::string_view record) const {
  if (records_ >= max_records_) return false;
  if (records_ == 0) return true;
  // The record, its comma and the closing bracket.
  return body_.size() - (closed_ ? 1 : 0) + record.size() + 2 <= max_bytes_;
}

void Batch::Add(std::string_view record) {
  if (closed_) {
    body_.pop_back();
    closed_ = false;
  }
  if (records_ > 0) body_.push_back(',');
  body_.append(record);
  ++records_;
}

std::string_view Batch::Body() {
  if (!closed_) {
    body_.push_back(']');
    closed_ = true;
  }
  return body_;
}

void Batch::Clear() {
  body_.clear();
  body_.push_back('[');
  records_ = 0;
  closed_ = false;
}

}  // namespace sluice::webhook
