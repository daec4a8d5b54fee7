// Small string helpers over std::string_view.
//
// Debian 12's abseil (20220623) has its own absl::string_view, distinct from
// std::string_view (see DESIGN.md). Sluice speaks std::string_view inside and
// converts at abseil calls with Av(); the ASCII helpers here avoid the
// conversion on hot paths.
#pragma once

#include <cstdint>
#include <string_view>

#include "absl/strings/string_view.h"

namespace sluice::base {

inline absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }
inline std::string_view Sv(absl::string_view s) { return std::string_view(s.data(), s.size()); }

inline char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

inline bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (AsciiLower(a[i]) != AsciiLower(b[i])) return false;
  }
  return true;
}

inline bool StartsWithIgnoreCase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && EqualsIgnoreCase(text.substr(0, prefix.size()), prefix);
}

// Decimal digits only (no sign, no spaces); false on overflow or junk.
inline bool ParseUint64(std::string_view text, uint64_t& out) {
  if (text.empty() || text.size() > 20) return false;
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - digit) / 10) return false;
    v = v * 10 + digit;
  }
  out = v;
  return true;
}

// The next space-separated word of `rest`, consumed with the spaces around
// it ("" at the end): how control-socket commands are read.
inline std::string_view NextWord(std::string_view& rest) {
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  const std::string_view w = rest.substr(0, rest.find(' '));
  rest.remove_prefix(w.size());
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  return w;
}

}  // namespace sluice::base
