// LooksLikeDsn (dsn.h): whether a message is itself a bounce, by its
// sender (<>) or by a multipart/report; report-type=delivery-status
// Content-Type in its top-level header section.
//
// Trusts nothing about the message. Limits: reads the header section only
// (header_scan.h); comments and quoting in the Content-Type are understood
// as far as finding the type and its report-type parameter needs.
#include <string>
#include <string_view>
#include <vector>

#include "header_scan.h"
#include "sluice/base/strings.h"
#include "sluice/dsn/dsn.h"

namespace sluice::dsn {
namespace {

using internal::ForEachHeaderLine;
using internal::IsSpace;

// Unfolded value of a field line group, without comments: enough to read a
// Content-Type.
bool IsDsnContentType(std::string_view value) {
  // Drop (comments) outside quotes, keep everything else.
  std::string v;
  int depth = 0;
  bool quoted = false;
  for (size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (quoted) {
      v.push_back(c);
      if (c == '\\' && i + 1 < value.size()) {
        v.push_back(value[++i]);
      } else if (c == '"') {
        quoted = false;
      }
    } else if (depth > 0) {
      if (c == '\\') {
        ++i;
      } else if (c == '(') {
        ++depth;
      } else if (c == ')') {
        --depth;
      }
    } else if (c == '(') {
      depth = 1;
    } else {
      if (c == '"') quoted = true;
      v.push_back(c);
    }
  }
  // Split on ';' outside quotes.
  std::vector<std::string_view> parts;
  size_t start = 0;
  quoted = false;
  for (size_t i = 0; i <= v.size(); ++i) {
    if (i == v.size() || (!quoted && v[i] == ';')) {
      parts.push_back(std::string_view(v).substr(start, i - start));
      start = i + 1;
    } else if (v[i] == '\\' && quoted) {
      ++i;
    } else if (v[i] == '"') {
      quoted = !quoted;
    }
  }
  auto trim = [](std::string_view s) {
    while (!s.empty() && (IsSpace(s.front()) || s.front() == '\r' || s.front() == '\n')) {
      s.remove_prefix(1);
    }
    while (!s.empty() && (IsSpace(s.back()) || s.back() == '\r' || s.back() == '\n')) {
      s.remove_suffix(1);
    }
    return s;
  };
  // "multipart / report" is not valid, but white space around the slash costs nothing.
  std::string type;
  for (char c : parts[0]) {
    if (!IsSpace(c)) type.push_back(c);
  }
  if (!base::EqualsIgnoreCase(type, "multipart/report")) return false;
  for (size_t k = 1; k < parts.size(); ++k) {
    const std::string_view p = parts[k];
    const size_t eq = p.find('=');
    if (eq == std::string_view::npos) continue;
    if (!base::EqualsIgnoreCase(trim(p.substr(0, eq)), "report-type")) continue;
    std::string_view raw = trim(p.substr(eq + 1));
    std::string val;
    if (!raw.empty() && raw.front() == '"') {
      for (size_t i = 1; i < raw.size() && raw[i] != '"'; ++i) {
        if (raw[i] == '\\' && i + 1 < raw.size()) ++i;
        val.push_back(raw[i]);
      }
    } else {
      val = std::string(raw);
    }
    if (base::EqualsIgnoreCase(val, "delivery-status") ||
        base::EqualsIgnoreCase(val, "global-delivery-status")) {
      return true;
    }
  }
  return false;
}

}  // namespace

bool LooksLikeDsn(std::string_view sender, std::string_view message) {
  if (sender.empty() || sender == "<>") return true;
  // Unfold each Content-Type field (only those) and read it.
  bool found = false;
  bool in_content_type = false;
  std::string value;
  auto finish = [&] {
    if (in_content_type && !found && IsDsnContentType(value)) found = true;
    in_content_type = false;
    value.clear();
  };
  ForEachHeaderLine(message, [&](std::string_view line) {
    if (IsSpace(line.front())) {
      if (in_content_type) value.append(line);
      return;
    }
    finish();
    const size_t colon = line.find(':');  // IsFieldStart: there is one
    std::string_view name = line.substr(0, colon);
    while (!name.empty() && IsSpace(name.back())) name.remove_suffix(1);
    if (base::EqualsIgnoreCase(name, "Content-Type")) {
      in_content_type = true;
      value.assign(line.substr(colon + 1));
    }
  });
  finish();
  return found;
}

}  // namespace sluice::dsn
