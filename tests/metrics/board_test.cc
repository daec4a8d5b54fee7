// metrics::MetricsBoard: a reader on another thread always sees a whole
// snapshot (never a torn one), and the newest once publishing stops.
#include <atomic>
#include <thread>

#include "gtest/gtest.h"
#include "sluice/metrics/snapshot.h"

namespace sluice::metrics {
namespace {

TEST(MetricsBoard, EmptyUntilPublished) {
  MetricsBoard board(2);
  EXPECT_EQ(board.shards(), 2);
  EXPECT_EQ(board.Latest(0), nullptr);
  auto s = std::make_shared<ShardSnapshot>();
  s->shard = 1;
  board.Publish(1, s);
  EXPECT_EQ(board.Latest(0), nullptr);
  ASSERT_NE(board.Latest(1), nullptr);
  EXPECT_EQ(board.Latest(1)->shard, 1);
}

TEST(MetricsBoard, ReadersSeeWholeSnapshotsWhilePublishing) {
  MetricsBoard board(1);
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (uint64_t i = 1; i <= 20000; ++i) {
      auto s = std::make_shared<ShardSnapshot>();
      s->delivered = i;
      s->bounced = i;  // a reader must never see the two differ
      s->top.push_back(DestinationRow{.domain = "d", .recipients = i});
      board.Publish(0, std::move(s));
    }
    done = true;
  });
  uint64_t last = 0;
  while (!done.load()) {
    std::shared_ptr<const ShardSnapshot> s = board.Latest(0);
    if (s == nullptr) continue;
    ASSERT_EQ(s->delivered, s->bounced);
    ASSERT_EQ(s->top.at(0).recipients, s->delivered);
    ASSERT_GE(s->delivered, last);  // never goes back
    last = s->delivered;
  }
  writer.join();
  EXPECT_EQ(board.Latest(0)->delivered, 20000u);
}

}  // namespace
}  // namespace sluice::metrics
