// The retry delay of a failing webhook; see backoff.h.
#include "backoff.h"

#include <algorithm>

namespace sluice::webhook {

uint64_t BackoffMs(uint32_t failures, uint64_t min_ms, uint64_t max_ms, uint64_t random) {
  max_ms = std::max(max_ms, min_ms);
  uint64_t ceiling = min_ms;
  for (uint32_t i = 1; i < failures && ceiling < max_ms; ++i) ceiling *= 2;
  ceiling = std::min(ceiling, max_ms);
  // "Equal jitter": half fixed, half random, so the delay never collapses
  // to zero and the herd still spreads.
  const uint64_t half = ceiling / 2;
  return ceiling - half + (half == 0 ? 0 : random % (half + 1));
}

}  // namespace sluice::webhook
