// When to try a deferred job again, and when to give up.
//
// Default: 5 minutes after the first failure, doubling, capped at 4 hours,
// until the message is 5 days old (then Expiration). A fixed list of
// intervals can replace the exponential rule (the last one repeats). Jitter
// is deterministic: derived from the queue id and the attempt number, it
// spreads retries of a burst of messages without any random state, and the
// same job always gets the same schedule (tests, restarts).
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "sluice/queue/types.h"

namespace sluice::queue {

struct RetryConfig {
  Micros initial = 5 * kMinute;
  uint32_t factor_permille = 2000;  // each interval is this much of the previous, /1000
  Micros max_interval = 4 * kHour;
  Micros max_age = 5 * kDay;
  // Each interval is shortened by up to this fraction (permille), chosen
  // from the queue id: 100 spreads retries over the last 10% of the interval.
  uint32_t jitter_permille = 100;
  // If not empty, replaces initial/factor: interval n is intervals[n-1], the
  // last one repeating (still capped by max_interval).
  std::vector<Micros> intervals;
};

struct RetryDecision {
  bool expire = false;   // give up: record Expiration, send the DSN
  Micros next = kNever;  // else: the next attempt, never past queued_at + max_age
};

class RetrySchedule {
 public:
  RetrySchedule() = default;
  explicit RetrySchedule(RetryConfig config) : config_(std::move(config)) {}
  static absl::Status Validate(const RetryConfig& config);

  const RetryConfig& config() const { return config_; }

  // The interval before attempt `failures + 1` without jitter (failures >= 1).
  Micros BaseInterval(uint32_t failures) const;
  // With the job's jitter.
  Micros Interval(base::QueueId id, uint32_t failures) const;
  // After the `failures`-th transient failure at `now`: expire, or retry at
  // next. The last attempt happens at the maximum age exactly, so a message
  // gets its full lifetime; a failure at or past the maximum age expires it.
  RetryDecision Next(base::QueueId id, uint32_t failures, Micros queued_at, Micros now) const;

 private:
  RetryConfig config_;
};

}  // namespace sluice::queue
