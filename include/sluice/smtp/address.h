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

}  // namespace sluice::smtp
