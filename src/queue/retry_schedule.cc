#include "sluice/queue/retry_schedule.h"

#include <algorithm>

namespace sluice::queue {
namespace {

// splitmix64 finalizer: a well-mixed hash of the id and the attempt.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

absl::Status RetrySchedule::Validate(const RetryConfig& c) {
  if (c.intervals.empty() && c.initial == 0)
    return absl::InvalidArgumentError("retry: initial interval is 0");
  if (c.intervals.empty() && c.factor_permille < 1000)
    return absl::InvalidArgumentError("retry: factor below 1");
  for (Micros i : c.intervals) {
    if (i == 0) return absl::InvalidArgumentError("retry: an interval is 0");
  }
  if (c.max_interval == 0) return absl::InvalidArgumentError("retry: max interval is 0");
  if (c.max_age == 0) return absl::InvalidArgumentError("retry: max age is 0");
  if (c.jitter_permille > 500) return absl::InvalidArgumentError("retry: jitter above 50%");
  return absl::OkStatus();
}

Micros RetrySchedule::BaseInterval(uint32_t failures) const {
  const RetryConfig& c = config_;
  if (failures == 0) failures = 1;
  Micros v;
  if (!c.intervals.empty()) {
    v = c.intervals[std::min<size_t>(failures, c.intervals.size()) - 1];
  } else {
    v = c.initial;
    for (uint32_t i = 1; i < failures && v < c.max_interval; ++i) {
      // v * factor / 1000 without overflow: v < max_interval here.
      const unsigned __int128 next = static_cast<unsigned __int128>(v) * c.factor_permille / 1000;
      v = next > c.max_interval ? c.max_interval : static_cast<Micros>(next);
    }
  }
  return std::min(v, c.max_interval);
}

Micros RetrySchedule::Interval(base::QueueId id, uint32_t failures) const {
  const Micros base = BaseInterval(failures);
  if (config_.jitter_permille == 0) return base;
  const uint64_t h = Mix(id.value() ^ (uint64_t{failures} * 0xd6e8feb86659fd93ULL));
  const unsigned __int128 span =
      static_cast<unsigned __int128>(base) * config_.jitter_permille / 1000;
  const Micros cut = span == 0 ? 0 : static_cast<Micros>(h % static_cast<uint64_t>(span + 1));
  return std::max<Micros>(1, base - cut);
}

RetryDecision RetrySchedule::Next(base::QueueId id, uint32_t failures, Micros queued_at,
                                  Micros now) const {
  const Micros deadline = queued_at + config_.max_age;
  if (now >= deadline) return {.expire = true, .next = kNever};
  const Micros next = now + Interval(id, failures);
  return {.expire = false, .next = std::min(next, deadline)};
}

}  // namespace sluice::queue
