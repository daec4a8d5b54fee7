// DomainQueue: the gate (connection caps, per-connection limit, rate),
// outcomes (retry, expiry, backoff), suspend/resume/flush, stats.
#include "sluice/queue/domain_queue.h"

#include <algorithm>
#include <random>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "gtest/gtest.h"

namespace sluice::queue {
namespace {

// A queue id whose accept time is `t` microseconds.
base::QueueId IdAt(Micros t, uint64_t n = 0) { return base::QueueId((t << 8) | (n & 0xff)); }

Job MakeJob(Micros queued, uint64_t n = 0, std::initializer_list<uint32_t> rcpts = {0}) {
  Job j;
  j.message = IdAt(queued, n);
  j.recipients.assign(rcpts.begin(), rcpts.end());
  return j;
}

RetrySchedule NoJitter() {
  RetryConfig c;
  c.jitter_permille = 0;
  return RetrySchedule(c);
}

TEST(DomainQueue, JobIsCompact) { EXPECT_LE(sizeof(Job), 40u); }

TEST(DomainQueue, FifoThroughOneConnection) {
  RetrySchedule retry = NoJitter();
  const ShapeParams defaults;
  DomainQueue q("example.com", defaults, &retry);
  EXPECT_EQ(q.MayOpenConnection(0).gate, Gate::kNoWork);
  EXPECT_EQ(q.NextWakeup(0), kNever);
  for (uint64_t i = 0; i < 5; ++i) q.Enqueue(MakeJob(1, i, {static_cast<uint32_t>(i), 7}));
  EXPECT_EQ(q.NextWakeup(0), 0u);
  ASSERT_TRUE(q.MayOpenConnection(0).ok());
  const ConnectionId c = q.OpenConnection(0);
  for (uint64_t i = 0; i < 5; ++i) {
    auto job = q.TakeReady(c, 0);
    ASSERT_TRUE(job.has_value());
    EXPECT_EQ(job->message, IdAt(1, i));
    EXPECT_EQ(job->recipients.size(), 2u);
    EXPECT_EQ(q.MaySend(c, 0).gate, Gate::kBusy);
    job->recipients.clear();  // all delivered
    EXPECT_EQ(q.Report(c, std::move(*job), {250, "ok"}, 0).kind, ReportResult::kDone);
  }
  EXPECT_EQ(q.MaySend(c, 0).gate, Gate::kNoWork);
  q.CloseConnection(c);
  EXPECT_TRUE(q.empty());
}

TEST(DomainQueue, ForEachQueuedSeesReadyAndDeferredNotInFlight) {
  RetrySchedule retry = NoJitter();
  const ShapeParams defaults;
  DomainQueue q("example.com", defaults, &retry);
  Job failed = MakeJob(1, 0, {3, 4});
  failed.failures = 2;
  q.EnqueueDeferred(failed, 5'000'000);
  q.Enqueue(MakeJob(1, 1));
  q.Enqueue(MakeJob(1, 2));
  const ConnectionId c = q.OpenConnection(0);
  ASSERT_TRUE(q.TakeReady(c, 0).has_value());  // job 1 is in flight now
  std::vector<std::tuple<uint64_t, uint16_t, size_t, Micros>> seen;
  q.ForEachQueued([&](const Job& j, Micros due) {
    seen.emplace_back(j.message.value() & 0xff, j.failures, j.recipients.size(), due);
  });
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<std::tuple<uint64_t, uint16_t, size_t, Micros>>{{0, 2, 2, 5'000'000},
                                                                               {2, 0, 1, 0}}));
}

TEST(DomainQueue, PerConnectionMessageLimitAndImmediateReplacement) {
  RetrySchedule retry = NoJitter();
  ShapeParams p;
  p.max_connections = 1;
  p.max_messages_per_connection = 3;
  DomainQueue q("example.com", p, &retry);
  for (uint64_t i = 0; i < 7; ++i) q.Enqueue(MakeJob(1, i));
  int connections = 0, sent = 0;
  while (q.ready_count() > 0) {
    ASSERT_TRUE(q.MayOpenConnection(0).ok());
    const ConnectionId c = q.OpenConnection(0);
    ++connections;
    EXPECT_EQ(q.MayOpenConnection(0).gate, Gate::kSlotsFull);
    int on_this = 0;
    while (auto job = q.TakeReady(c, 0)) {
      job->recipients.clear();
      q.Report(c, std::move(*job), {250, "ok"}, 0);
      ++on_this;
      ++sent;
    }
    EXPECT_LE(on_this, 3);
    if (q.ready_count() > 0) {
      EXPECT_EQ(q.MaySend(c, 0).gate, Gate::kConnectionDone);
      EXPECT_EQ(q.NextWakeup(0), kNever);  // waits for the close, not polling
    }
    q.CloseConnection(c);
    if (q.ready_count() > 0) {
      EXPECT_EQ(q.NextWakeup(0), 0u);  // replaced at once
    }
  }
  EXPECT_EQ(sent, 7);
  EXPECT_EQ(connections, 3);
}

