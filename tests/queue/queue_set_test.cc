// QueueSet: the wake-up heap (a throttled backlog costs O(1) per Due),
// shared MX budgets, admin operations.
#include "sluice/queue/queue_set.h"

#include "gtest/gtest.h"

namespace sluice::queue {
namespace {

Job MakeJob(Micros queued, uint64_t n) {
  Job j;
  j.message = base::QueueId((queued << 8) | (n & 0xff));
  j.recipients.push_back(0);
  return j;
}

ShapeParams Rate(uint32_t per_second) {
  ShapeParams p;
  p.messages_per_second = per_second;
  p.message_burst = 1;
  p.max_messages_per_connection = 0;
  return p;
}

TEST(QueueSet, ThrottledBacklogCostsNothingUntilTheNextToken) {
  // 1,000 domains × 101 messages, each domain at 1 message/s.
  auto policy = ShapingPolicy::Create({{"*", false, Rate(1)}});
  ASSERT_TRUE(policy.ok());
  QueueSet set(std::move(*policy), RetrySchedule());
  Micros now = 0;
  for (int d = 0; d < 1000; ++d) {
    const std::string domain = "d" + std::to_string(d) + ".example";
    for (uint64_t i = 0; i < 101; ++i) set.Enqueue(domain, MakeJob(1, i), now);
  }
  EXPECT_EQ(set.domain_count(), 1000u);
  // Every domain is due once; each opens a connection and spends its token.
  std::vector<DomainQueue*> due;
  set.Due(now, due);
  ASSERT_EQ(due.size(), 1000u);
  std::vector<std::pair<DomainQueue*, ConnectionId>> conns;
  for (DomainQueue* q : due) {
    const ConnectionId c = q->OpenConnection(now);
    auto job = q->TakeReady(c, now);
    ASSERT_TRUE(job);
    job->recipients.clear();
    q->Report(c, std::move(*job), {250, "ok"}, now);
    conns.emplace_back(q, c);
    set.Reschedule(*q, now);
  }
  EXPECT_EQ(set.NextWakeup(), kSecond);
  // 100,000 messages wait. Due before the next token: nothing, one entry looked at.
  size_t waiting = 0;
  set.ForEach([&](DomainQueue& q) { waiting += q.ready_count(); });
  EXPECT_EQ(waiting, 100'000u);
  for (Micros t : {Micros{1}, kSecond / 2, kSecond - 1}) {
    due.clear();
    set.Due(t, due);
    EXPECT_TRUE(due.empty());
    EXPECT_EQ(set.last_due_touched(), 1u);
  }
  due.clear();
  set.Due(kSecond, due);
  EXPECT_EQ(due.size(), 1000u);
}

TEST(QueueSet, DeferredDomainWakesAtRetryTime) {
  QueueSet set{ShapingPolicy(), RetrySchedule()};
  set.EnqueueDeferred("a.example", MakeJob(1, 1), 5000, 0);
  set.EnqueueDeferred("b.example", MakeJob(1, 2), 3000, 0);
  EXPECT_EQ(set.NextWakeup(), 3000u);
  std::vector<DomainQueue*> due;
  set.Due(2999, due);
  EXPECT_TRUE(due.empty());
  set.Due(3000, due);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0]->domain(), "b.example");
  EXPECT_EQ(due[0]->ready_count(), 1u);
}

TEST(QueueSet, SuspendResumeFlushByName) {
  QueueSet set{ShapingPolicy(), RetrySchedule()};
  set.Enqueue("A.Example", MakeJob(1, 1), 0);
  set.EnqueueDeferred("a.example", MakeJob(1, 2), kHour, 0);
  ASSERT_NE(set.Find("a.EXAMPLE."), nullptr);
  EXPECT_TRUE(set.Suspend("a.example", 0));
  std::vector<DomainQueue*> due;
  set.Due(2 * kHour, due);
  EXPECT_TRUE(due.empty());
  EXPECT_TRUE(set.Resume("a.example", 2 * kHour));
  EXPECT_TRUE(set.Flush("a.example", 2 * kHour));
  set.Due(2 * kHour, due);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0]->ready_count(), 2u);
  EXPECT_FALSE(set.Suspend("nosuch.example", 0));
}

TEST(QueueSet, MxHostSharesOneBudget) {
  ShapeParams mx;
  mx.max_connections = 2;
  auto policy = ShapingPolicy::Create({{"*.provider.net", true, mx}});
  ASSERT_TRUE(policy.ok());
  QueueSet set(std::move(*policy), RetrySchedule());
  std::vector<DomainQueue*> qs;
  for (int d = 0; d < 3; ++d) {
    const std::string domain = "hosted" + std::to_string(d) + ".example";
    set.Enqueue(domain, MakeJob(1, static_cast<uint64_t>(d)), 0);
    DomainQueue& q = *set.Find(domain);
    set.BindMx(q, "MX1.provider.net", 0);
    qs.push_back(&q);
  }
  const ConnectionId c0 = qs[0]->OpenConnection(0);
  const ConnectionId c1 = qs[1]->OpenConnection(0);
  (void)c1;
  EXPECT_EQ(qs[2]->MayOpenConnection(0).gate, Gate::kSlotsFull);
  set.Reschedule(*qs[2], 0);
  EXPECT_EQ(qs[2]->scheduled_at, kNever);  // waits for an event, not a timer
  set.CloseConnection(*qs[0], c0, 0);      // frees a slot: the sibling is rescheduled
  EXPECT_EQ(qs[2]->scheduled_at, 0u);
  EXPECT_TRUE(qs[2]->MayOpenConnection(0).ok());
  // A 421 on one domain slows the whole provider.
  auto job = qs[1]->TakeReady(c1, 0);
  ASSERT_TRUE(job);
  qs[1]->Report(c1, std::move(*job), {421, "slow down"}, 0);
  EXPECT_TRUE(qs[2]->shared_gate()->backing_off());
}

TEST(QueueSet, StaleEntriesAreCompacted) {
  QueueSet set{ShapingPolicy(), RetrySchedule()};
  set.EnqueueDeferred("a.example", MakeJob(1, 1), 1'000'000, 0);
  DomainQueue& q = *set.Find("a.example");
  for (Micros t = 999'999; t > 990'000; --t) {
    q.EnqueueDeferred(MakeJob(1, 2), t);
    set.Reschedule(q, 0);
  }
  EXPECT_LT(set.heap_size(), 200u);
  std::vector<DomainQueue*> due;
  set.Due(990'001, due);
  EXPECT_EQ(due.size(), 1u);
}

}  // namespace
}  // namespace sluice::queue
