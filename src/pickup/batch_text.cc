// Small text helpers shared by the batch manifest/template checks (batch.cc)
// and the recipients builder (batch_builder.cc); see batch_text.h.
#include "batch_text.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "sluice/base/strings.h"

namespace sluice::pickup::internal {
namespace {

using base::Av;

bool IsWsp(char c) { return c == ' ' || c == '\t'; }

}  // namespace

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsWsp(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsWsp(s.back())) s.remove_suffix(1);
  return s;
}

bool HasNonAscii(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
}

// Untrusted text shown in a note or a log line: printable ASCII, bounded.
std::string Shown(std::string_view s, size_t max) {
  std::string out;
  for (char c : s.substr(0, max)) {
    out.push_back(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f ? c : '?');
  }
  if (s.size() > max) out += "...";
  return out;
}

// Parses an address as a path ("<a@b>" or "a@b"); "" and "<>" only as a
// reverse path. Returns "" and sets `why` on failure.
bool ParseAddress(std::string_view text, smtp::PathKind kind, std::string& out, bool& utf8,
                  std::string& why) {
  std::string wrapped;
  std::string_view a = Trim(text);
  if (a.empty() || a.front() != '<') {
    wrapped = absl::StrCat("<", Av(a), ">");
    a = wrapped;
  }
  utf8 = HasNonAscii(a);
  auto parsed = smtp::ParsePath(a, kind, utf8);
  if (!parsed.ok()) {
    why = std::string(parsed.status().message());
    return false;
  }
  if (!Trim(parsed->rest).empty()) {
    why = "text after '>'";
    return false;
  }
  out = parsed->mailbox.ToString();
  return true;
}

}  // namespace sluice::pickup::internal
