// Parses a webhook's http:// URL; see sluice/http/url.h.
#include "sluice/http/url.h"

#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "sluice/base/strings.h"

namespace sluice::http {
namespace {

absl::Status Bad(std::string_view what) { return absl::InvalidArgumentError(std::string(what)); }

bool ValidHostChar(char c) { return absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_'; }

// RFC 3986 pchar, '/' and '?' (the query), '%' escapes left as written.
bool ValidTargetChar(char c) {
  if (absl::ascii_isalnum(c)) return true;
  return std::strchr("-._~!$&'()*+,;=:@/?%", c) != nullptr && c != '\0';
}

absl::Status CheckName(std::string_view host) {
  if (host.empty()) return Bad("no host (write http://HOST[:PORT]/PATH)");
  if (host.size() > 253) return Bad("host name longer than 253 characters");
  for (char c : host) {
    if (!ValidHostChar(c)) {
      return Bad(
          absl::StrCat("host '", base::Av(host), "' has a character a host name cannot have"));
    }
  }
  if (host.front() == '.' || host.front() == '-' || host.find("..") != std::string_view::npos) {
    return Bad(absl::StrCat("host '", base::Av(host), "' is not a host name"));
  }
  return absl::OkStatus();
}

absl::Status CheckV6(std::string_view host) {
  if (host.empty()) return Bad("empty IPv6 literal []");
  for (char c : host) {
    if (!absl::ascii_isxdigit(c) && c != ':' && c != '.') {
      return Bad(absl::StrCat("[", base::Av(host), "] is not an IPv6 literal"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string Url::HostHeader() const {
  std::string out = ipv6_literal ? absl::StrCat("[", host, "]") : host;
  if (port != (tls ? 443 : 80)) absl::StrAppend(&out, ":", port);
  return out;
}

absl::StatusOr<Url> ParseUrl(std::string_view text) {
  if (text.size() > kMaxUrlLength) {
    return Bad(absl::StrCat("longer than ", kMaxUrlLength, " characters"));
  }
  for (char c : text) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return Bad("has a space or a control character");
    }
  }
  const size_t colon = text.find("://");
  if (colon == std::string_view::npos) return Bad("not a URL (write http://HOST[:PORT]/PATH)");
  const std::string scheme = absl::AsciiStrToLower(base::Av(text.substr(0, colon)));
  if (scheme != "http" && scheme != "https") {
    return Bad(absl::StrCat("scheme '", scheme, "' is not http or https"));
  }
  std::string_view rest = text.substr(colon + 3);
  if (rest.find('#') != std::string_view::npos) return Bad("has a #fragment");
  const size_t slash = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, slash);
  Url url;
  url.tls = scheme == "https";
  url.port = url.tls ? 443 : 80;
  if (slash != std::string_view::npos) {
    const std::string_view target = rest.substr(slash);
    url.target = target.front() == '?' ? absl::StrCat("/", base::Av(target)) : std::string(target);
  }
  for (char c : url.target) {
    if (!ValidTargetChar(c))
      return Bad(absl::StrCat("path has the character '", std::string(1, c), "'"));
  }
  if (authority.find('@') != std::string_view::npos) {
    return Bad("has user information (user@); give credentials in webhook.authorization");
  }
  std::string_view host = authority, port;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return Bad("IPv6 literal without its ']'");
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty() && after.front() != ':') return Bad("junk after the IPv6 literal");
    if (!after.empty()) {
      port = after.substr(1);
      has_port = true;
    }
    if (absl::Status s = CheckV6(host); !s.ok()) return s;
    url.ipv6_literal = true;
  } else if (const size_t c = authority.rfind(':'); c != std::string_view::npos) {
    host = authority.substr(0, c);
    port = authority.substr(c + 1);
    has_port = true;
  }
  if (!url.ipv6_literal) {
    if (absl::Status s = CheckName(host); !s.ok()) return s;
  }
  if (has_port) {
    uint64_t p = 0;
    if (port.size() > 5 || !base::ParseUint64(port, p) || p == 0 || p > 65535) {
      return Bad(absl::StrCat("port '", base::Av(port), "' is not a number between 1 and 65535"));
    }
    url.port = static_cast<uint16_t>(p);
  }
  url.host = absl::AsciiStrToLower(base::Av(host));
  return url;
}

}  // namespace sluice::http
