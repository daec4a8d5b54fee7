// FileNames (delivery/file_names.h): the engine's interned record file names
// go once the last message using them finishes.
#include "sluice/delivery/file_names.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace sluice::delivery {
namespace {

TEST(FileNamesTest, SharedNameHasOneIndexAndGoesWithItsLastUser) {
  FileNames names;
  const uint32_t a = names.Acquire("0AAAA.seg");
  const uint32_t b = names.Acquire("0AAAA.seg");  // another record in that segment
  EXPECT_EQ(a, b);
  EXPECT_EQ(names.users(a), 2u);
  EXPECT_EQ(names.name(a), "0AAAA.seg");
  const uint32_t c = names.Acquire("0BBBB.msg");
  EXPECT_NE(c, a);
  EXPECT_EQ(names.size(), 2u);
  names.Release(a);
  EXPECT_EQ(names.size(), 2u);
  EXPECT_EQ(names.name(b), "0AAAA.seg");  // still used
  names.Release(b);
  EXPECT_EQ(names.size(), 1u);
  EXPECT_EQ(names.users(a), 0u);
  EXPECT_EQ(names.name(c), "0BBBB.msg");
  names.Release(c);
  EXPECT_EQ(names.size(), 0u);
}

TEST(FileNamesTest, FreedIndexesAreReused) {
  FileNames names;
  const uint32_t keep = names.Acquire("keep.seg");  // holds the table open
  const uint32_t a = names.Acquire("a.msg");
  names.Release(a);
  const uint32_t b = names.Acquire("b.msg");
  EXPECT_EQ(b, a);
  EXPECT_EQ(names.name(b), "b.msg");
  EXPECT_EQ(names.name(keep), "keep.seg");
}

// What the soak does to it: a stream of messages, each in its own file or
// in a few segments, a bounded number queued at a time. The table follows
// the queue, not the traffic, and is empty when every message finished.
TEST(FileNamesTest, FollowsTheQueueNotTheTraffic) {
  FileNames names;
  std::vector<uint32_t> queued;
  size_t most = 0;
  for (int i = 0; i < 100'000; ++i) {
    const std::string file =
        i % 10 == 0 ? "m" + std::to_string(i) + ".msg" : "s" + std::to_string(i / 25'000) + ".seg";
    queued.push_back(names.Acquire(file));
    if (queued.size() > 500) {  // the oldest message finishes
      names.Release(queued.front());
      queued.erase(queued.begin());
    }
    most = std::max(most, names.size());
  }
  EXPECT_LE(most, 60u);  // ~50 .msg names and a segment or two among 500 queued
  for (uint32_t i : queued) names.Release(i);
  EXPECT_EQ(names.size(), 0u);
}

TEST(FileNamesDeathTest, ReleasingMoreThanAcquiredIsABug) {
  FileNames names;
  const uint32_t a = names.Acquire("x.seg");
  names.Acquire("y.seg");
  names.Release(a);
  EXPECT_DEATH(names.Release(a), "");
}

}  // namespace
}  // namespace sluice::delivery
