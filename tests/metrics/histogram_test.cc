// base::Histogram: bucket edges are inclusive upper bounds, +Inf catches
// the rest, merge adds, copies are independent.
#include "sluice/base/histogram.h"

#include "gtest/gtest.h"

namespace sluice::base {
namespace {

constexpr std::array<uint64_t, 3> kBounds = {10, 100, 1000};

TEST(Histogram, UpperBoundsAreInclusive) {
  Histogram h(kBounds);
  for (uint64_t v : {0, 10, 11, 100, 101, 1000, 1001, 5000000}) h.Record(v);
  EXPECT_EQ(h.bucket(0), 2u);  // 0, 10
  EXPECT_EQ(h.bucket(1), 2u);  // 11, 100
  EXPECT_EQ(h.bucket(2), 2u);  // 101, 1000
  EXPECT_EQ(h.bucket(3), 2u);  // +Inf
  EXPECT_EQ(h.count(), 8u);
  EXPECT_EQ(h.sum_us(), 0u + 10 + 11 + 100 + 101 + 1000 + 1001 + 5000000);
}

TEST(Histogram, CopiesAreSnapshotsAndMergeAdds) {
  Histogram h(kBounds);
  h.Record(5);
  const Histogram copy = h;
  h.Record(500);
  EXPECT_EQ(copy.count(), 1u);
  EXPECT_EQ(h.count(), 2u);
  Histogram total(kBounds);
  ASSERT_TRUE(total.same_bounds(h));
  total.Merge(h);
  total.Merge(copy);
  EXPECT_EQ(total.bucket(0), 2u);
  EXPECT_EQ(total.bucket(2), 1u);
  EXPECT_EQ(total.sum_us(), 510u);
  EXPECT_FALSE(Histogram(kDnsBoundsUs).same_bounds(h));
}

TEST(Histogram, StaticTablesIncrease) {
  for (std::span<const uint64_t> b :
       {std::span<const uint64_t>(kCommitBoundsUs), std::span<const uint64_t>(kDnsBoundsUs),
        std::span<const uint64_t>(kDeliveryBoundsUs)}) {
    for (size_t i = 1; i < b.size(); ++i) EXPECT_LT(b[i - 1], b[i]);
  }
}

}  // namespace
}  // namespace sluice::base
