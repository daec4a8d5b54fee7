// The value checks of the config reader (checks.h): names, paths, addresses,
// patterns, listen addresses, networks, next hops. Pure: they see one value
// and trust nothing about it; no I/O, no TOML.

#include "checks.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "field_tables.h"
#include "sluice/base/limits.h"
#include "sluice/base/strings.h"
#include "views.h"

namespace sluice::config {

// RFC 5321 Domain: dot-separated labels of letters, digits and inner hyphens.
absl::Status CheckHostname(absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("must not be empty");
  if (name.size() > limits::kDomainMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", name, "' is longer than ", limits::kDomainMax, " characters"));
  }
  for (absl::string_view label : absl::StrSplit(name, '.')) {
    bool ok = !label.empty() && label.size() <= 63 && label.front() != '-' && label.back() != '-';
    for (char c : label) ok = ok && (absl::ascii_isalnum(c) || c == '-');
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", name, "' is not a valid domain name (letters, digits, inner hyphens, dots)"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckPath(absl::string_view path, bool may_be_empty) {
  if (path.empty() && !may_be_empty) return absl::InvalidArgumentError("must not be empty");
  if (path.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError("must not contain a NUL character");
  }
  return absl::OkStatus();
}

// "local@domain" with a plain local part (letters, digits and RFC 5322
// atext punctuation, dots inside) and a domain as CheckHostname wants it:
// the address every <postmaster> RCPT is rewritten to. Empty: none.
absl::Status CheckPostmasterAddress(absl::string_view address) {
  if (address.empty()) return absl::OkStatus();
  const size_t at = address.rfind('@');
  const absl::string_view local = at == absl::string_view::npos ? "" : address.substr(0, at);
  bool ok = !local.empty() && local.size() <= limits::kLocalPartMax && local.front() != '.' &&
            local.back() != '.' && local.find("..") == absl::string_view::npos;
  for (char c : local) {
    ok = ok && (absl::ascii_isalnum(c) ||
                absl::string_view("!#$%&'*+-/=?^_`{|}~.").find(c) != absl::string_view::npos);
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", address, "' is not an address like postmaster@example.com"));
  }
  if (absl::Status s = CheckHostname(address.substr(at + 1)); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("domain of '", address, "': ", s.message()));
  }
  return absl::OkStatus();
}

absl::Status CheckBareLinefeed(absl::string_view policy) {
  if (policy == "reject") return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("'", policy, "' is not a policy; the only one is \"reject\""));
}

// Lower case, without a trailing dot: the form patterns and names are
// compared in.
std::string NormalizeName(absl::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  return absl::AsciiStrToLower(name);
}

absl::Status CheckOptionalName(absl::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  return name.empty() ? absl::OkStatus() : CheckHostname(name);
}

// A [[dkim.signer]] domain: "example.com" or "*.example.com" ("*" alone is
// what [dkim] default_domain is for).
absl::Status CheckDkimPattern(absl::string_view pattern) {
  absl::string_view name = pattern;
  if (absl::StartsWith(name, "*.")) name.remove_prefix(2);
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || !CheckHostname(name).ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", pattern,
                     "' is not a From: domain pattern (write \"example.com\" or \"*.example.com\"; "
                     "mail from other domains is signed by [dkim] default_domain)"));
  }
  return absl::OkStatus();
}

// A selector: dot-separated labels (RFC 6376 3.1).
absl::Status CheckSelector(absl::string_view s) {
  if (CheckHostname(s).ok()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("'", s, "' is not a selector (labels of letters, digits and '-')"));
}

// "relaxed/relaxed", "simple/relaxed", ...; one word is header/simple (RFC
// 6376 3.5 c=).
absl::Status CheckCanonicalization(absl::string_view c) {
  for (absl::string_view word : {"simple", "relaxed"}) {
    for (absl::string_view body : {"/simple", "/relaxed", ""}) {
      if (c == absl::StrCat(word, body)) return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("'", c,
                   "' is not header/body canonicalization (\"relaxed/relaxed\", "
                   "\"relaxed/simple\", \"simple/simple\" or \"simple/relaxed\")"));
}

// A header field name (RFC 5322 2.2: printable ASCII except ':').
absl::Status CheckHeaderName(absl::string_view name) {
  bool ok = !name.empty() && name.size() <= 76;
  for (char c : name) ok = ok && c > ' ' && c < 127 && c != ':';
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("'", name, "' is not a header field name"));
}

