// Mailboxes between real threads, woken through eventfd read by io_uring,
// as shards use them.
#include "sluice/io/mailbox.h"

#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "sluice/io/ring.h"

namespace sluice::io {
namespace {

struct Note {
  int source;
  uint64_t seq;
};

class WakeRead final : public Completion {
 public:
  void OnComplete(int, uint32_t) override { fired = true; }
  bool fired = false;
  uint64_t value = 0;
};

TEST(Mailboxes, FullRingRefusesInsteadOfGrowing) {
  Mailboxes<int> boxes(2, 4);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(boxes.Post(0, 1, i));
  EXPECT_FALSE(boxes.Post(0, 1, 99));
  EXPECT_TRUE(boxes.Post(1, 1, 7));  // another source has its own ring
  std::vector<int> got;
  EXPECT_EQ(boxes.Drain(1, [&](int v) { got.push_back(v); }), 5u);
  EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 3, 7}));
}

TEST(Mailboxes, ThreeProducersOneIoUringConsumer) {
  constexpr int kShards = 4;  // shard 0 consumes, 1..3 produce
  constexpr uint64_t kPerProducer = 200'000;
  Mailboxes<Note> boxes(kShards, 1024);
  std::vector<std::thread> producers;
  for (int s = 1; s < kShards; ++s) {
    producers.emplace_back([&, s] {
      for (uint64_t i = 0; i < kPerProducer;) {
        if (boxes.Post(s, 0, Note{s, i})) {
          ++i;
        } else {
          std::this_thread::yield();
        }
      }
    });
  }
  auto ring = Ring::Create(64);
  ASSERT_TRUE(ring.ok());
  std::vector<uint64_t> next(kShards, 0);
  uint64_t total = 0;
  WakeRead wake;
  int wakes = 0;
  while (total < kPerProducer * (kShards - 1)) {
    wake.fired = false;
    (*ring)->Read(&wake, boxes.wake_fd(0), &wake.value, 8, 0);
    while (!wake.fired) (*ring)->RunOnce(1000);
    ++wakes;
    total += boxes.Drain(0, [&](Note n) {
      ASSERT_EQ(n.seq, next[static_cast<size_t>(n.source)]);  // per-source order kept
      ++next[static_cast<size_t>(n.source)];
    });
  }
  for (auto& t : producers) t.join();
  EXPECT_EQ(total, kPerProducer * (kShards - 1));
  // Wakes coalesce: far fewer reads than messages.
  EXPECT_LT(static_cast<uint64_t>(wakes), total);
}

// Shards that registered their rings wake each other with MSG_RING: the
// target sees a completion of its `wake` and no eventfd is ever written.
TEST(Mailboxes, RingToRingWakesNeedNoEventfd) {
  constexpr uint64_t kMessages = 200'000;
  {
    auto probe = Ring::Create(8);
    ASSERT_TRUE(probe.ok());
    if (!(*probe)->can_post_messages()) GTEST_SKIP() << "kernel without IORING_OP_MSG_RING";
  }
  Mailboxes<Note> boxes(2, 1024);
  std::atomic<int> registered{0};
  WakeRead wake;
  uint64_t total = 0;
  int wakes = 0;
  std::thread consumer([&] {
    auto ring = Ring::Create(64);
    ASSERT_TRUE(ring.ok());
    boxes.UseRing(0, ring->get(), &wake);
    ++registered;
    uint64_t next = 0;
    while (total < kMessages) {
      wake.fired = false;
      while (!wake.fired) (*ring)->RunOnce(5000);
      ++wakes;
      total += boxes.Drain(0, [&](Note n) { ASSERT_EQ(n.seq, next++); });
    }
  });
  auto ring = Ring::Create(64);
  ASSERT_TRUE(ring.ok());
  WakeRead unused;
  boxes.UseRing(1, ring->get(), &unused);
  while (registered.load() == 0) std::this_thread::yield();
  for (uint64_t i = 0; i < kMessages;) {
    if (boxes.Post(1, 0, Note{1, i})) {
      ++i;
    } else {
      (*ring)->RunOnce(0);  // submits the MSG_RING that wakes the consumer
    }
    if (i % 64 == 0) (*ring)->RunOnce(0);
  }
  (*ring)->RunOnce(0);
  consumer.join();
  EXPECT_EQ(total, kMessages);
  EXPECT_LT(static_cast<uint64_t>(wakes), total);
  // Nothing went through the eventfd.
  uint64_t value = 0;
  EXPECT_EQ(read(boxes.wake_fd(0), &value, sizeof value), -1);
}

}  // namespace
}  // namespace sluice::io
