// [retry]: when a deferred message is tried again (queue::RetryConfig). The
// plain settings are Fields (field_tables.cc); intervals is an explicit list.

#include <utility>
#include <vector>

#include "field_tables.h"
#include "tables.h"

namespace sluice::config {
namespace {

constexpr absl::string_view kRetryOtherKeys[] = {"intervals"};

absl::Status ReadRetryIntervals(Walk& walk, const Entry& e) {
  const toml::array* array = e.node.as_array();
  if (array == nullptr) {
    return walk.Error(e.node, e.dotted,
                      absl::StrCat("expected an array of durations such as [\"1m\", \"5m\"], got ",
                                   TypeName(e.node)));
  }
  if (array->size() > kMaxRetryIntervals) {
    return walk.Error(
        e.node, e.dotted,
        absl::StrCat("at most ", kMaxRetryIntervals, " entries, got ", array->size()));
  }
  std::vector<queue::Micros> intervals;
  for (const toml::node& element : *array) {
    auto micros = walk.ReadDuration(e.dotted, element);
    if (!micros.ok()) return micros.status();
    if (!InRange(*micros, kRetryIntervalRange)) {
      return walk.Error(element, e.dotted,
                        absl::StrCat(RangeText(Kind::kMicros, kRetryIntervalRange), ", got ",
                                     FormatDuration(*micros)));
    }
    intervals.push_back(*micros);
  }
  walk.config().retry.intervals = std::move(intervals);
  return absl::OkStatus();
}

}  // namespace

absl::Status ReadRetryTable(Walk& walk, absl::string_view name, const toml::table& t) {
  const std::vector<absl::string_view> known = KeysOf(RetryFields(), kRetryOtherKeys);
  return walk.ForEach(t, name, [&](const Entry& e) {
    if (const Field* f = FindField(RetryFields(), e.name)) {
      return walk.ReadField(*f, e.dotted, e.node, &walk.config().retry);
    }
    if (e.name == "intervals") return ReadRetryIntervals(walk, e);
    return walk.Unknown(name, e, known);
  });
}

}  // namespace sluice::config