TEST(DomainQueue, ConnectionCapsNeverExceededUnderRandomLoad) {
  RetrySchedule retry = NoJitter();
  ShapeParams p;
  p.max_connections = 5;
  p.max_messages_per_connection = 4;
  p.connections_per_second = 20;
  p.messages_per_second = 200;
  p.backoff_duration = kSecond;
  p.recovery_successes = 5;
  DomainQueue q("example.com", p, &retry);
  std::mt19937_64 rng(42);
  std::vector<ConnectionId> open;
  std::vector<std::pair<ConnectionId, Job>> busy;
  Micros now = 0;
  uint64_t n = 0, delivered = 0;
  uint32_t peak = 0;
  for (int step = 0; step < 200'000; ++step) {
    now += rng() % 2000;
    switch (rng() % 6) {
      case 0:
        q.Enqueue(MakeJob(now, n++));
        break;
      case 1:
        if (q.MayOpenConnection(now).ok()) open.push_back(q.OpenConnection(now));
        break;
      case 2:
        if (!open.empty()) {
          const ConnectionId c = open[rng() % open.size()];
          if (auto job = q.TakeReady(c, now)) busy.emplace_back(c, std::move(*job));
        }
        break;
      case 3:
        if (!busy.empty()) {
          const size_t i = rng() % busy.size();
          auto [c, job] = std::move(busy[i]);
          busy.erase(busy.begin() + static_cast<ptrdiff_t>(i));
          const int r = static_cast<int>(rng() % 100);
          const Reply reply = r == 0   ? Reply{421, "too busy"}
                              : r == 1 ? Reply{451, "later"}
                                       : Reply{250, "ok"};
          if (reply.code == 250) {
            job.recipients.clear();
            ++delivered;
          }
          q.Report(c, std::move(job), reply, now);
        }
        break;
      case 4:
      case 5:
        if (!open.empty()) {
          const size_t i = rng() % open.size();
          const ConnectionId c = open[i];
          bool is_busy = false;
          for (auto& b : busy) is_busy |= b.first == c;
          const Gate g = q.MaySend(c, now).gate;
          if (!is_busy && (g == Gate::kConnectionDone || g == Gate::kNoWork || rng() % 4 == 0)) {
            q.CloseConnection(c);
            open.erase(open.begin() + static_cast<ptrdiff_t>(i));
          }
        }
        break;
    }
    ASSERT_LE(q.open_connections(), p.max_connections);
    ASSERT_EQ(q.open_connections(), open.size());
    // A new connection only within the current (maybe backed-off) cap.
    if (q.MayOpenConnection(now).ok()) {
      ASSERT_LT(q.gate().open_connections(), q.gate().max_connections());
    }
    peak = std::max<uint32_t>(peak, q.open_connections());
  }
  EXPECT_EQ(peak, p.max_connections);
  EXPECT_GT(delivered, 1000u);
}

