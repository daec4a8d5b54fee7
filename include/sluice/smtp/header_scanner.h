// Watches the decoded body go by and notes what Sluice needs to know about
// its header section (RFC 5322, up to the first empty line): whether it has
// a Date: and a Message-ID: field (Sluice adds the missing ones), and how
// many Received: fields it carries (the hop count, for loop protection),
// and how many From: fields (server.require_from: exactly one).
// A field counts only when its name starts a line (a folded continuation
// line is never a field) and is matched case-insensitively; blanks before
// the colon are allowed (RFC 5322's obsolete syntax).
//
// Pure, no allocation. Works on spans of any size and split; looks at most
// at limits::kHeaderScanMax bytes, then stops (the counts stay as they are:
// a relay prepends its Received: field, so a loop's grow at the top;
// truncated() says a From: past that point was not counted).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sluice::smtp {

class HeaderScanner {
 public:
  void Reset() { *this = HeaderScanner(); }
  void Feed(std::string_view span);

  bool has_date() const { return has_date_; }
  bool has_message_id() const { return has_message_id_; }
  // Received: fields seen so far (kHeaderScanMax bytes hold fewer than
  // 2^32 lines, so this never wraps).
  uint32_t received_count() const { return received_count_; }
  // From: fields seen (a folded one counts once, "From :" counts; an mbox
  // "From " line and body text do not).
  size_t from_count() const { return from_count_; }
  // The header section went on past kHeaderScanMax: counts may be short.
  bool truncated() const { return truncated_; }

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
  uint32_t received_count_ = 0;
  size_t from_count_ = 0;
  bool truncated_ = false;
};

}  // namespace sluice::smtp
