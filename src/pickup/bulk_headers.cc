#include "sluice/pickup/bulk_headers.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "sluice/base/strings.h"
#include "sluice/merge/template.h"

namespace sluice::pickup {
namespace {

bool IsAlnum(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
bool IsHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
}
bool IsBlank(char c) { return c == ' ' || c == '\t'; }
bool IsNameStart(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool IsNameChar(char c) { return IsNameStart(c) || (c >= '0' && c <= '9') || c == '.' || c == '-'; }

// RFC 3986 characters a URL template may hold literally: unreserved,
// gen-delims and sub-delims, except ',' (it separates the URIs of
// List-Unsubscribe; write %2C). '%' is checked apart (it must start %XX).
bool IsUriChar(char c) {
  if (IsAlnum(c)) return true;
  switch (c) {
    case '-':
    case '.':
    case '_':
    case '~':  // unreserved
    case ':':
    case '/':
    case '?':
    case '#':
    case '[':
    case ']':
    case '@':  // gen-delims
    case '!':
    case '$':
    case '&':
    case '\'':
    case '(':
    case ')':  // sub-delims
    case '*':
    case '+':
    case ';':
    case '=':
      return true;
    default:
      return false;
  }
}

// A host (or a mail domain): letters, digits, '-', '.', and ':' '[' ']' for
// a port or an IP literal. No placeholder: a recipient's value never picks
// where the request goes.
bool IsHostText(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!IsAlnum(c) && c != '-' && c != '.' && c != ':' && c != '[' && c != ']') return false;
  }
  return true;
}

std::string Shown(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 40)) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  if (s.size() > 40) out += "...";
  return out;
}

// Appends `text` (a URI part holding literal characters and {{name}}
// placeholders) to `out`, each placeholder as {{name|url}}.
bool Rewrite(std::string_view text, std::string& out, std::string& why) {
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (text.substr(i, 2) == "{{") {
      size_t k = i + 2;
      while (k < text.size() && IsBlank(text[k])) ++k;
      const size_t start = k;
      if (k < text.size() && IsNameStart(text[k])) {
        ++k;
        while (k < text.size() && IsNameChar(text[k])) ++k;
      }
      const std::string_view name = text.substr(start, k - start);
      while (k < text.size() && IsBlank(text[k])) ++k;
      if (name.empty() || name.size() > merge::kMaxFieldNameLength || text.substr(k, 2) != "}}") {
        why = absl::StrCat("bad placeholder at '", Shown(text.substr(i)),
                           "': write {{name}} with a column of the recipients file (values are "
                           "always percent-encoded here)");
        return false;
      }
      absl::StrAppend(&out, "{{", base::Av(name), "|url}}");
      i = k + 2;
      continue;
    }
    if (c == '%') {
      if (i + 2 >= text.size() || !IsHex(text[i + 1]) || !IsHex(text[i + 2])) {
        why = absl::StrCat("'%' not followed by two hex digits at '", Shown(text.substr(i)), "'");
        return false;
      }
      out.append(text.substr(i, 3));
      i += 3;
      continue;
    }
    if (!IsUriChar(c)) {
      const auto u = static_cast<unsigned char>(c);
      why = c == ','                ? "a ',' (it separates the List-Unsubscribe URIs: write %2C)"
            : u < 0x20 || u >= 0x7f ? absl::StrCat("a control or non-ASCII byte 0x", absl::Hex(u),
                                                   " (percent-encode it)")
                                    : absl::StrCat("the character '", std::string(1, c),
                                                   "', not allowed in a URI (percent-encode it)");
      return false;
    }
    out.push_back(c);
    ++i;
  }
  return true;
}

bool ParseHttp(std::string_view text, std::string& out, bool& https, std::string& why) {
  size_t scheme_end = 0;
  if (base::StartsWithIgnoreCase(text, "https://")) {
    https = true;
    scheme_end = 8;
  } else if (base::StartsWithIgnoreCase(text, "http://")) {
    https = false;
    scheme_end = 7;
  } else {
    why = "must start with https:// (or http:// without one-click)";
    return false;
  }
  const std::string_view after = text.substr(scheme_end);
  const size_t host_end = std::min(after.find_first_of("/?#"), after.size());
  const std::string_view host = after.substr(0, host_end);
  if (!IsHostText(host)) {
    why = absl::StrCat("bad host '", Shown(host),
                       "' (letters, digits, '-', '.', a port; no placeholder, no user)");
    return false;
  }
  out = absl::StrCat(https ? "https://" : "http://", base::Av(host));
  return Rewrite(after.substr(host_end), out, why);
}

bool ParseMailto(std::string_view text, std::string& out, std::string& why) {
  if (base::StartsWithIgnoreCase(text, "mailto:")) text.remove_prefix(7);
  const size_t q = std::min(text.find('?'), text.size());
  const std::string_view addr = text.substr(0, q);
  const size_t at = addr.rfind('@');
  if (at == std::string_view::npos || addr.find('@') != at) {
    why = "must be one address local@domain (an '@' in the local part is written %40)";
    return false;
  }
  if (at == 0) {
    why = "empty local part";
    return false;
  }
  const std::string_view domain = addr.substr(at + 1);
  if (!IsHostText(domain)) {
    why = absl::StrCat("bad domain '", Shown(domain), "' (no placeholder)");
    return false;
  }
  out = "mailto:";
  if (!Rewrite(addr.substr(0, at), out, why)) return false;
  absl::StrAppend(&out, "@", base::Av(domain));
  return Rewrite(text.substr(q), out, why);
}

// A literal for the template: "{{" becomes the escape "{{{{".
std::string Escaped(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    out.push_back(s[i]);
    if (s[i] == '{' && i + 1 < s.size() && s[i + 1] == '{') {
      out += "{{{";
      ++i;
    }
  }
  return out;
}

}  // namespace

bool ParseUriTemplate(std::string_view text, UriKind kind, std::string& out, bool& https,
                      std::string& why) {
  out.clear();
  https = false;
  if (text.empty()) {
    why = "empty";
    return false;
  }
  if (text.size() > kMaxUnsubscribeUrlLength) {
    why = absl::StrCat(text.size(), " bytes, longer than ", kMaxUnsubscribeUrlLength);
    return false;
  }
  return kind == UriKind::kHttp ? ParseHttp(text, out, https, why) : ParseMailto(text, out, why);
}

bool IsFeedbackIdPart(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s) {
    if (c < 0x21 || c > 0x7e || c == ':') return false;
  }
  return true;
}

std::string BulkHeaderFields(const BulkHeaders& h) {
  std::string out;
  if (h.unsubscribe()) {
    out = "List-Unsubscribe: ";
    if (!h.url.empty()) absl::StrAppend(&out, "<", h.url, ">");
    // Folded after the comma: each URI may take most of a line.
    if (!h.url.empty() && !h.mailto.empty()) out += ",\r\n ";
    if (!h.mailto.empty()) absl::StrAppend(&out, "<", h.mailto, ">");
    out += "\r\n";
    if (h.one_click) out += "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n";
  }
  if (!h.feedback_id.empty())
    absl::StrAppend(&out, "Feedback-ID: ", Escaped(h.feedback_id), "\r\n");
  return out;
}

}  // namespace sluice::pickup
