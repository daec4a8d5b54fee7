#include "sluice/smtp/address.h"

#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "sluice/base/cidr.h"
#include "sluice/base/limits.h"
#include "sluice/base/strings.h"

namespace sluice::smtp {
namespace {

bool IsAtext(unsigned char c) {
  if (absl::ascii_isalnum(c)) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '/':
    case '=':
    case '?':
    case '^':
    case '_':
    case '`':
    case '{':
    case '|':
    case '}':
    case '~':
      return true;
    default:
      return false;
  }
}

// Length of the well-formed UTF-8 sequence starting at s[i] (>= 0x80), or 0.
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t n;
  uint32_t cp;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2, cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3, cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4, cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3f);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
      (cp >= 0xd800 && cp <= 0xdfff)) {
    return 0;
  }
  return n;
}

bool IsValidDotString(std::string_view s, bool utf8) {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '.') {
      if (s[i + 1] == '.') return false;  // s.back() != '.' so i + 1 is in range
      ++i;
    } else if (c >= 0x80) {
      size_t n = utf8 ? Utf8SequenceLength(s, i) : 0;
      if (n == 0) return false;
      i += n;
    } else if (IsAtext(c)) {
      ++i;
    } else {
      return false;
    }
  }
  return true;
}

bool IsValidQuotedString(std::string_view s, bool utf8) {
  if (s.size() < 2 || s.front() != '"' || s.back() != '"') return false;
  for (size_t i = 1; i + 1 < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '\\') {
      if (i + 2 >= s.size()) return false;
      const auto q = static_cast<unsigned char>(s[i + 1]);
      if (q < 32 || q > 126) return false;
      i += 2;
    } else if (c >= 0x80) {
      size_t n = utf8 ? Utf8SequenceLength(s, i) : 0;
      if (n == 0) return false;
      i += n;
    } else if (c == 32 || c == 33 || (c >= 35 && c <= 91) || (c >= 93 && c <= 126)) {
      ++i;
    } else {
      return false;
    }
  }
  return true;
}

bool IsValidLabel(std::string_view label, bool utf8) {
  if (label.empty() || label.size() > 63) return false;
  if (label.front() == '-' || label.back() == '-') return false;
  for (size_t i = 0; i < label.size();) {
    const auto c = static_cast<unsigned char>(label[i]);
    if (absl::ascii_isalnum(c) || c == '-') {
      ++i;
    } else if (c >= 0x80 && utf8) {
      size_t n = Utf8SequenceLength(label, i);
      if (n == 0) return false;
      i += n;
    } else {
      return false;
    }
  }
  return true;
}

bool IsValidAddressLiteral(std::string_view lit) {
  if (lit.size() < 3 || lit.front() != '[' || lit.back() != ']') return false;
  std::string_view inner = lit.substr(1, lit.size() - 2);
  if (base::StartsWithIgnoreCase(inner, "IPv6:")) {
    auto ip = base::IpAddress::Parse(inner.substr(5));
    return ip.ok() && ip->v6;
  }
  auto ip = base::IpAddress::Parse(inner);
  return ip.ok() && !ip->v6;
}

// RFC 5321 4.1.3 General-address-literal: "[tag:content]", tag an LDH
// string, content printable ASCII without '[', '\\' and ']'.
bool IsGeneralAddressLiteral(std::string_view lit) {
  if (lit.size() < 4 || lit.front() != '[' || lit.back() != ']') return false;
  std::string_view inner = lit.substr(1, lit.size() - 2);
  const size_t colon = inner.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == inner.size()) return false;
  if (base::EqualsIgnoreCase(inner.substr(0, colon), "IPv6"))
    return false;  // IsValidAddressLiteral's
  for (char c : inner.substr(0, colon)) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
  }
  for (char c : inner.substr(colon + 1)) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 33 || u > 126 || c == '[' || c == '\\' || c == ']') return false;
  }
  return true;
}

// Index of the '@' that separates local part and domain: the last '@' not
// inside the quoted local part.
size_t FindAt(std::string_view mailbox) {
  if (!mailbox.empty() && mailbox.front() == '"') {
    for (size_t i = 1; i < mailbox.size(); ++i) {
      if (mailbox[i] == '\\') {
        ++i;
      } else if (mailbox[i] == '"') {
        return i + 1 < mailbox.size() && mailbox[i + 1] == '@' ? i + 1 : std::string_view::npos;
      }
    }
    return std::string_view::npos;
  }
  return mailbox.find('@');
}

}  // namespace

