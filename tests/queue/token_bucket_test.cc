// Token bucket arithmetic: exact refill, NextAvailable, scale, long-run rate.
#include "sluice/queue/token_bucket.h"

#include "gtest/gtest.h"

namespace sluice::queue {
namespace {

TEST(TokenBucket, UnlimitedAlwaysAllows) {
  TokenBucket b;
  EXPECT_TRUE(b.unlimited());
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(b.TryTake(0));
  EXPECT_EQ(b.NextAvailable(123), 123u);
}

TEST(TokenBucket, StartsFullWithBurstThenRefillsExactly) {
  TokenBucket b(10, kSecond, 5, 0);  // 10/s, burst 5
  EXPECT_EQ(b.TokensAt(0), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(b.TryTake(0));
  EXPECT_FALSE(b.TryTake(0));
  EXPECT_EQ(b.NextAvailable(0), 100'000u);  // one token per 100 ms
  EXPECT_FALSE(b.TryTake(99'999));
  EXPECT_EQ(b.NextAvailable(99'999), 100'000u);
  EXPECT_TRUE(b.TryTake(100'000));
  EXPECT_EQ(b.NextAvailable(100'000), 200'000u);
  // Long idle: capped at the burst, no overflow.
  EXPECT_EQ(b.TokensAt(100 * kDay), 5u);
}

TEST(TokenBucket, NonDividingRateHasNoDrift) {
  TokenBucket b(3, kSecond, 2, 0);  // 333,333.33 us per token
  while (b.TryTake(0)) {
  }
  Micros t = 0;
  for (int i = 1; i <= 3000; ++i) {
    t = b.NextAvailable(t);
    ASSERT_TRUE(b.TryTake(t));
  }
  // Each wake-up rounds up to a whole microsecond, but the overshoot stays
  // in the bucket: 3000 tokens take exactly 1000 s.
  EXPECT_EQ(t, 1000 * kSecond);
}

TEST(TokenBucket, BurstOfOneLosesUnderOneMicrosecondPerToken) {
  TokenBucket b(3, kSecond, 1, 0);
  ASSERT_TRUE(b.TryTake(0));
  Micros t = 0;
  for (int i = 1; i <= 3000; ++i) {
    t = b.NextAvailable(t);
    ASSERT_TRUE(b.TryTake(t));
  }
  EXPECT_GE(t, 1000 * kSecond);
  EXPECT_LE(t, 1000 * kSecond + 3000);
}

TEST(TokenBucket, PerHour) {
  TokenBucket b(3600, kHour, 0, 0);  // burst = 3600
  for (int i = 0; i < 3600; ++i) ASSERT_TRUE(b.TryTake(0));
  EXPECT_FALSE(b.TryTake(0));
  EXPECT_EQ(b.NextAvailable(0), kSecond);
}

TEST(TokenBucket, ScaleHalvesRate) {
  TokenBucket b(10, kSecond, 1, 0);
  ASSERT_TRUE(b.TryTake(0));
  b.SetScale(500, 0);
  EXPECT_EQ(b.NextAvailable(0), 200'000u);
  b.SetScale(1000, 100'000);  // half a token earned so far at half rate
  EXPECT_EQ(b.NextAvailable(100'000), 150'000u);
}

TEST(TokenBucket, RateWithinOnePercentOverLongInterval) {
  for (uint64_t rate : {1ull, 7ull, 100ull, 999ull, 25'000ull}) {
    TokenBucket b(rate, kSecond, 0, 0);
    const Micros end = 2000 * kSecond;
    uint64_t taken = 0;
    // A consumer that wakes only when NextAvailable says so.
    for (Micros t = 0; t <= end; t = b.NextAvailable(t)) {
      while (b.TryTake(t)) ++taken;
    }
    const double expected =
        static_cast<double>(rate) * 2000 + static_cast<double>(rate);  // + burst
    EXPECT_NEAR(static_cast<double>(taken), expected, expected * 0.01) << rate;
  }
}

}  // namespace
}  // namespace sluice::queue
