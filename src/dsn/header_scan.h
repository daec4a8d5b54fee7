// The top-level header section of a message, line by line: shared by the
// DSN builder (dsn.cc, which returns the header section) and the DSN
// recogniser (looks_like_dsn.cc). Internal to src/dsn.
//
// Trusts nothing about the message: any bytes, CRLF or bare LF line ends.
// Limits: reads the top-level header section only; the section ends at the
// first empty line or at the first line that is neither a field nor a
// continuation of one.
#pragma once

#include <cstddef>
#include <string_view>

namespace sluice::dsn::internal {

inline bool IsSpace(char c) { return c == ' ' || c == '\t'; }

// One line of a message: its content without the line ending, and where the
// next line starts. Accepts CRLF, bare LF and a last line without an ending.
struct Line {
  std::string_view text;
  size_t next;
};
inline Line NextLine(std::string_view s, size_t pos) {
  const size_t lf = s.find('\n', pos);
  const size_t end = lf == std::string_view::npos ? s.size() : lf;
  std::string_view text = s.substr(pos, end - pos);
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  return {text, lf == std::string_view::npos ? s.size() : lf + 1};
}

// A header line "name:..." (RFC 5322 ftext name, optional obsolete white
// space before the colon).
inline bool IsFieldStart(std::string_view line) {
  size_t i = 0;
  while (i < line.size() && line[i] >= 33 && line[i] <= 126 && line[i] != ':') ++i;
  if (i == 0) return false;
  while (i < line.size() && IsSpace(line[i])) ++i;
  return i < line.size() && line[i] == ':';
}

// Calls fn(line) for each line of the top-level header section: it ends at
// the first empty line or at the first line that is neither a field nor a
// continuation of one (body text is never taken for header).
template <typename Fn>
void ForEachHeaderLine(std::string_view message, Fn fn) {
  bool in_field = false;
  for (size_t pos = 0; pos < message.size();) {
    const Line l = NextLine(message, pos);
    if (l.text.empty()) return;
    if (IsSpace(l.text.front())) {
      if (!in_field) return;
    } else if (IsFieldStart(l.text)) {
      in_field = true;
    } else {
      return;
    }
    fn(l.text);
    pos = l.next;
  }
}

}  // namespace sluice::dsn::internal
