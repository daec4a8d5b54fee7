// Traffic shaping: the policy (which limits apply to a destination) and the
// gate that enforces them (connection slots, rate buckets, adaptive backoff).
//
// The policy is data, not TOML: config/ turns its tables into ShapingRules.
// A rule matches a recipient domain or, with `by_mx`, an MX host name, by
// pattern: an exact name, `*.example.com` (any name below example.com, not
// example.com itself), or `*`. The most specific match wins as a whole
// (exact, then the longest `*.` suffix, then `*`); a domain with no match
// gets the built-in defaults. An MX rule adds a second, shared gate: every
// domain whose MX host matches the same MX rule pattern-instance (the host
// name itself) draws from one budget, so the 10,000 domains hosted by one
// provider cannot open 10,000 × 20 connections to it. A job needs both its
// domain gate and (when bound) its MX gate to allow it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "sluice/queue/token_bucket.h"
#include "sluice/queue/types.h"

namespace sluice::queue {

struct ShapeParams {
  uint32_t max_connections = 20;               // >= 1
  uint32_t max_messages_per_connection = 100;  // 0: unlimited
  uint32_t messages_per_second = 0;            // 0: unlimited
  uint32_t message_burst = 0;                  // 0: one second's worth (at least 1)
  uint32_t messages_per_hour = 0;              // 0: unlimited; burst is the hour's worth
  uint32_t connections_per_second = 0;         // 0: unlimited
  uint32_t connection_burst = 0;               // 0: one second's worth (at least 1)

  // Adaptive backoff. Triggered by a 421 (if backoff_on_421) or by any 4xx
  // or 5xx reply whose text matches one of backoff_patterns (case-insensitive;
  // a pattern with `*` or `?` is a glob over the whole text, otherwise a
  // substring), like PowerMTA's backoff mode.
  bool backoff_on_421 = true;
  std::vector<std::string> backoff_patterns = {"rate limit", "rate-limit", "ratelimit", "too many",
                                               "throttl",    "slow down",  "4.7.28"};
  // Each trigger multiplies connections and rates by this (permille), down
  // to backoff_min_permille.
  uint32_t backoff_factor_permille = 500;
  uint32_t backoff_min_permille = 63;
  // The reduced limits hold at least this long after the last trigger ...
  Micros backoff_duration = 10 * kMinute;
  // ... then every `recovery_successes` deliveries undo one step.
  uint32_t recovery_successes = 20;

  bool operator==(const ShapeParams&) const = default;
};

struct ShapingRule {
  std::string pattern;  // "example.com", "*.example.com", "*"
  bool by_mx = false;   // match MX host names instead of recipient domains
  ShapeParams params;
};

// Case-insensitive match of `text` against a glob with `*` and `?`.
bool GlobMatch(std::string_view glob, std::string_view text);
// A backoff pattern (glob or substring, see ShapeParams) against reply text.
bool BackoffPatternMatches(std::string_view pattern, std::string_view text);

class ShapingPolicy {
 public:
  // Built-in defaults for every domain, no MX rules.
  ShapingPolicy();
  // Checks the patterns (no `*` except a leading `*.` or a lone `*`, no
  // duplicates) and the limits.
  static absl::StatusOr<ShapingPolicy> Create(std::vector<ShapingRule> rules);

  // The params for a recipient domain (never null).
  const ShapeParams& ForDomain(std::string_view domain) const;
  // The MX rule for an MX host, or null when no MX rule matches.
  const ShapeParams* ForMx(std::string_view mx_host) const;

 private:
  struct Table {
    std::vector<std::pair<std::string, size_t>> exact;   // lower-case name -> rule
    std::vector<std::pair<std::string, size_t>> suffix;  // ".example.com" -> rule, longest first
    std::optional<size_t> any;
    const ShapeParams* Find(const std::vector<ShapingRule>& rules, std::string_view name) const;
  };
  std::vector<ShapingRule> rules_;
  Table domains_;
  Table mx_;
  ShapeParams defaults_;
};

// The budget of one destination (a domain, or an MX host shared by domains).
class ShapingGate {
 public:
  // `params` must outlive the gate (the policy owns them: a gate costs no
  // copy of the pattern list, which matters with 100,000 domains).
  explicit ShapingGate(const ShapeParams& params, Micros now = 0);
  ShapingGate(const ShapeParams&& params, Micros now = 0) = delete;

  const ShapeParams& params() const { return *params_; }
  // A configuration reload: the gate follows `params` from now on. Equal
  // params only move the pointer; different ones restart the buckets at the
  // new rates (full, as at start-up), keeping the open connections and the
  // backoff in force. Above a lowered max_connections no connection opens,
  // and open ones are shed after their current message (DomainQueue::MaySend),
  // as when a backoff lowers the cap.
  void Reconfigure(const ShapeParams& params, Micros now);
  void Reconfigure(const ShapeParams&& params, Micros now) = delete;

  // Limits in force now (reduced while backing off).
  uint32_t scale_permille() const { return scale_; }
  uint32_t max_connections() const;
  uint32_t open_connections() const { return open_; }
  bool backing_off() const { return scale_ < 1000; }

  // kNever when every connection slot is taken (a Release will free one).
  Micros ConnectionAvailableAt(Micros now) const;
  Micros MessageAvailableAt(Micros now) const;
  void TakeConnection(Micros now);  // CHECKs that one is available
  void ReleaseConnection();
  void TakeMessage(Micros now);  // CHECKs that one is available

  // Feeds one reply to the backoff logic. True if it triggered a backoff.
  bool OnReply(const Reply& reply, Micros now);
  bool IsBackoffReply(const Reply& reply) const;

 private:
  void SetScale(uint32_t scale, Micros now);

  const ShapeParams* params_;
  TokenBucket per_second_;
  TokenBucket per_hour_;
  TokenBucket connections_;
  uint32_t open_ = 0;
  uint32_t scale_ = 1000;
  uint32_t successes_ = 0;
  Micros backoff_until_ = 0;
};

}  // namespace sluice::queue
