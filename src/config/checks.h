// Value checks shared by the TOML reader and Config::Finalize(). Each sees
// one value and returns a bare problem ("must not be empty"); the caller says
// where ("<file>:<line>: server.hostname: ..."). Private to src/config.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "sluice/base/cidr.h"
#include "sluice/config/config.h"

namespace sluice::config {

// RFC 5321 Domain: dot-separated labels of letters, digits and inner hyphens.
absl::Status CheckHostname(absl::string_view name);
// As CheckHostname, but "" is fine.
absl::Status CheckOptionalHostname(absl::string_view s);
// As CheckHostname after a trailing dot is dropped, but "" is fine.
absl::Status CheckOptionalName(absl::string_view name);
absl::Status CheckPath(absl::string_view path, bool may_be_empty);
absl::Status CheckOptionalPath(absl::string_view path);
// "local@domain", the address every <postmaster> RCPT is rewritten to; "" is none.
absl::Status CheckPostmasterAddress(absl::string_view address);
absl::Status CheckBareLinefeed(absl::string_view policy);

// Lower case, without a trailing dot: the form patterns and names are
// compared in.
std::string NormalizeName(absl::string_view name);

// A [[dkim.signer]] domain: "example.com" or "*.example.com".
absl::Status CheckDkimPattern(absl::string_view pattern);
// A DKIM selector: dot-separated labels (RFC 6376 3.1).
absl::Status CheckSelector(absl::string_view s);
// "relaxed/relaxed", "simple/relaxed", ...; one word is header/simple.
absl::Status CheckCanonicalization(absl::string_view c);
// A header field name (RFC 5322 2.2: printable ASCII except ':').
absl::Status CheckHeaderName(absl::string_view name);

// A destination pattern of [[shaping]], [[route]] and [delivery.tls_policy]:
// "example.com", "*.example.com" or "*".
absl::Status CheckPattern(absl::string_view pattern);
// One [[shaping]] backoff_patterns entry: not empty, not too long.
absl::Status CheckBackoffPattern(absl::string_view pattern);

// delivery.source_address: a literal IP address, or "".
absl::Status CheckSourceAddress(absl::string_view s);
// A DNS server as c-ares wants it, "ADDR:PORT" or "[v6]:PORT"; a bare
// address gets port 53.
absl::StatusOr<std::string> NormalizeDnsServer(absl::string_view text);
// Checks and normalizes a list of DNS servers. On failure `*bad` is the
// index of the culprit.
absl::StatusOr<std::vector<std::string>> NormalizeDnsServers(const std::vector<std::string>& in,
                                                             size_t* bad);
// The host and port of a next hop ("host", "host:port", "[host]:port",
// "[v6]:port", ...), into `route`.
absl::Status ParseNextHop(absl::string_view text, Route& route);

// http.listen: one "ADDR:PORT", or "" for no HTTP listener.
absl::Status CheckHttpListen(absl::string_view text);
// server.listen. On failure `*bad` is the index of the culprit.
absl::StatusOr<std::vector<base::SocketAddress>> ParseListen(const std::vector<std::string>& listen,
                                                             size_t* bad);
// server.relay_from: CIDR networks. On failure `*bad` is the index of the culprit.
absl::StatusOr<base::NetworkSet> ParseNetworks(const std::vector<absl::string_view>& parts,
                                               size_t* bad);
// "cidr, cidr" -> {"cidr", "cidr"}.
std::vector<absl::string_view> SplitNetworks(absl::string_view comma_separated);

}  // namespace sluice::config
