// Token bucket with exact integer arithmetic.
//
// A bucket is `tokens` per `period` (e.g. 100 per second, 5,000 per hour)
// with a burst capacity. Credit is kept in units of 1/(period_us * 1000) of a
// token: every microsecond adds `tokens * scale_permille` units and one token
// costs `period_us * 1000` units, so no rounding ever accumulates, however
// long the simulated interval. `scale_permille` (1..1000) is the adaptive
// backoff's lever: 500 runs the bucket at half rate.
//
// NextAvailable(now) says when the next token will be there, so the caller
// sleeps until then instead of polling.
#pragma once

#include <cstdint>

#include "sluice/queue/types.h"

namespace sluice::queue {

class TokenBucket {
 public:
  // The largest burst and rate accepted (keeps every product in 64 bits).
  static constexpr uint64_t kMaxTokens = 1'000'000;
  static constexpr Micros kMaxPeriod = kHour;  // burst * period * 1000 * 1000 < 2^64

  // An unlimited bucket: every Take succeeds.
  TokenBucket() = default;
  // `tokens` per `period` (tokens == 0: unlimited); burst 0 means `tokens`.
  // The bucket starts full.
  TokenBucket(uint64_t tokens, Micros period, uint64_t burst = 0, Micros now = 0);

  bool unlimited() const { return gain_ == 0; }

  // Changes the rate multiplier (1..1000 permille). The credit earned so far
  // is kept, up to the scaled capacity.
  void SetScale(uint32_t scale_permille, Micros now);
  uint32_t scale() const { return scale_; }

  // When a token is (or will be) available: `now` if one is there already.
  Micros NextAvailable(Micros now) const;
  bool Available(Micros now) const { return NextAvailable(now) <= now; }
  // Takes a token if one is available.
  bool TryTake(Micros now);

  // Whole tokens available at `now` (for tests and stats).
  uint64_t TokensAt(Micros now) const { return unlimited() ? UINT64_MAX : CreditAt(now) / cost_; }

 private:
  uint64_t CreditAt(Micros now) const;
  void Refill(Micros now);
  uint64_t Capacity() const;

  uint64_t tokens_ = 0;  // per period, at full scale
  uint64_t burst_ = 0;
  uint64_t cost_ = 1;    // units per token: period_us * 1000
  uint64_t gain_ = 0;    // units per microsecond: tokens * scale
  uint64_t credit_ = 0;  // units, <= Capacity()
  uint32_t scale_ = 1000;
  Micros last_ = 0;
};

}  // namespace sluice::queue
