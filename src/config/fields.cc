// The field-table machinery (fields.h): lookups, value and range texts, the
// Finalize() range checks over a table, and "did you mean" suggestions.
// Pure: no I/O, no TOML.

#include "fields.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "sluice/config/config.h"

namespace sluice::config {
namespace {

size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// 500 -> "0.5", 63 -> "0.063", 2000 -> "2".
std::string PermilleText(uint64_t permille) {
  std::string out = absl::StrCat(permille / 1000);
  if (const uint64_t rest = permille % 1000; rest != 0) {
    std::string frac = absl::StrCat(1000 + rest).substr(1);  // three digits
    while (frac.back() == '0') frac.pop_back();
    absl::StrAppend(&out, ".", frac);
  }
  return out;
}

}  // namespace

std::string RangeText(Range r) { return absl::StrCat("must be between ", r.min, " and ", r.max); }

const Field* FindField(absl::Span<const Field> fields, absl::string_view key) {
  for (const Field& f : fields) {
    if (f.key == key) return &f;
  }
  return nullptr;
}

std::vector<absl::string_view> KeysOf(absl::Span<const Field> fields,
                                      absl::Span<const absl::string_view> others) {
  std::vector<absl::string_view> keys(others.begin(), others.end());
  for (const Field& f : fields) keys.push_back(f.key);
  return keys;
}

std::string ValueText(Kind kind, uint64_t value) {
  switch (kind) {
    case Kind::kMillis:
    case Kind::kMicros:
      return FormatDuration(value);
    case Kind::kPermille:
      return PermilleText(value);
    case Kind::kUint:
    case Kind::kBool:
      break;
  }
  return absl::StrCat(value);
}

std::string RangeText(Kind kind, Range r) {
  return absl::StrCat("must be between ", ValueText(kind, r.min), " and ", ValueText(kind, r.max));
}

absl::Status CheckFields(absl::Span<const Field> fields, const void* target,
                         absl::string_view table, absl::string_view where) {
  for (const Field& f : fields) {
    if (f.kind == Kind::kBool) continue;
    const uint64_t value = f.get(target);
    if (value < f.range.min || value > f.range.max) {
      return absl::InvalidArgumentError(absl::StrCat(table, ".", f.key, where, ": ",
                                                     RangeText(f.kind, f.range), ", got ",
                                                     ValueText(f.kind, value)));
    }
  }
  return absl::OkStatus();
}

std::string SuggestFrom(absl::Span<const absl::string_view> known, absl::string_view key) {
  absl::string_view best;
  size_t best_distance = 3;  // at most two typos
  for (absl::string_view candidate : known) {
    const size_t d = EditDistance(absl::AsciiStrToLower(key), candidate);
    if (d < best_distance) {
      best = candidate;
      best_distance = d;
    }
  }
  return best.empty() ? "" : absl::StrCat("; did you mean '", best, "'?");
}

}  // namespace sluice::config