// A destination pattern of [[shaping]] and [[route]]: "example.com",
// "*.example.com" (the names below example.com) or "*".
absl::Status CheckPattern(absl::string_view pattern) {
  if (pattern == "*") return absl::OkStatus();
  absl::string_view name = pattern;
  if (absl::StartsWith(name, "*.")) name.remove_prefix(2);
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (pattern.empty() || !CheckHostname(name).ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", pattern,
        "' is not a domain pattern (write an exact name \"example.com\", \"*.example.com\" for "
        "every name below example.com, or \"*\" for all)"));
  }
  return absl::OkStatus();
}

absl::Status CheckOptionalHostname(absl::string_view s) {
  return s.empty() ? absl::OkStatus() : CheckHostname(s);
}

absl::Status CheckSourceAddress(absl::string_view s) {
  if (s.empty()) return absl::OkStatus();
  if (!base::IpAddress::Parse(Std(s)).ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", s, "' is not an IP address (a literal IPv4 or IPv6 address, no port, no name)"));
  }
  return absl::OkStatus();
}

// A DNS server as c-ares wants it, "ADDR:PORT" or "[v6]:PORT". A bare
// address, "10.0.0.53" or "[2001:db8::53]", gets port 53. A bare IPv6
// address without brackets is refused: in "::1:53" the 53 could be a port.
absl::StatusOr<std::string> NormalizeDnsServer(absl::string_view text) {
  absl::string_view bare = text;
  const bool bracketed = absl::ConsumePrefix(&bare, "[") && absl::ConsumeSuffix(&bare, "]");
  if (auto ip = base::IpAddress::Parse(Std(bracketed ? bare : text)); ip.ok()) {
    if (ip->v6 != bracketed) {
      return absl::InvalidArgumentError(
          ip->v6 ? absl::StrCat("'", text, "': an IPv6 address needs brackets: \"[", text,
                                "]\" (port 53) or \"[ADDR]:PORT\"")
                 : absl::StrCat("'", text, "': brackets are for IPv6 addresses"));
    }
    return ip->v6 ? absl::StrCat("[", ip->ToString(), "]:53") : absl::StrCat(ip->ToString(), ":53");
  }
  auto addr = base::SocketAddress::Parse(Std(text));
  if (!addr.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not ADDR:PORT or an IP address: ", addr.status().message()));
  }
  std::string normal = addr->ToString();
  if (absl::EndsWith(normal, ":0")) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "': port 0"));
  }
  return normal;
}

// Checks and normalizes a list of DNS servers. On failure `*bad` is the
// index of the culprit.
absl::StatusOr<std::vector<std::string>> NormalizeDnsServers(const std::vector<std::string>& in,
                                                             size_t* bad) {
  std::vector<std::string> out;
  for (size_t i = 0; i < in.size(); ++i) {
    *bad = i;
    auto normal = NormalizeDnsServer(in[i]);
    if (!normal.ok()) return normal.status();
    if (std::find(out.begin(), out.end(), *normal) != out.end()) {
      return absl::InvalidArgumentError(absl::StrCat("'", in[i], "' is listed twice"));
    }
    out.push_back(*std::move(normal));
  }
  return out;
}

