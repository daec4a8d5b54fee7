#include "sluice/base/spsc_ring.h"

#include <memory>
#include <thread>

#include "gtest/gtest.h"

namespace sluice::base {
namespace {

TEST(SpscRing, FullAndEmptyAreReported) {
  SpscRing<int> ring(4);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(ring.TryPush(i));
  EXPECT_FALSE(ring.TryPush(99));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(ring.TryPop(), i);
  EXPECT_FALSE(ring.TryPop());
}

TEST(SpscRing, OwnsMoveOnlyValues) {
  SpscRing<std::unique_ptr<int>> ring(2);
  EXPECT_TRUE(ring.TryPush(std::make_unique<int>(7)));
  auto v = ring.TryPop();
  ASSERT_TRUE(v && *v);
  EXPECT_EQ(**v, 7);
  EXPECT_TRUE(ring.TryPush(std::make_unique<int>(8)));  // destroyed with the ring
}

TEST(SpscRing, TwoThreadsPassEveryValueInOrder) {
  constexpr uint64_t kCount = 2'000'000;
  SpscRing<uint64_t> ring(1024);
  std::thread producer([&] {
    for (uint64_t i = 0; i < kCount;) {
      if (ring.TryPush(i)) ++i;
    }
  });
  uint64_t expected = 0;
  while (expected < kCount) {
    if (auto v = ring.TryPop()) {
      ASSERT_EQ(*v, expected);
      ++expected;
    }
  }
  producer.join();
}

}  // namespace
}  // namespace sluice::base
