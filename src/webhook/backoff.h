// How long a webhook waits before sending a failed batch again: exponential
// from min_ms, doubling per failure in a row, capped at max_ms, with jitter
// so that several Sluices (or webhooks) that failed together do not return
// together. Pure: the caller passes the random number.
//
//   failures = 1: a delay in [min/2, min]; 2: [min, 2 min]; ... capped so
//   that the delay is at most max_ms (and at least max_ms / 2 at the cap).
#pragma once

#include <cstdint>

namespace sluice::webhook {

// failures >= 1: the failures in a row so far; random: any 64-bit value.
uint64_t BackoffMs(uint32_t failures, uint64_t min_ms, uint64_t max_ms, uint64_t random);

}  // namespace sluice::webhook
