// QueueSet::SetPolicy and SetRetry: a configuration reload re-points every
// gate at its new rule (per-domain and shared MX gates), keeps what is in
// flight, and reschedules the domains at the new rates.
#include "gtest/gtest.h"
#include "sluice/queue/queue_set.h"

namespace sluice::queue {
namespace {

Job OneRecipient(uint64_t n) {
  Job j;
  j.message = base::QueueId((uint64_t{1} << 8) | (n & 0xff));
  j.recipients.push_back(0);
  return j;
}

ShapingPolicy Policy(std::vector<ShapingRule> rules) {
  auto p = ShapingPolicy::Create(std::move(rules));
  EXPECT_TRUE(p.ok()) << p.status();
  return std::move(*p);
}

ShapeParams Limits(uint32_t connections, uint32_t per_second) {
  ShapeParams p;
  p.max_connections = connections;
  p.messages_per_second = per_second;
  p.message_burst = 1;
  p.max_messages_per_connection = 0;
  return p;
}

TEST(QueueSetReload, DomainGateFollowsTheNewRule) {
  QueueSet set(Policy({{"example.com", false, Limits(3, 0)}}), RetrySchedule());
  for (uint64_t i = 0; i < 5; ++i) set.Enqueue("example.com", OneRecipient(i), 0);
  DomainQueue& q = *set.Find("example.com");
  const ConnectionId c0 = q.OpenConnection(0);
  const ConnectionId c1 = q.OpenConnection(0);
  EXPECT_EQ(q.gate().max_connections(), 3u);
  // Lowered to 1 while 2 are open: no third opens, and one over the cap
  // is shed (as a backoff sheds them) before its next message.
  set.SetPolicy(Policy({{"example.com", false, Limits(1, 1)}}), 0);
  EXPECT_EQ(q.gate().max_connections(), 1u);
  EXPECT_EQ(q.open_connections(), 2u);
  EXPECT_EQ(q.MayOpenConnection(0).gate, Gate::kSlotsFull);
  EXPECT_EQ(q.MaySend(c0, 0).gate, Gate::kConnectionDone);
  q.CloseConnection(c0);
  // The new rate: one message now, the next a second later.
  std::optional<Job> sent = q.TakeReady(c1, 0);
  ASSERT_TRUE(sent);
  sent->recipients.clear();  // delivered
  q.Report(c1, std::move(*sent), {250, "ok"}, 0);
  const GateDecision next = q.MaySend(c1, 1);
  EXPECT_EQ(next.gate, Gate::kWait);
  EXPECT_EQ(next.at, kSecond);
  // Back to the defaults when the rule goes.
  set.SetPolicy(Policy({}), 2);
  EXPECT_EQ(q.gate().max_connections(), ShapeParams().max_connections);
}

TEST(QueueSetReload, UnchangedRuleKeepsItsBuckets) {
  QueueSet set(Policy({{"example.com", false, Limits(2, 1)}}), RetrySchedule());
  set.Enqueue("example.com", OneRecipient(1), 0);
  set.Enqueue("example.com", OneRecipient(2), 0);
  DomainQueue& q = *set.Find("example.com");
  const ConnectionId c = q.OpenConnection(0);
  const ConnectionId idle = q.OpenConnection(0);
  ASSERT_TRUE(q.TakeReady(c, 0));  // the one token of this second
  set.SetPolicy(
      Policy({{"example.com", false, Limits(2, 1)}, {"other.example", false, Limits(1, 0)}}), 10);
  EXPECT_EQ(q.MaySend(idle, 10).gate, Gate::kWait);  // still spent: not refilled by the reload
}

TEST(QueueSetReload, MxGateFollowsAndAnOrphanStopsLimiting) {
  ShapeParams mx;
  mx.max_connections = 1;
  QueueSet set(Policy({{"*.provider.net", true, mx}}), RetrySchedule());
  set.Enqueue("a.example", OneRecipient(1), 0);
  set.Enqueue("b.example", OneRecipient(2), 0);
  DomainQueue& a = *set.Find("a.example");
  DomainQueue& b = *set.Find("b.example");
  set.BindMx(a, "mx1.provider.net", 0);
  set.BindMx(b, "mx1.provider.net", 0);
  a.OpenConnection(0);
  EXPECT_EQ(b.MayOpenConnection(0).gate, Gate::kSlotsFull);
  mx.max_connections = 2;
  set.SetPolicy(Policy({{"*.provider.net", true, mx}}), 1);
  EXPECT_TRUE(b.MayOpenConnection(1).ok());
  b.OpenConnection(1);
  // The rule goes: the shared gate no longer limits anything.
  set.SetPolicy(Policy({}), 2);
  set.Enqueue("b.example", OneRecipient(3), 2);
  EXPECT_TRUE(b.MayOpenConnection(2).ok());
}

TEST(QueueSetReload, RetryScheduleAppliesFromTheNextFailure) {
  RetryConfig slow;
  slow.initial = kHour;
  slow.jitter_permille = 0;
  QueueSet set(Policy({}), RetrySchedule(slow));
  set.Enqueue("example.com", OneRecipient(1), 0);
  DomainQueue& q = *set.Find("example.com");
  const ConnectionId c = q.OpenConnection(0);
  auto job = q.TakeReady(c, 0);
  ASSERT_TRUE(job);
  RetryConfig fast = slow;
  fast.initial = kMinute;
  set.SetRetry(RetrySchedule(fast));
  const ReportResult r = q.Report(c, std::move(*job), {451, "try later"}, 0);
  EXPECT_EQ(r.kind, ReportResult::kDeferred);
  EXPECT_EQ(r.next_attempt, kMinute);
}

}  // namespace
}  // namespace sluice::queue
