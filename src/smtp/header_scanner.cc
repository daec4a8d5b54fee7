#include "sluice/smtp/header_scanner.h"

#include "sluice/base/limits.h"
#include "sluice/base/strings.h"

namespace sluice::smtp {

void HeaderScanner::EndOfFieldName() {
  std::string_view name(name_, name_size_);
  while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
  if (base::EqualsIgnoreCase(name, "date")) has_date_ = true;
  if (base::EqualsIgnoreCase(name, "message-id")) has_message_id_ = true;
  if (base::EqualsIgnoreCase(name, "received")) ++received_count_;
  if (base::EqualsIgnoreCase(name, "from")) ++from_count_;
  in_name_ = false;
}

void HeaderScanner::Feed(std::string_view span) {
  for (size_t i = 0; i < span.size() && !done_; ++i) {
    const char c = span[i];
    if (++scanned_ > limits::kHeaderScanMax) {
      done_ = true;
      truncated_ = true;
      break;
    }
    if (c == '\n') {
      // A line that held nothing but CRLF ends the header section.
      if (at_line_start_ && prev_cr_) done_ = true;
      at_line_start_ = true;
      in_name_ = true;
      name_size_ = 0;
      prev_cr_ = false;
      continue;
    }
    const bool was_line_start = at_line_start_;
    prev_cr_ = c == '\r';
    if (c == '\r' && at_line_start_) continue;  // maybe the empty line
    at_line_start_ = false;
    if (!in_name_) continue;
    if (was_line_start && (c == ' ' || c == '\t')) {
      in_name_ = false;  // folded continuation line
    } else if (c == ':') {
      EndOfFieldName();
    } else if (name_size_ < kNameMax) {
      name_[name_size_++] = c;
    } else {
      in_name_ = false;  // longer than any name we look for
    }
  }
}

}  // namespace sluice::smtp