TEST(DomainQueue, MessageRateWithinOnePercent) {
  RetrySchedule retry = NoJitter();
  ShapeParams p;
  p.max_connections = 3;
  p.max_messages_per_connection = 0;
  p.messages_per_second = 50;
  p.messages_per_hour = 100'000;  // not binding
  DomainQueue q("example.com", p, &retry);
  for (uint64_t i = 0; i < 60'000; ++i) q.Enqueue(MakeJob(1, i));
  std::vector<ConnectionId> conns;
  Micros now = 0;
  uint64_t sent = 0;
  const Micros end = 1000 * kSecond;
  while (now <= end) {
    while (q.MayOpenConnection(now).ok()) conns.push_back(q.OpenConnection(now));
    for (ConnectionId c : conns) {
      while (auto job = q.TakeReady(c, now)) {
        job->recipients.clear();
        q.Report(c, std::move(*job), {250, "ok"}, now);
        ++sent;
      }
    }
    const Micros next = q.NextWakeup(now);
    ASSERT_GT(next, now);  // never asks to be polled again at the same instant
    now = next;
  }
  const double expected = 50.0 * 1000 + 50;  // rate × time + burst
  EXPECT_NEAR(static_cast<double>(sent), expected, expected * 0.01);
}

TEST(DomainQueue, HourlyRateCaps) {
  RetrySchedule retry = NoJitter();
  ShapeParams p;
  p.messages_per_hour = 60;
  DomainQueue q("example.com", p, &retry);
  for (uint64_t i = 0; i < 100; ++i) q.Enqueue(MakeJob(1, i));
  const ConnectionId c = q.OpenConnection(0);
  int sent = 0;
  while (auto job = q.TakeReady(c, 0)) {
    job->recipients.clear();
    q.Report(c, std::move(*job), {250, "ok"}, 0);
    ++sent;
  }
  EXPECT_EQ(sent, 60);
  const GateDecision d = q.MaySend(c, 0);
  EXPECT_EQ(d.gate, Gate::kWait);
  EXPECT_EQ(d.at, kMinute);
  EXPECT_EQ(q.NextWakeup(0), kMinute);
}

// With no message token left, a new connection could carry nothing: it is
// not opened until the token is due (it would idle out and reopen forever).
TEST(DomainQueue, NoNewConnectionBeforeTheNextToken) {
  RetrySchedule retry = NoJitter();
  ShapeParams p;
  p.messages_per_hour = 1;
  DomainQueue q("example.com", p, &retry);
  for (uint64_t i = 0; i < 3; ++i) q.Enqueue(MakeJob(1, i));
  ASSERT_TRUE(q.MayOpenConnection(0).ok());
  const ConnectionId c = q.OpenConnection(0);
  auto job = q.TakeReady(c, 0);
  ASSERT_TRUE(job.has_value());
  job->recipients.clear();
  q.Report(c, std::move(*job), {250, "ok"}, 0);
  q.CloseConnection(c);
  const GateDecision d = q.MayOpenConnection(kSecond);
  EXPECT_EQ(d.gate, Gate::kWait);
  EXPECT_EQ(d.at, kHour);
  EXPECT_TRUE(q.MayOpenConnection(kHour).ok());
}

TEST(DomainQueue, TakeAllReadyAndRemoveMessage) {
  RetrySchedule retry = NoJitter();
  const ShapeParams defaults;
  DomainQueue q("example.com", defaults, &retry);
  for (uint64_t i = 0; i < 4; ++i) q.Enqueue(MakeJob(1, i));
  q.EnqueueDeferred(MakeJob(1, 1, {5}), kHour);
  q.EnqueueDeferred(MakeJob(1, 9), kHour);
  // Message 1 has one ready job and one deferred.
  std::vector<Job> removed = q.RemoveMessage(IdAt(1, 1));
  ASSERT_EQ(removed.size(), 2u);
  for (const Job& j : removed) EXPECT_EQ(j.message, IdAt(1, 1));
  EXPECT_EQ(q.ready_count(), 3u);
  EXPECT_EQ(q.deferred_count(), 1u);
  // The ready ones, without a connection: in flight until reported.
  std::vector<Job> ready = q.TakeAllReady();
  ASSERT_EQ(ready.size(), 3u);
  EXPECT_EQ(ready[0].message, IdAt(1, 0));
  EXPECT_EQ(ready[2].message, IdAt(1, 3));
  EXPECT_EQ(q.ready_count(), 0u);
  EXPECT_EQ(q.in_flight(), 3u);
  for (Job& j : ready) {
    EXPECT_EQ(q.Report(kNoConnection, std::move(j), {451, "later"}, kSecond).kind,
              ReportResult::kDeferred);
  }
  EXPECT_EQ(q.in_flight(), 0u);
  EXPECT_EQ(q.deferred_count(), 4u);
}

TEST(DomainQueue, TransientRetriesThenExpires) {
  RetrySchedule retry = NoJitter();
  const ShapeParams defaults;
  DomainQueue q("example.com", defaults, &retry);
  const Micros t0 = 1000 * kSecond;
  q.Enqueue(MakeJob(t0, 1, {0, 1, 2}));
  ConnectionId c = q.OpenConnection(t0);
  auto job = q.TakeReady(c, t0);
  ASSERT_TRUE(job);
  job->recipients = {1, 2};  // recipient 0 delivered or bounced; 1 and 2 got 4xx
  ReportResult r = q.Report(c, std::move(*job), {450, "4.2.1 mailbox busy"}, t0);
  EXPECT_EQ(r.kind, ReportResult::kDeferred);
  EXPECT_EQ(r.next_attempt, t0 + 5 * kMinute);
  EXPECT_FALSE(r.backoff);
  EXPECT_EQ(q.deferred_count(), 1u);
  EXPECT_EQ(q.MaySend(c, t0).gate, Gate::kNoWork);
  EXPECT_EQ(q.NextWakeup(t0), t0 + 5 * kMinute);
  DomainStats s = q.Stats();
  EXPECT_EQ(s.deferred, 1u);
  EXPECT_EQ(s.recipients, 2u);
  EXPECT_EQ(s.oldest, t0);
  q.CloseConnection(c);
  // Keep failing until it expires.
  Micros now = t0 + 5 * kMinute;
  int attempts = 1;
  for (;;) {
    q.Promote(now);
    c = q.OpenConnection(now);
    job = q.TakeReady(c, now);
    ASSERT_TRUE(job);
    ++attempts;
    EXPECT_EQ(job->failures, attempts - 1);
    r = q.Report(c, std::move(*job), {0, "connection refused"}, now);
    q.CloseConnection(c);
    if (r.kind == ReportResult::kExpired) break;
    ASSERT_EQ(r.kind, ReportResult::kDeferred);
    now = r.next_attempt;
  }
  EXPECT_EQ(now, t0 + 5 * kDay);
  ASSERT_TRUE(r.expired.has_value());
  EXPECT_EQ(r.expired->recipients.size(), 2u);
  EXPECT_EQ(attempts, 36);
  EXPECT_TRUE(q.empty());
}

TEST(DomainQueue, BackoffOn421ReducesConnectionsThenRecovers) {
  RetrySchedule retry = NoJitter();
  ShapeParams p;
  p.max_connections = 4;
  p.max_messages_per_connection = 0;
  p.backoff_duration = 10 * kSecond;
  p.recovery_successes = 3;
  DomainQueue q("example.com", p, &retry);
  for (uint64_t i = 0; i < 100; ++i) q.Enqueue(MakeJob(1, i));
  std::vector<ConnectionId> cs;
  while (q.MayOpenConnection(0).ok()) cs.push_back(q.OpenConnection(0));
  EXPECT_EQ(cs.size(), 4u);
  auto job = q.TakeReady(cs[0], 0);
  ReportResult r = q.Report(cs[0], std::move(*job), {421, "4.7.0 Too many connections"}, 0);
  EXPECT_TRUE(r.backoff);
  EXPECT_EQ(r.kind, ReportResult::kDeferred);
  EXPECT_EQ(q.gate().max_connections(), 2u);
  // Over the reduced cap: connections are shed one by one.
  EXPECT_EQ(q.MaySend(cs[3], 0).gate, Gate::kConnectionDone);
  q.CloseConnection(cs[3]);
  EXPECT_EQ(q.MaySend(cs[2], 0).gate, Gate::kConnectionDone);
  q.CloseConnection(cs[2]);
  EXPECT_TRUE(q.MaySend(cs[1], 0).ok());
  EXPECT_EQ(q.MayOpenConnection(0).gate, Gate::kSlotsFull);
  // Successes after the backoff window bring it back.
  Micros now = 11 * kSecond;
  for (int i = 0; i < 3; ++i) {
    job = q.TakeReady(cs[1], now);
    ASSERT_TRUE(job);
    job->recipients.clear();
    q.Report(cs[1], std::move(*job), {250, "ok"}, now);
  }
  EXPECT_EQ(q.gate().max_connections(), 4u);
  EXPECT_TRUE(q.MayOpenConnection(now).ok());
}

TEST(DomainQueue, BackoffPatternFromReplyText) {
  RetrySchedule retry = NoJitter();
  ShapeParams p;
  p.backoff_patterns = {"*temporarily deferred*reputation*"};
  DomainQueue q("example.com", p, &retry);
  EXPECT_FALSE(q.ReportConnectionReply({451, "mailbox busy"}, 0));
  EXPECT_TRUE(q.ReportConnectionReply({451, "4.7.1 Temporarily deferred due to IP reputation"}, 0));
  EXPECT_TRUE(q.gate().backing_off());
}

TEST(DomainQueue, SuspendResumeFlush) {
  RetrySchedule retry = NoJitter();
  const ShapeParams defaults;
  DomainQueue q("example.com", defaults, &retry);
  q.Enqueue(MakeJob(1, 1));
  q.EnqueueDeferred(MakeJob(1, 2), 500);
  q.EnqueueDeferred(MakeJob(1, 3), 300);
  q.Suspend();
  EXPECT_EQ(q.NextWakeup(1000), kNever);
  EXPECT_EQ(q.MayOpenConnection(1000).gate, Gate::kSuspended);
  q.Resume();
  EXPECT_EQ(q.NextWakeup(0), 0u);
  q.Flush();
  EXPECT_EQ(q.ready_count(), 3u);
  EXPECT_EQ(q.deferred_count(), 0u);
  const ConnectionId c = q.OpenConnection(0);
  std::vector<uint64_t> order;
  while (auto job = q.TakeReady(c, 0)) {
    order.push_back(job->message.shard());
    job->recipients.clear();
    q.Report(c, std::move(*job), {250, "ok"}, 0);
  }
  EXPECT_EQ(order, (std::vector<uint64_t>{1, 3, 2}));  // flushed in retry-time order
}

TEST(DomainQueue, DeferredPromotedInTimeOrder) {
  RetrySchedule retry = NoJitter();
  const ShapeParams defaults;
  DomainQueue q("example.com", defaults, &retry);
  for (uint64_t i = 0; i < 50; ++i) q.EnqueueDeferred(MakeJob(1, i), 1000 + (i * 37) % 50);
  EXPECT_EQ(q.NextWakeup(0), 1000u);
  q.Promote(1024);
  EXPECT_EQ(q.ready_count(), 25u);
  EXPECT_EQ(q.DrainAll().size(), 50u);
  EXPECT_TRUE(q.empty());
}

// The O(1) counters metrics read every second (queued_recipients,
// OldestQueued) agree with the O(jobs) Stats() after every kind of change.
TEST(DomainQueue, MetricsCountersMatchStatsUnderRandomOperations) {
  RetrySchedule retry = NoJitter();
  ShapeParams params;
  params.max_connections = 3;
  params.max_messages_per_connection = 0;
  DomainQueue q("example.com", params, &retry);
  absl::flat_hash_set<base::QueueId> held;
  q.set_held_ids(&held);
  std::mt19937_64 rng(7);
  std::vector<std::pair<ConnectionId, Job>> in_flight;
  std::vector<ConnectionId> open;
  Micros now = 1'000'000;
  uint64_t n = 0;
  std::vector<base::QueueId> ids;  // every message that arrived
  for (int step = 0; step < 20'000; ++step) {
    now += rng() % 1000;
    switch (rng() % 10) {
      case 0:
      case 1:
      case 2: {  // arrival: its accept time somewhat in the past, any order
        const Micros at = now - rng() % 500'000;
        const uint32_t k = 1 + static_cast<uint32_t>(rng() % 3);
        Job j = MakeJob(at, n++, {});
        ids.push_back(j.message);
        for (uint32_t r = 0; r < k; ++r) j.recipients.push_back(r);
        if (rng() % 4 == 0) {
          q.EnqueueDeferred(std::move(j), now + rng() % 100'000);
        } else {
          q.Enqueue(std::move(j));
        }
        break;
      }
      case 3:
      case 4: {  // take one
        q.Promote(now);
        if (open.size() < 3 && q.MayOpenConnection(now).ok()) open.push_back(q.OpenConnection(now));
        for (ConnectionId c : open) {
          if (auto j = q.TakeReady(c, now)) {
            in_flight.emplace_back(c, std::move(*j));
            break;
          }
        }
        break;
      }
      case 5:
      case 6: {  // an outcome: done, or some recipients deferred
        if (in_flight.empty()) break;
        auto [c, j] = std::move(in_flight.back());
        in_flight.pop_back();
        if (rng() % 2 == 0)
          j.recipients.resize(1 + rng() % j.recipients.size());
        else
          j.recipients.clear();
        q.Report(c, std::move(j), {451, "later"}, now);
        break;
      }
      case 7: {  // hold or release a message
        if (ids.empty()) break;
        const base::QueueId id = ids[rng() % ids.size()];
        held.insert(id);
        q.HoldMessage(id);
        if (rng() % 2 == 0) {
          held.erase(id);
          q.ReleaseMessage(id);
        }
        break;
      }
      case 8:
        if (rng() % 50 == 0) {
          (void)q.DrainAll();
        } else if (!ids.empty()) {
          (void)q.RemoveMessage(ids[rng() % ids.size()]);
        }
        break;
      case 9:
        if (rng() % 20 == 0) q.Flush();
        break;
    }
    const DomainStats st = q.Stats();
    ASSERT_EQ(q.queued_recipients(), st.recipients) << "step " << step;
    ASSERT_EQ(q.OldestQueued(), st.oldest) << "step " << step;
  }
}

}  // namespace
}  // namespace sluice::queue
