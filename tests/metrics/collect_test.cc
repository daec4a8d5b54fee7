// CollectDestinations over a real queue::QueueSet: depth, deferrals, ages
// and every shaping state are read from the queues as they are.
#include <string>

#include "absl/functional/function_ref.h"
#include "gtest/gtest.h"
#include "sluice/metrics/top_destinations.h"
#include "sluice/queue/queue_set.h"

namespace sluice::metrics {
namespace {

using queue::Job;
using queue::Micros;

Job MakeJob(Micros queued, uint64_t n, uint32_t recipients = 1) {
  Job j;
  j.message = base::QueueId((queued << 8) | (n & 0xff));
  for (uint32_t r = 0; r < recipients; ++r) j.recipients.push_back(r);
  return j;
}

const DestinationRow* Find(const ShardSnapshot& s, const std::string& domain) {
  for (const DestinationRow& r : s.top) {
    if (r.domain == domain) return &r;
  }
  return nullptr;
}

TEST(CollectDestinations, ReadsDepthAgesAndShapingStates) {
  queue::ShapeParams one;
  one.max_connections = 1;
  auto policy = queue::ShapingPolicy::Create({{"slow.test", false, one}});
  ASSERT_TRUE(policy.ok());
  queue::QueueSet set(std::move(*policy), queue::RetrySchedule());
  const Micros now = 1'000'000'000;
  for (uint64_t i = 0; i < 30; ++i)
    set.Enqueue("big.test", MakeJob(now - 60'000'000 + i, i, 2), now);
  for (uint64_t i = 0; i < 5; ++i) {
    set.EnqueueDeferred("retry.test", MakeJob(now - 7'000'000, i), now + 600'000'000, now);
  }
  set.Enqueue("slow.test", MakeJob(now, 1), now);
  set.Enqueue("slow.test", MakeJob(now, 2), now);
  queue::DomainQueue& slow = *set.Find("slow.test");
  ASSERT_TRUE(slow.MayOpenConnection(now).ok());
  const queue::ConnectionId c = slow.OpenConnection(now);  // its one slot: the rest waits
  ASSERT_TRUE(slow.TakeReady(c, now).has_value());
  set.Enqueue("paused.test", MakeJob(now, 3), now);
  set.Suspend("paused.test", now);
  set.Enqueue("held.test", MakeJob(now, 4), now);
  set.Find("held.test")->HoldAll();
  set.Enqueue("busy.test", MakeJob(now, 5), now);
  ASSERT_TRUE(set.Find("busy.test")->ReportConnectionReply({421, "try later"}, now));

  ShardSnapshot s;
  std::vector<DestinationSample> scratch;
  CollectDestinations([&](absl::FunctionRef<void(queue::DomainQueue&)> f) { set.ForEach(f); }, now,
                      kTopDestinations, scratch, s);
  EXPECT_EQ(s.domains_queued, 6u);
  EXPECT_EQ(s.domains_suspended, 1u);
  EXPECT_EQ(s.domains_held, 1u);
  EXPECT_EQ(s.domains_backoff, 1u);
  EXPECT_EQ(s.domains_throttled, 1u);  // slow.test: ready mail, no slot
  ASSERT_FALSE(s.top.empty());
  EXPECT_EQ(s.top[0].domain, "big.test");
  EXPECT_EQ(s.top[0].recipients, 60u);
  EXPECT_EQ(s.top[0].messages, 30u);
  EXPECT_EQ(s.top[0].oldest_us, now - 60'000'000);
  const DestinationRow* retry = Find(s, "retry.test");
  ASSERT_NE(retry, nullptr);
  EXPECT_EQ(retry->deferred, 5u);
  EXPECT_EQ(retry->oldest_us, now - 7'000'000);
  const DestinationRow* slow_row = Find(s, "slow.test");
  ASSERT_NE(slow_row, nullptr);
  EXPECT_EQ(slow_row->recipients, 1u);  // one in flight, not queued
  EXPECT_EQ(slow_row->connections, 1u);
  EXPECT_TRUE(Find(s, "paused.test")->suspended);
  EXPECT_TRUE(Find(s, "held.test")->held);
  EXPECT_LT(Find(s, "busy.test")->limit_permille, 1000u);
  EXPECT_EQ(s.other.recipients, 0u);  // six domains: all named

  // The big one drains: its oldest moves on, its depth follows.
  queue::DomainQueue& big = *set.Find("big.test");
  const queue::ConnectionId bc = big.OpenConnection(now);
  for (int i = 0; i < 10; ++i) {
    auto j = big.TakeReady(bc, now);
    ASSERT_TRUE(j.has_value());
    j->recipients.clear();
    big.Report(bc, std::move(*j), {250, "ok"}, now);
  }
  ShardSnapshot s2;
  CollectDestinations([&](absl::FunctionRef<void(queue::DomainQueue&)> f) { set.ForEach(f); }, now,
                      kTopDestinations, scratch, s2);
  EXPECT_EQ(s2.top[0].recipients, 40u);
  EXPECT_EQ(s2.top[0].oldest_us, now - 60'000'000 + 10);

  // server.metrics_top_destinations = 1: the deepest, the most deferred
  // of the rest, and the others summed.
  ShardSnapshot s3;
  CollectDestinations([&](absl::FunctionRef<void(queue::DomainQueue&)> f) { set.ForEach(f); }, now,
                      1, scratch, s3);
  ASSERT_EQ(s3.top.size(), 2u);
  EXPECT_EQ(s3.top[0].domain, "big.test");
  EXPECT_EQ(s3.top[1].domain, "retry.test");
  EXPECT_EQ(s3.other.recipients, 4u);  // slow, paused, held, busy: one each
}

}  // namespace
}  // namespace sluice::metrics
