// RFC 5321 path syntax (section 4.1.2) for MAIL FROM and RCPT TO, with the
// RFC 6531 (SMTPUTF8) extension. Pure: text in, parsed mailbox or a reason out.
//
// Trusts nothing: the input is whatever a client sent. Limits: local part 64,
// domain 255, whole path 256 octets (RFC 5321 4.5.3.1). A source route
// (`<@a,@b:user@c>`) is accepted and dropped, as 4.1.1.3 asks.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace sluice::smtp {

struct Mailbox {
  std::string local_part;  // as written (quoted form kept with its quotes)
  std::string domain;      // as written; address literals keep their brackets
  bool IsNull() const { return local_part.empty() && domain.empty(); }
  std::string ToString() const;  // "local@domain", "" for the null path
};

struct PathParse {
  Mailbox mailbox;
  std::string_view rest;  // text after the closing '>' (the ESMTP parameters)
};

enum class PathKind { kReversePath, kForwardPath };

// Parses "<...>" at the start of `text`. The reverse path may be "<>".
// `utf8` allows non-ASCII (RFC 6531) in local parts and domains.
absl::StatusOr<PathParse> ParsePath(std::string_view text, PathKind kind, bool utf8);

// Domain syntax only (dot-separated LDH labels, or an address literal).
bool IsValidDomain(std::string_view domain, bool utf8);

// The argument of EHLO/HELO (RFC 5321 4.1.1.1: a domain or an address
// literal), checked leniently as real clients write it: letters, digits,
// '-', '_' and '.' in any arrangement with at least one letter or digit
// ("my_host", "host.", a bare IPv4 address), or a bracketed IPv4, IPv6 or
// general address literal. Refused: empty, longer than 255, spaces, control
// characters, 8-bit bytes and any other punctuation, so what is accepted
// can be echoed in a reply, a Received: field and the log as it is.
bool IsAcceptableHeloArgument(std::string_view argument);

// True when `a` and `b` ("local@domain") name the same mailbox: the local
// parts compared exactly (RFC 5321 2.4: only the receiving host may fold
// their case), the domains case-insensitively.
bool SameMailbox(std::string_view a, std::string_view b);

}  // namespace sluice::smtp
