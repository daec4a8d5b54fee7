// The retry delay: doubling from the minimum, capped, jittered in [c/2, c].
#include "backoff.h"

#include <gtest/gtest.h>

namespace sluice::webhook {
namespace {

TEST(BackoffTest, DoublesWithinJitterBounds) {
  for (uint64_t r : {0ull, 1ull, 12345ull, ~0ull}) {
    uint64_t ceiling = 1000;
    for (uint32_t f = 1; f <= 12; ++f) {
      const uint64_t d = BackoffMs(f, 1000, 60000, r);
      EXPECT_GE(d, ceiling / 2 + ceiling % 2) << f;
      EXPECT_LE(d, ceiling) << f;
      ceiling = std::min<uint64_t>(ceiling * 2, 60000);
    }
  }
}

TEST(BackoffTest, ExtremesAndCap) {
  EXPECT_EQ(BackoffMs(1, 1000, 60000, 0), 500u);
  EXPECT_EQ(BackoffMs(1, 1000, 60000, 500), 1000u);
  EXPECT_EQ(BackoffMs(40, 1000, 60000, 0), 30000u);
  EXPECT_LE(BackoffMs(4'000'000'000u, 10, 3'600'000, ~0ull), 3'600'000u);
  EXPECT_EQ(BackoffMs(3, 1, 1, 7), 1u);
  EXPECT_EQ(BackoffMs(3, 100, 50, 0), 50u);  // max below min: min wins
}

}  // namespace
}  // namespace sluice::webhook