std::string Mailbox::ToString() const {
  if (IsNull()) return "";
  if (domain.empty()) return local_part;
  return absl::StrCat(local_part, "@", domain);
}

bool IsValidDomain(std::string_view domain, bool utf8) {
  if (domain.empty() || domain.size() > limits::kDomainMax) return false;
  if (domain.front() == '[') return IsValidAddressLiteral(domain);
  size_t start = 0;
  while (true) {
    size_t dot = domain.find('.', start);
    std::string_view label =
        domain.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (!IsValidLabel(label, utf8)) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

bool IsAcceptableHeloArgument(std::string_view arg) {
  if (arg.empty() || arg.size() > limits::kDomainMax) return false;
  if (arg.front() == '[') return IsValidAddressLiteral(arg) || IsGeneralAddressLiteral(arg);
  bool alnum = false;
  for (char c : arg) {
    const auto u = static_cast<unsigned char>(c);
    if (absl::ascii_isalnum(u)) {
      alnum = true;
    } else if (c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return alnum;
}

bool SameMailbox(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  // The domain follows the last '@' (a quoted local part may hold '@'s; a
  // domain never does).
  const size_t at = a.rfind('@');
  if (at != b.rfind('@')) return false;
  if (at == std::string_view::npos) return base::EqualsIgnoreCase(a, b);  // "Postmaster"
  return a.substr(0, at) == b.substr(0, at) &&
         base::EqualsIgnoreCase(a.substr(at + 1), b.substr(at + 1));
}

absl::StatusOr<PathParse> ParsePath(std::string_view text, PathKind kind, bool utf8) {
  if (text.empty() || text.front() != '<') {
    return absl::InvalidArgumentError("path must be enclosed in <>");
  }
  // Find the closing '>' outside a quoted string.
  size_t close = std::string_view::npos;
  bool quoted = false;
  for (size_t i = 1; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted && c == '\\') {
      ++i;
    } else if (c == '"') {
      quoted = !quoted;
    } else if (!quoted && c == '>') {
      close = i;
      break;
    }
  }
  if (close == std::string_view::npos) return absl::InvalidArgumentError("missing '>'");
  if (close + 1 > limits::kPathMax) return absl::InvalidArgumentError("path too long");
  std::string_view inner = text.substr(1, close - 1);
  PathParse out;
  out.rest = text.substr(close + 1);
  if (inner.empty()) {
    if (kind == PathKind::kReversePath) return out;
    return absl::InvalidArgumentError("empty forward path");
  }
  // Source route: "@a,@b:" before the mailbox.
  if (inner.front() == '@') {
    size_t colon = inner.find(':');
    if (colon == std::string_view::npos) return absl::InvalidArgumentError("bad source route");
    std::string_view route = inner.substr(0, colon);
    size_t pos = 0;
    while (pos < route.size()) {
      if (route[pos] != '@') return absl::InvalidArgumentError("bad source route");
      size_t comma = route.find(',', pos);
      std::string_view hop = route.substr(
          pos + 1, comma == std::string_view::npos ? std::string_view::npos : comma - pos - 1);
      if (!IsValidDomain(hop, utf8)) return absl::InvalidArgumentError("bad source route");
      if (comma == std::string_view::npos) break;
      pos = comma + 1;
    }
    inner = inner.substr(colon + 1);
  }
  // RFC 5321 4.5.1: "Postmaster" without a domain is a valid recipient.
  if (kind == PathKind::kForwardPath && base::EqualsIgnoreCase(inner, "postmaster")) {
    out.mailbox.local_part = std::string(inner);
    return out;
  }
  size_t at = FindAt(inner);
  if (at == std::string_view::npos || at == 0) {
    return absl::InvalidArgumentError("mailbox has no local part and domain");
  }
  std::string_view local = inner.substr(0, at);
  std::string_view domain = inner.substr(at + 1);
  if (local.size() > limits::kLocalPartMax)
    return absl::InvalidArgumentError("local part too long");
  const bool local_ok =
      local.front() == '"' ? IsValidQuotedString(local, utf8) : IsValidDotString(local, utf8);
  if (!local_ok) return absl::InvalidArgumentError("bad local part");
  if (!IsValidDomain(domain, utf8)) return absl::InvalidArgumentError("bad domain");
  out.mailbox.local_part = std::string(local);
  out.mailbox.domain = std::string(domain);
  return out;
}

}  // namespace sluice::smtp
