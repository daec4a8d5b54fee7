// Watches the decoded body go by and notes whether its header section
// (RFC 5322, up to the first empty line) has a Date: and a Message-ID:
// field, so Sluice can add the missing ones. Works on spans of any size and
// split; looks at most at limits::kHeaderScanMax bytes, then stops.
#pragma once

#include <cstddef>
#include <string_view>

namespace sluice::smtp {

class HeaderScanner {
 public:
  void Reset() { *this = HeaderScanner(); }
  void Feed(std::string_view span);

  bool has_date() const { return has_date_; }
  bool has_message_id() const { return has_message_id_; }

 private:
  void EndOfFieldName();

  static constexpr size_t kNameMax = 16;
  bool done_ = false;
  bool at_line_start_ = true;
  bool in_name_ = true;  // collecting the field name of the current line
  bool prev_cr_ = false;
  size_t name_size_ = 0;
  char name_[kNameMax] = {};
  size_t scanned_ = 0;
  bool has_date_ = false;
  bool has_message_id_ = false;
};

}  // namespace sluice::smtp
