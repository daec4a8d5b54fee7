#include "sluice/queue/token_bucket.h"

#include <algorithm>

#include "sluice/base/check.h"

namespace sluice::queue {

TokenBucket::TokenBucket(uint64_t tokens, Micros period, uint64_t burst, Micros now) {
  if (tokens == 0) return;  // unlimited
  SLUICE_CHECK(period > 0 && period <= kMaxPeriod);
  SLUICE_CHECK(tokens <= kMaxTokens && burst <= kMaxTokens);
  tokens_ = tokens;
  burst_ = burst == 0 ? tokens : burst;
  cost_ = period * 1000;
  gain_ = tokens_ * scale_;
  credit_ = Capacity();
  last_ = now;
}

uint64_t TokenBucket::Capacity() const {
  // The burst shrinks with the scale too, but never below one token. (With
  // a burst of one, a consumer waking at the rounded-up NextAvailable loses
  // the sub-microsecond overshoot each time: under 1 µs per token.)
  return std::max<uint64_t>(cost_, burst_ * cost_ / 1000 * scale_);
}

uint64_t TokenBucket::CreditAt(Micros now) const {
  const uint64_t cap = Capacity();
  if (now <= last_ || credit_ >= cap) return std::min(credit_, cap);
  const uint64_t needed = cap - credit_;
  const uint64_t elapsed = now - last_;
  // elapsed * gain_ could overflow over long idle periods; compare first.
  if (elapsed >= (needed + gain_ - 1) / gain_) return cap;
  return credit_ + elapsed * gain_;
}

void TokenBucket::Refill(Micros now) {
  credit_ = CreditAt(now);
  if (now > last_) last_ = now;
}

void TokenBucket::SetScale(uint32_t scale_permille, Micros now) {
  if (unlimited()) return;
  SLUICE_CHECK(scale_permille >= 1 && scale_permille <= 1000);
  Refill(now);
  scale_ = scale_permille;
  gain_ = tokens_ * scale_;
  credit_ = std::min(credit_, Capacity());
}

Micros TokenBucket::NextAvailable(Micros now) const {
  if (unlimited()) return now;
  const uint64_t credit = CreditAt(now);
  if (credit >= cost_) return now;
  const Micros from = std::max(now, last_);
  return from + (cost_ - credit + gain_ - 1) / gain_;
}

bool TokenBucket::TryTake(Micros now) {
  if (unlimited()) return true;
  Refill(now);
  if (credit_ < cost_) return false;
  credit_ -= cost_;
  return true;
}

}  // namespace sluice::queue
