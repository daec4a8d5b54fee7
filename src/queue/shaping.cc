#include "sluice/queue/shaping.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "sluice/base/check.h"
#include "sluice/base/strings.h"

namespace sluice::queue {
namespace {

std::string Normalize(std::string_view name) {
  while (!name.empty() && name.back() == '.') name.remove_suffix(1);
  std::string out(name);
  for (char& c : out) c = base::AsciiLower(c);
  return out;
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

absl::Status CheckParams(const ShapeParams& p, std::string_view pattern) {
  auto bad = [&](std::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat("shaping rule ", base::Av(pattern), ": ", base::Av(what)));
  };
  if (p.max_connections == 0) return bad("max_connections must be at least 1");
  const uint64_t max = TokenBucket::kMaxTokens;
  if (p.messages_per_second > max || p.message_burst > max || p.messages_per_hour > max ||
      p.connections_per_second > max || p.connection_burst > max) {
    return bad("rate or burst above 1,000,000");
  }
  if (p.backoff_factor_permille == 0 || p.backoff_factor_permille > 1000) {
    return bad("backoff factor must be in (0, 1]");
  }
  if (p.backoff_min_permille == 0 || p.backoff_min_permille > 1000) {
    return bad("backoff minimum must be in (0, 1]");
  }
  for (const std::string& s : p.backoff_patterns) {
    if (s.empty()) return bad("empty backoff pattern");
  }
  return absl::OkStatus();
}

}  // namespace

bool GlobMatch(std::string_view glob, std::string_view text) {
  // Iterative matcher with one backtrack point: linear in practice.
  size_t g = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (g < glob.size() &&
        (glob[g] == '?' || base::AsciiLower(glob[g]) == base::AsciiLower(text[t]))) {
      ++g;
      ++t;
    } else if (g < glob.size() && glob[g] == '*') {
      star = g++;
      mark = t;
    } else if (star != std::string_view::npos) {
      g = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (g < glob.size() && glob[g] == '*') ++g;
  return g == glob.size();
}

bool BackoffPatternMatches(std::string_view pattern, std::string_view text) {
  if (pattern.find_first_of("*?") != std::string_view::npos) return GlobMatch(pattern, text);
  if (pattern.size() > text.size()) return false;
  for (size_t i = 0; i + pattern.size() <= text.size(); ++i) {
    if (base::EqualsIgnoreCase(text.substr(i, pattern.size()), pattern)) return true;
  }
  return false;
}

ShapingPolicy::ShapingPolicy() = default;

absl::StatusOr<ShapingPolicy> ShapingPolicy::Create(std::vector<ShapingRule> rules) {
  ShapingPolicy policy;
  policy.rules_ = std::move(rules);
  for (size_t i = 0; i < policy.rules_.size(); ++i) {
    ShapingRule& r = policy.rules_[i];
    r.pattern = Normalize(r.pattern);
    if (absl::Status s = CheckParams(r.params, r.pattern); !s.ok()) return s;
    Table& table = r.by_mx ? policy.mx_ : policy.domains_;
    const std::string_view p = r.pattern;
    auto dup = [&] {
      return absl::InvalidArgumentError(
          absl::StrCat("shaping rule ", base::Av(p), " appears twice"));
    };
    if (p == "*") {
      if (table.any) return dup();
      table.any = i;
    } else if (p.size() > 2 && p.substr(0, 2) == "*.") {
      if (p.find('*', 1) != std::string_view::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat("shaping rule ", base::Av(p), ": bad pattern"));
      }
      for (auto& [s, _] : table.suffix) {
        if (s == p.substr(1)) return dup();
      }
      table.suffix.emplace_back(std::string(p.substr(1)), i);
    } else if (p.empty() || p.find('*') != std::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("shaping rule '", base::Av(p), "': bad pattern"));
    } else {
      for (auto& [s, _] : table.exact) {
        if (s == p) return dup();
      }
      table.exact.emplace_back(std::string(p), i);
    }
  }
  for (Table* t : {&policy.domains_, &policy.mx_}) {
    std::stable_sort(t->suffix.begin(), t->suffix.end(),
                     [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  }
  return policy;
}

const ShapeParams* ShapingPolicy::Table::Find(const std::vector<ShapingRule>& rules,
                                              std::string_view name_in) const {
  const std::string name = Normalize(name_in);
  for (const auto& [n, i] : exact) {
    if (n == name) return &rules[i].params;
  }
  for (const auto& [s, i] : suffix) {  // longest first: the most specific
    if (name.size() > s.size() && EndsWith(name, s)) return &rules[i].params;
  }
  if (any) return &rules[*any].params;
  return nullptr;
}

const ShapeParams& ShapingPolicy::ForDomain(std::string_view domain) const {
  const ShapeParams* p = domains_.Find(rules_, domain);
  return p ? *p : defaults_;
}

const ShapeParams* ShapingPolicy::ForMx(std::string_view mx_host) const {
  return mx_.Find(rules_, mx_host);
}

ShapingGate::ShapingGate(const ShapeParams& params, Micros now)
    : params_(&params),
      per_second_(params.messages_per_second, kSecond, params.message_burst, now),
      per_hour_(params.messages_per_hour, kHour, 0, now),
      connections_(params.connections_per_second, kSecond, params.connection_burst, now) {}

void ShapingGate::Reconfigure(const ShapeParams& params, Micros now) {
  const bool same = *params_ == params;
  params_ = &params;
  if (same) return;
  per_second_ = TokenBucket(params.messages_per_second, kSecond, params.message_burst, now);
  per_hour_ = TokenBucket(params.messages_per_hour, kHour, 0, now);
  connections_ = TokenBucket(params.connections_per_second, kSecond, params.connection_burst, now);
  SetScale(std::max(scale_, params.backoff_min_permille), now);
}

uint32_t ShapingGate::max_connections() const {
  const uint64_t scaled = (uint64_t{params_->max_connections} * scale_ + 999) / 1000;
  return static_cast<uint32_t>(std::max<uint64_t>(1, scaled));
}

Micros ShapingGate::ConnectionAvailableAt(Micros now) const {
  if (open_ >= max_connections()) return kNever;
  return connections_.NextAvailable(now);
}

Micros ShapingGate::MessageAvailableAt(Micros now) const {
  return std::max(per_second_.NextAvailable(now), per_hour_.NextAvailable(now));
}

void ShapingGate::TakeConnection(Micros now) {
  SLUICE_CHECK(open_ < max_connections());
  SLUICE_CHECK(connections_.TryTake(now));
  ++open_;
}

void ShapingGate::ReleaseConnection() {
  SLUICE_CHECK(open_ > 0);
  --open_;
}

void ShapingGate::TakeMessage(Micros now) {
  SLUICE_CHECK(MessageAvailableAt(now) <= now);
  SLUICE_CHECK(per_second_.TryTake(now));
  SLUICE_CHECK(per_hour_.TryTake(now));
}

bool ShapingGate::IsBackoffReply(const Reply& reply) const {
  if (reply.code == 421 && params_->backoff_on_421) return true;
  if (reply.code < 400 || reply.code > 599) return false;
  for (const std::string& p : params_->backoff_patterns) {
    if (BackoffPatternMatches(p, reply.text)) return true;
  }
  return false;
}

void ShapingGate::SetScale(uint32_t scale, Micros now) {
  scale_ = scale;
  per_second_.SetScale(scale, now);
  per_hour_.SetScale(scale, now);
  connections_.SetScale(scale, now);
}

bool ShapingGate::OnReply(const Reply& reply, Micros now) {
  if (IsBackoffReply(reply)) {
    const uint32_t lowered =
        static_cast<uint32_t>(uint64_t{scale_} * params_->backoff_factor_permille / 1000);
    SetScale(std::max(params_->backoff_min_permille, std::min(lowered, scale_)), now);
    backoff_until_ = now + params_->backoff_duration;
    successes_ = 0;
    return true;
  }
  if (reply.code >= 200 && reply.code < 300 && scale_ < 1000 && now >= backoff_until_) {
    if (++successes_ >= std::max<uint32_t>(1, params_->recovery_successes)) {
      successes_ = 0;
      const uint64_t raised = uint64_t{scale_} * 1000 / params_->backoff_factor_permille;
      SetScale(
          static_cast<uint32_t>(std::min<uint64_t>(1000, std::max<uint64_t>(raised, scale_ + 1))),
          now);
    }
  }
  return false;
}

}  // namespace sluice::queue
