// [[shaping]]: per-destination traffic rules (queue::ShapingRule), one
// table per rule. The numeric settings are Fields (field_tables.cc); a rule
// needs a pattern, and a pattern (with its by_mx) has at most one rule.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "checks.h"
#include "field_tables.h"
#include "tables.h"

namespace sluice::config {
namespace {

constexpr absl::string_view kShapingOtherKeys[] = {"pattern", "by_mx", "backoff_patterns"};

// One rule; `lines` holds where each rule in `rules` has its pattern, for
// "already has a rule at line N".
absl::Status ReadShapingRule(Walk& walk, const toml::table& t,
                             std::vector<queue::ShapingRule>& rules, std::vector<int64_t>& lines) {
  const std::vector<absl::string_view> known = KeysOf(ShapingFields(), kShapingOtherKeys);
  queue::ShapingRule rule;
  const toml::node* pattern = nullptr;
  absl::Status status = walk.ForEach(t, "shaping", [&](const Entry& e) {
    if (const Field* f = FindField(ShapingFields(), e.name)) {
      return walk.ReadField(*f, e.dotted, e.node, &rule.params);
    }
    if (e.name == "pattern") {
      absl::Status s = walk.ReadString(e.dotted, e.node, CheckPattern, &rule.pattern);
      rule.pattern = NormalizeName(rule.pattern);
      pattern = &e.node;
      return s;
    }
    if (e.name == "by_mx") {
      return walk.ReadBool(e.dotted, e.node, "a boolean (true or false)", &rule.by_mx);
    }
    if (e.name == "backoff_patterns") {
      auto patterns =
          walk.ReadStrings(e.dotted, e.node, "strings", kMaxBackoffPatterns, CheckBackoffPattern);
      if (patterns.ok()) rule.params.backoff_patterns = *std::move(patterns);
      return patterns.status();
    }
    return walk.Unknown("[shaping]", e, known);
  });
  if (!status.ok()) return status;
  if (pattern == nullptr) {
    return walk.Error(t, "shaping",
                      "missing key 'pattern' (the domains the rule is for: \"example.com\", "
                      "\"*.example.com\" or \"*\")");
  }
  for (size_t i = 0; i < rules.size(); ++i) {
    if (rules[i].pattern == rule.pattern && rules[i].by_mx == rule.by_mx) {
      return walk.Error(*pattern, "shaping.pattern",
                        absl::StrCat("'", rule.pattern, "'", rule.by_mx ? " (by_mx)" : "",
                                     " already has a rule at line ", lines[i]));
    }
  }
  rules.push_back(std::move(rule));
  lines.push_back(pattern->source().begin.line);
  return absl::OkStatus();
}

}  // namespace

absl::Status ReadShapingTables(Walk& walk, const toml::array& entries) {
  std::vector<queue::ShapingRule> rules;
  std::vector<int64_t> lines;
  for (const toml::node& element : entries) {
    if (absl::Status s = ReadShapingRule(walk, *element.as_table(), rules, lines); !s.ok()) {
      return s;
    }
  }
  walk.config().shaping = std::move(rules);
  return absl::OkStatus();
}

}  // namespace sluice::config
