// Per-destination lookups over the pattern lists of a Config ([[route]],
// [delivery.tls_policy]): FindRoute, FindOutboundTls, and the parsers of
// their values for callers outside the TOML reader (sluice/config/config.h).
// Pure.

#include <string_view>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "checks.h"
#include "sluice/config/config.h"
#include "views.h"

namespace sluice::config {

namespace {

// The entry whose pattern matches `domain_in` most specifically: the exact
// name, else the longest "*." suffix, else "*". Null when none matches.
template <typename Entry>
const Entry* MostSpecific(const std::vector<Entry>& entries, std::string_view domain_in) {
  absl::string_view domain = Sv(domain_in);
  if (!domain.empty() && domain.back() == '.') domain.remove_suffix(1);
  const Entry* suffix_match = nullptr;
  size_t suffix_length = 0;
  const Entry* any = nullptr;
  for (const Entry& entry : entries) {
    absl::string_view pattern = entry.pattern;
    if (!pattern.empty() && pattern.back() == '.') pattern.remove_suffix(1);
    if (pattern == "*") {
      if (any == nullptr) any = &entry;
    } else if (absl::StartsWith(pattern, "*.")) {
      const absl::string_view suffix = pattern.substr(1);  // ".example.com"
      if (domain.size() > suffix.size() && suffix.size() > suffix_length &&
          absl::EqualsIgnoreCase(domain.substr(domain.size() - suffix.size()), suffix)) {
        suffix_match = &entry;
        suffix_length = suffix.size();
      }
    } else if (absl::EqualsIgnoreCase(pattern, domain)) {
      return &entry;
    }
  }
  return suffix_match != nullptr ? suffix_match : any;
}

}  // namespace

const Route* FindRoute(const Config& config, std::string_view domain) {
  return MostSpecific(config.routes, domain);
}

OutboundTls FindOutboundTls(const Config& config, std::string_view domain) {
  const TlsPolicyEntry* e = MostSpecific(config.tls_policies, domain);
  return e != nullptr ? e->policy : config.outbound_tls;
}

absl::StatusOr<OutboundTls> ParseOutboundTls(std::string_view name) {
  if (name == "disabled") return OutboundTls::kDisabled;
  if (name == "opportunistic") return OutboundTls::kOpportunistic;
  if (name == "required") return OutboundTls::kRequired;
  if (name == "verify") return OutboundTls::kVerify;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown TLS policy '", Sv(name), "' (disabled, opportunistic, required or verify)"));
}

const char* OutboundTlsName(OutboundTls policy) {
  switch (policy) {
    case OutboundTls::kDisabled:
      return "disabled";
    case OutboundTls::kOpportunistic:
      return "opportunistic";
    case OutboundTls::kRequired:
      return "required";
    case OutboundTls::kVerify:
      return "verify";
  }
  return "?";
}

absl::StatusOr<Route> ParseRoute(std::string_view pattern, std::string_view next_hop) {
  if (absl::Status s = CheckPattern(Sv(pattern)); !s.ok()) return s;
  Route route;
  route.pattern = NormalizeName(Sv(pattern));
  if (absl::Status s = ParseNextHop(Sv(next_hop), route); !s.ok()) return s;
  return route;
}

}  // namespace sluice::config
