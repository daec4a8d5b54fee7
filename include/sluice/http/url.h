// An http:// or https:// URL as a webhook's configuration writes it (RFC
// 3986 subset):
//   http[s]://HOST[:PORT][/PATH[?QUERY]]
// HOST is a DNS name, an IPv4 literal or a bracketed IPv6 literal. Pure: no
// sockets, no resolution (the webhook thread resolves HOST when it connects).
//
// What it trusts: nothing; the text comes from the operator's file and every
// refusal names the problem. What it refuses: any scheme but http and https,
// userinfo ("user:pass@", credentials belong in webhook.authorization),
// fragments, spaces and control characters, ports outside 1..65535, URLs
// longer than kMaxUrlLength.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace sluice::http {

// Longer than any sane endpoint, short enough to keep a request line small.
inline constexpr size_t kMaxUrlLength = 2048;

struct Url {
  std::string host;          // without brackets; lower case
  bool tls = false;          // https://
  uint16_t port = 80;        // 443 for https:// unless given
  std::string target = "/";  // path and query: the request-target (origin-form)
  bool ipv6_literal = false;
  // "host" or "host:port" (port only when not the scheme's default),
  // brackets for IPv6: the Host header's value.
  std::string HostHeader() const;
};

absl::StatusOr<Url> ParseUrl(std::string_view text);

}  // namespace sluice::http
