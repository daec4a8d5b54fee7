// io::Ring on a real io_uring: callbacks run after reaping, never while
// preparing, and a full completion queue never makes Prepare spin.
#include "sluice/io/ring.h"

#include <gtest/gtest.h>

#include <vector>

namespace sluice::io {
namespace {

struct Counter final : Completion {
  int calls = 0;
  int last_result = -1;
  void OnComplete(int result, uint32_t) override {
    ++calls;
    last_result = result;
  }
};

TEST(RingTest, NopCompletesThroughRunOnce) {
  auto ring = Ring::Create(8);
  ASSERT_TRUE(ring.ok()) << ring.status();
  Counter c;
  (*ring)->Nop(&c);
  EXPECT_EQ(c.calls, 0);  // nothing runs while preparing
  EXPECT_EQ((*ring)->RunOnce(1000), 1);
  EXPECT_EQ(c.calls, 1);
  EXPECT_EQ(c.last_result, 0);
}

// Far more operations than the CQ holds (8 SQEs, 32 CQEs), prepared without
// running the loop: the submissions that find the CQ full must reap it, not
// retry forever, and every callback must still run exactly once.
TEST(RingTest, PrepareNeverSpinsOnAFullCompletionQueue) {
  auto ring = Ring::Create(8);
  ASSERT_TRUE(ring.ok()) << ring.status();
  (*ring)->SimulateBusyCompletionQueue(16);  // what kernels before 5.19 do
  constexpr int kOps = 5000;
  std::vector<Counter> counters(kOps);
  for (Counter& c : counters) (*ring)->Nop(&c);
  int ran = 0;
  for (int turn = 0; turn < 1000 && ran < kOps; ++turn) ran += (*ring)->RunOnce(100);
  EXPECT_EQ(ran, kOps);
  for (const Counter& c : counters) ASSERT_EQ(c.calls, 1);
}

// A callback that prepares more work while the loop runs: the new
// completions run in a later RunOnce, each once.
TEST(RingTest, CallbacksMayPrepareMoreWork) {
  auto ring = Ring::Create(4);
  ASSERT_TRUE(ring.ok()) << ring.status();
  struct Chain final : Completion {
    Ring* ring = nullptr;
    int remaining = 300;
    int calls = 0;
    void OnComplete(int, uint32_t) override {
      ++calls;
      if (--remaining > 0) {
        for (int i = 0; i < 3 && remaining > 0; ++i) ring->Nop(nullptr);
        ring->Nop(this);
      }
    }
  } chain;
  chain.ring = ring->get();
  (*ring)->Nop(&chain);
  for (int turn = 0; turn < 10000 && chain.remaining > 0; ++turn) (*ring)->RunOnce(100);
  EXPECT_EQ(chain.remaining, 0);
  EXPECT_EQ(chain.calls, 300);
}

}  // namespace
}  // namespace sluice::io
