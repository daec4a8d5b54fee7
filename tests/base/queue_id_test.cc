#include "sluice/base/queue_id.h"

#include <set>

#include "gtest/gtest.h"

namespace sluice::base {
namespace {

TEST(QueueId, TextRoundTripsAndSortsLikeNumbers) {
  QueueIdGenerator gen(3);
  std::string previous;
  for (uint64_t t = 1'700'000'000'000'000; t < 1'700'000'000'000'000 + 1000; t += 7) {
    QueueId id = gen.Next(t);
    std::string text = id.ToString();
    ASSERT_EQ(text.size(), QueueId::kTextSize);
    EXPECT_EQ(QueueId::Parse(text), id);
    EXPECT_EQ(id.shard(), 3);
    EXPECT_LT(previous, text);
    previous = text;
  }
}

TEST(QueueId, NeverRepeatsWhenTheClockStallsOrStepsBack) {
  QueueIdGenerator gen(0);
  std::set<uint64_t> seen;
  for (int i = 0; i < 1000; ++i) {
    uint64_t now = 5'000'000 - static_cast<uint64_t>(i % 3) * 1000;  // stalls and steps back
    EXPECT_TRUE(seen.insert(gen.Next(now).value()).second);
  }
}

TEST(QueueId, FloorFromTheSpoolWins) {
  QueueIdGenerator gen(1);
  gen.RaiseFloor(QueueId((uint64_t{9'000'000} << 8) | 1));
  EXPECT_GT(gen.Next(1'000).micros(), 9'000'000u);
}

TEST(QueueId, ShardsNeverCollide) {
  QueueIdGenerator a(0), b(1);
  EXPECT_NE(a.Next(42), b.Next(42));
}

TEST(QueueId, RejectsMalformedText) {
  EXPECT_FALSE(QueueId::Parse(""));
  EXPECT_FALSE(QueueId::Parse("0123456789AB"));
  EXPECT_FALSE(QueueId::Parse("0123456789ABU"));  // U is not in the alphabet
  EXPECT_FALSE(QueueId::Parse("Z123456789ABC"));  // overflows 64 bits
  EXPECT_TRUE(QueueId::Parse("0123456789abc"));   // case-insensitive
}

}  // namespace
}  // namespace sluice::base
