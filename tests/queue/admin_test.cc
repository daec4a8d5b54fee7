// DomainQueue and QueueSet administration: holds (by domain, by message id
// through the QueueSet's held set), timed suspensions that end by
// themselves, and the per-domain table of last-error texts.
#include <vector>

#include "gtest/gtest.h"
#include "sluice/queue/domain_queue.h"
#include "sluice/queue/queue_set.h"

namespace sluice::queue {
namespace {

base::QueueId IdAt(Micros t, uint64_t n = 0) { return base::QueueId((t << 8) | (n & 0xff)); }

Job MakeJob(uint64_t n, std::initializer_list<uint32_t> rcpts = {0}) {
  Job j;
  j.message = IdAt(1, n);
  j.recipients.assign(rcpts.begin(), rcpts.end());
  return j;
}

RetrySchedule NoJitter() {
  RetryConfig c;
  c.jitter_permille = 0;
  return RetrySchedule(c);
}

size_t Count(const DomainQueue& q, JobState state) {
  size_t n = 0;
  q.ForEachJob([&](const Job&, JobState s, Micros) { n += s == state; });
  return n;
}

TEST(DomainQueueAdmin, HoldAllTakesQueuedAndLaterJobsOutOfService) {
  RetrySchedule retry = NoJitter();
  const ShapeParams defaults;
  DomainQueue q("example.com", defaults, &retry);
  q.Enqueue(MakeJob(1, {0, 1}));
  q.EnqueueDeferred(MakeJob(2), kHour);
  EXPECT_EQ(q.HoldAll(), 3u);  // recipients
  EXPECT_TRUE(q.held_all());
  q.Enqueue(MakeJob(3));  // arrives while the domain is held
  EXPECT_EQ(q.ready_count(), 0u);
  EXPECT_EQ(q.deferred_count(), 0u);
  EXPECT_EQ(q.held_count(), 3u);
  EXPECT_EQ(q.NextWakeup(0), kNever) << "held jobs cost no wake-ups";
  EXPECT_EQ(q.MayOpenConnection(0).gate, Gate::kNoWork);
  EXPECT_EQ(Count(q, JobState::kHeld), 3u);
  const DomainStats s = q.Stats();
  EXPECT_EQ(s.held, 3u);
  EXPECT_EQ(s.recipients, 4u);
  EXPECT_TRUE(s.held_all);
  EXPECT_EQ(q.ReleaseAll(), 4u);
  EXPECT_EQ(q.ready_count(), 3u) << "released jobs are ready at once, deferred ones too";
  EXPECT_EQ(q.held_count(), 0u);
  EXPECT_FALSE(q.held_all());
}

TEST(DomainQueueAdmin, HeldJobsAreDrainedAndRemoved) {
  RetrySchedule retry = NoJitter();
  const ShapeParams defaults;
  DomainQueue q("example.com", defaults, &retry);
  q.Enqueue(MakeJob(1));
  q.Enqueue(MakeJob(2));
  q.HoldAll();
  std::vector<Job> removed = q.RemoveMessage(IdAt(1, 1));
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(q.held_count(), 1u);
  EXPECT_EQ(q.DrainAll().size(), 1u);
  EXPECT_EQ(q.held_count(), 0u);
  EXPECT_TRUE(q.empty());
}

TEST(QueueSetAdmin, HoldByIdCoversEveryDomainAndTheJobThatComesBack) {
  QueueSet set{ShapingPolicy(), NoJitter()};
  set.Enqueue("a.example", MakeJob(1), 0);
  set.Enqueue("b.example", MakeJob(1, {3}), 0);
  set.Enqueue("b.example", MakeJob(2), 0);
  EXPECT_EQ(set.HoldMessage(IdAt(1, 1), 0), 2u);
  EXPECT_TRUE(set.IsHeldMessage(IdAt(1, 1)));
  DomainQueue& b = *set.Find("b.example");
  EXPECT_EQ(b.held_count(), 1u);
  EXPECT_EQ(b.ready_count(), 1u);
  // A job of the held message that was in flight and is deferred: held too.
  const ConnectionId c = b.OpenConnection(0);
  auto job = b.TakeReady(c, 0);
  ASSERT_TRUE(job.has_value());
  Job again = MakeJob(1, {4});
  b.EnqueueDeferred(again, kHour);
  EXPECT_EQ(b.held_count(), 2u);
  // The domain hold and the id hold are separate: releasing the domain
  // leaves the message held.
  b.HoldAll();
  EXPECT_EQ(b.ReleaseAll(), 0u);
  EXPECT_EQ(set.ReleaseMessage(IdAt(1, 1), 0), 3u);
  EXPECT_FALSE(set.IsHeldMessage(IdAt(1, 1)));
  EXPECT_EQ(set.ReleaseMessage(IdAt(1, 1), 0), 0u) << "not held any more";
  EXPECT_EQ(b.held_count(), 0u);
  job->recipients.clear();
  b.Report(c, std::move(*job), {250, "ok"}, 0);
}

TEST(DomainQueueAdmin, TimedSuspensionEndsByItself) {
  RetrySchedule retry = NoJitter();
  const ShapeParams defaults;
  DomainQueue q("example.com", defaults, &retry);
  q.Enqueue(MakeJob(1));
  q.Suspend(10 * kSecond);
  EXPECT_TRUE(q.suspended_at(0));
  EXPECT_EQ(q.MayOpenConnection(5 * kSecond).gate, Gate::kSuspended);
  EXPECT_EQ(q.NextWakeup(5 * kSecond), 10 * kSecond) << "wakes when the suspension ends";
  EXPECT_FALSE(q.suspended_at(10 * kSecond));
  EXPECT_TRUE(q.MayOpenConnection(10 * kSecond).ok());
  EXPECT_EQ(q.NextWakeup(10 * kSecond), 10 * kSecond);
  EXPECT_FALSE(q.suspended()) << "NextWakeup lifted the ended suspension";
  q.Suspend();  // until resumed
  EXPECT_EQ(q.NextWakeup(kDay), kNever);
  q.Resume();
  EXPECT_FALSE(q.suspended_at(0));
}

TEST(DomainQueueAdmin, ErrorTextsAreInternedBoundedAndForgotten) {
  RetrySchedule retry = NoJitter();
  const ShapeParams defaults;
  DomainQueue q("example.com", defaults, &retry);
  EXPECT_EQ(q.ErrorText(0), "");
  const uint16_t a = q.InternError("451 4.7.1 try later");
  EXPECT_EQ(q.InternError("451 4.7.1 try later"), a);
  const uint16_t b = q.InternError("421 4.3.2 busy");
  EXPECT_NE(a, b);
  EXPECT_EQ(q.ErrorText(a), "451 4.7.1 try later");
  for (int i = 0; i < 100; ++i) q.InternError("text " + std::to_string(i));
  EXPECT_EQ(q.InternError("newest"), DomainQueue::kMaxErrorTexts)
      << "the last slot takes the overflow";
  EXPECT_EQ(q.ErrorText(DomainQueue::kMaxErrorTexts), "newest");
  EXPECT_EQ(q.ErrorText(a), "451 4.7.1 try later") << "the first texts stay";
  EXPECT_EQ(q.ErrorText(DomainQueue::kMaxErrorTexts + 1), "");
  // A job carries its index through a deferral; once the queue is empty the
  // table is forgotten.
  q.Enqueue(MakeJob(1));
  const ConnectionId c = q.OpenConnection(0);
  auto job = q.TakeReady(c, 0);
  job->last_error = b;
  q.Report(c, std::move(*job), {421, "busy"}, 0);
  std::vector<uint16_t> seen;
  q.ForEachJob([&](const Job& j, JobState, Micros) { seen.push_back(j.last_error); });
  EXPECT_EQ(seen, std::vector<uint16_t>{b});
  auto again = q.DrainAll();
  EXPECT_EQ(q.ErrorText(a), "") << "an empty queue forgets its texts";
  q.CloseConnection(c);
}

}  // namespace
}  // namespace sluice::queue