// The host and port of a next hop ("host", "host:port", "[host]:port",
// "[v6]:port", ...), into `route`.
absl::Status ParseNextHop(absl::string_view text, Route& route) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not a next hop: ", why));
  };
  if (text.empty()) return absl::InvalidArgumentError("must not be empty");
  absl::string_view host = text;
  absl::string_view port_text;
  bool has_port = false;
  if (text.front() == '[') {
    const size_t close = text.find(']');
    if (close == absl::string_view::npos) return bad("no ']' after '['");
    host = text.substr(1, close - 1);
    const absl::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return bad("expected ':PORT' after ']'");
      port_text = rest.substr(1);
      has_port = true;
    }
  } else if (const size_t colon = text.find(':'); colon != absl::string_view::npos) {
    if (text.find(':', colon + 1) != absl::string_view::npos) {
      return bad(absl::StrCat("an IPv6 address needs brackets, as in \"[2001:db8::1]:25\""));
    }
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    has_port = true;
  }
  uint64_t port = 25;
  if (has_port && (!base::ParseUint64(Std(port_text), port) || port < 1 || port > 65535)) {
    return bad(absl::StrCat("bad port '", port_text, "' (1 to 65535)"));
  }
  absl::string_view name = host;  // a trailing dot ends a fully qualified name
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  // A name of digits and dots is a mistyped address (no top-level domain is numeric).
  const bool numeric = name.find_first_not_of("0123456789.") == absl::string_view::npos;
  if (auto ip = base::IpAddress::Parse(Std(host)); ip.ok()) {
    route.host = ip->ToString();
  } else if (!numeric && CheckHostname(name).ok()) {
    route.host = NormalizeName(host);
  } else {
    return bad(absl::StrCat("'", host, "' is neither an IP address nor a host name"));
  }
  route.port = static_cast<uint16_t>(port);
  return absl::OkStatus();
}

absl::Status CheckOptionalPath(absl::string_view path) {
  return CheckPath(path, /*may_be_empty=*/true);
}

// http.listen: one "ADDR:PORT", or "" for no HTTP listener.
absl::Status CheckHttpListen(absl::string_view text) {
  if (text.empty()) return absl::OkStatus();
  auto addr = base::SocketAddress::Parse(base::Sv(text));
  if (!addr.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", text, "' is not ADDR:PORT (\"\" turns HTTP off): ", addr.status().message()));
  }
  return absl::OkStatus();
}

absl::Status CheckBackoffPattern(absl::string_view pattern) {
  if (pattern.empty()) return absl::InvalidArgumentError("a pattern must not be empty");
  if (pattern.size() > kMaxBackoffPatternLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("a pattern is longer than ", kMaxBackoffPatternLength, " characters"));
  }
  return absl::OkStatus();
}

// Parses the listen addresses. On failure `*bad` is the index of the culprit.
absl::StatusOr<std::vector<base::SocketAddress>> ParseListen(const std::vector<std::string>& listen,
                                                             size_t* bad) {
  if (listen.empty()) {
    *bad = 0;
    return absl::InvalidArgumentError("must list at least one ADDR:PORT");
  }
  std::vector<base::SocketAddress> out;
  for (size_t i = 0; i < listen.size(); ++i) {
    *bad = i;
    auto addr = base::SocketAddress::Parse(listen[i]);
    if (!addr.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", listen[i], "' is not ADDR:PORT: ", addr.status().message()));
    }
    for (const base::SocketAddress& seen : out) {
      if (seen.ToString() == addr->ToString()) {
        return absl::InvalidArgumentError(
            seen.ToString() == listen[i]
                ? absl::StrCat("'", listen[i], "' is listed twice")
                : absl::StrCat("'", listen[i], "' is listed twice (as ", seen.ToString(), ")"));
      }
    }
    out.push_back(*addr);
  }
  return out;
}

// Parses CIDR networks. On failure `*bad` is the index of the culprit.
absl::StatusOr<base::NetworkSet> ParseNetworks(const std::vector<absl::string_view>& parts,
                                               size_t* bad) {
  base::NetworkSet set;
  for (size_t i = 0; i < parts.size(); ++i) {
    *bad = i;
    auto net = base::Network::Parse(Std(parts[i]));
    if (!net.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", parts[i], "' is not a CIDR network: ", net.status().message()));
    }
    set.Add(*net);
  }
  if (set.networks().empty()) {
    *bad = 0;
    return absl::InvalidArgumentError(
        "must name at least one network (a relay that relays for nobody is useless)");
  }
  return set;
}

std::vector<absl::string_view> SplitNetworks(absl::string_view comma_separated) {
  std::vector<absl::string_view> parts;
  for (absl::string_view p : absl::StrSplit(comma_separated, ',', absl::SkipWhitespace())) {
    parts.push_back(absl::StripAsciiWhitespace(p));
  }
  return parts;
}

}  // namespace sluice::config
