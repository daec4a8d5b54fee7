// Retry schedule values, cap, jitter determinism, expiry.
#include "sluice/queue/retry_schedule.h"

#include "gtest/gtest.h"

namespace sluice::queue {
namespace {

TEST(RetrySchedule, DefaultExponentialCapped) {
  RetryConfig c;
  c.jitter_permille = 0;
  RetrySchedule r(c);
  EXPECT_EQ(r.BaseInterval(1), 5 * kMinute);
  EXPECT_EQ(r.BaseInterval(2), 10 * kMinute);
  EXPECT_EQ(r.BaseInterval(3), 20 * kMinute);
  EXPECT_EQ(r.BaseInterval(4), 40 * kMinute);
  EXPECT_EQ(r.BaseInterval(5), 80 * kMinute);
  EXPECT_EQ(r.BaseInterval(6), 160 * kMinute);
  EXPECT_EQ(r.BaseInterval(7), 4 * kHour);
  EXPECT_EQ(r.BaseInterval(1000), 4 * kHour);
}

TEST(RetrySchedule, ExplicitIntervals) {
  RetryConfig c;
  c.jitter_permille = 0;
  c.intervals = {1 * kMinute, 15 * kMinute, 1 * kHour};
  RetrySchedule r(c);
  EXPECT_EQ(r.BaseInterval(1), kMinute);
  EXPECT_EQ(r.BaseInterval(2), 15 * kMinute);
  EXPECT_EQ(r.BaseInterval(3), kHour);
  EXPECT_EQ(r.BaseInterval(9), kHour);
  EXPECT_TRUE(RetrySchedule::Validate(c).ok());
  c.intervals.push_back(0);
  EXPECT_FALSE(RetrySchedule::Validate(c).ok());
}

TEST(RetrySchedule, JitterIsDeterministicAndBounded) {
  RetrySchedule r;  // 10% jitter
  bool differs = false;
  for (uint64_t id = 1; id < 200; ++id) {
    const Micros a = r.Interval(base::QueueId(id), 1);
    EXPECT_EQ(a, r.Interval(base::QueueId(id), 1));
    EXPECT_LE(a, 5 * kMinute);
    EXPECT_GE(a, 5 * kMinute - 30 * kSecond);
    if (a != r.Interval(base::QueueId(1), 1)) differs = true;
  }
  EXPECT_TRUE(differs);
}

TEST(RetrySchedule, ExpiresAtMaxAge) {
  RetryConfig c;
  c.jitter_permille = 0;
  RetrySchedule r(c);
  const Micros q = 1000 * kSecond;
  RetryDecision d = r.Next(base::QueueId(1), 1, q, q + kSecond);
  EXPECT_FALSE(d.expire);
  EXPECT_EQ(d.next, q + kSecond + 5 * kMinute);
  // Walk the whole life of a job that always fails.
  Micros now = q;
  uint32_t failures = 0;
  int attempts = 0;
  for (;;) {
    ++attempts;
    d = r.Next(base::QueueId(1), ++failures, q, now);
    if (d.expire) break;
    ASSERT_GT(d.next, now);
    ASSERT_LE(d.next, q + 5 * kDay);
    now = d.next;
  }
  EXPECT_EQ(now, q + 5 * kDay);  // the last attempt at the maximum age exactly
  // Failures at 0, 5, 15, 35, 75, 155, 315 min, then every 4 h up to
  // 7035 min (28 more), then the clamped one at 7200 min (5 days): 36.
  EXPECT_EQ(attempts, 7 + 28 + 1);
}

}  // namespace
}  // namespace sluice::queue
