// queue/: enqueue + dequeue cost per job through the shaping gate, deferral
// into and out of the retry heap, and QueueSet::Due with a large throttled
// backlog (should cost the same whatever the backlog's size).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "sluice/queue/queue_set.h"

namespace sluice::queue {
namespace {

Job MakeJob(uint64_t n) {
  Job j;
  j.message = base::QueueId(((uint64_t{1'700'000'000'000'000} + n) << 8) | 1);
  j.recipients.push_back(static_cast<uint32_t>(n & 7));
  return j;
}

// Enqueue a batch, then take each through one connection and report it delivered.
void BM_EnqueueDequeue(benchmark::State& state) {
  const int64_t batch = state.range(0);
  RetrySchedule retry;
  ShapeParams params;
  params.max_messages_per_connection = 0;
  params.messages_per_second = 1'000'000;
  DomainQueue q("example.com", params, &retry);
  Micros now = 0;
  uint64_t n = 0;
  const ConnectionId c = [&] {
    q.Enqueue(MakeJob(n++));
    return q.OpenConnection(now);
  }();
  {
    auto job = q.TakeReady(c, now);
    job->recipients.clear();
    q.Report(c, std::move(*job), {250, "ok"}, now);
  }
  for (auto _ : state) {
    for (int64_t i = 0; i < batch; ++i) q.Enqueue(MakeJob(n++));
    now += kSecond;  // a fresh second's tokens
    while (auto job = q.TakeReady(c, now)) {
      job->recipients.clear();
      q.Report(c, std::move(*job), {250, "ok"}, now);
    }
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_EnqueueDequeue)->Arg(1)->Arg(1000)->Arg(100'000);

// A transient failure: the job goes into the deferred heap, is promoted and
// taken again.
void BM_DeferPromote(benchmark::State& state) {
  const int64_t backlog = state.range(0);
  RetryConfig rc;
  rc.initial = kSecond;
  rc.max_interval = kSecond;
  rc.max_age = 1'000'000 * kDay;
  RetrySchedule retry(rc);
  ShapeParams params;
  params.max_messages_per_connection = 0;
  DomainQueue q("example.com", params, &retry);
  for (int64_t i = 0; i < backlog; ++i)
    q.EnqueueDeferred(MakeJob(static_cast<uint64_t>(i)), 1000 * kDay + static_cast<Micros>(i));
  q.Enqueue(MakeJob(0));
  const ConnectionId c = q.OpenConnection(0);
  Micros now = 0;
  for (auto _ : state) {
    auto job = q.TakeReady(c, now);
    q.Report(c, std::move(*job), {451, "try later"}, now);
    now += kSecond;
    q.Promote(now);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DeferPromote)->Arg(0)->Arg(1'000'000);

// 1,000 domains × 100 messages (100,000 throttled messages), each domain at
// 1 msg/s, tokens spent: Due() before the next token.
void BM_DueThrottledBacklog(benchmark::State& state) {
  const int domains = static_cast<int>(state.range(0));
  const int per_domain = 100'000 / domains;
  ShapeParams p;
  p.messages_per_second = 1;
  p.message_burst = 1;
  auto policy = ShapingPolicy::Create({{"*", false, p}});
  QueueSet set(std::move(*policy), RetrySchedule());
  uint64_t n = 0;
  for (int d = 0; d < domains; ++d) {
    // absl::StrCat, not operator+ on a literal: GCC 12 at -O3 reports a bogus
    // -Wrestrict in std::operator+(const char*, string&&), fatal with -Werror.
    const std::string name = absl::StrCat("d", d, ".example");
    for (int i = 0; i < per_domain; ++i) set.Enqueue(name, MakeJob(n++), 0);
  }
  std::vector<DomainQueue*> due;
  set.Due(0, due);
  for (DomainQueue* q : due) {
    const ConnectionId c = q->OpenConnection(0);
    auto job = q->TakeReady(c, 0);
    job->recipients.clear();
    q->Report(c, std::move(*job), {250, "ok"}, 0);
    set.Reschedule(*q, 0);
  }
  Micros now = 1;
  for (auto _ : state) {
    due.clear();
    set.Due(now, due);
    benchmark::DoNotOptimize(due.data());
    now = now % (kSecond - 2) + 1;
  }
  state.counters["touched"] = static_cast<double>(set.last_due_touched());
  state.counters["backlog"] = static_cast<double>(n - static_cast<uint64_t>(domains));
}
BENCHMARK(BM_DueThrottledBacklog)->Arg(1)->Arg(1000)->Arg(10'000);

// The other side: a Due() that releases every domain and puts it back.
void BM_DueAndRescheduleAll(benchmark::State& state) {
  const int domains = static_cast<int>(state.range(0));
  QueueSet set{ShapingPolicy(), RetrySchedule()};
  for (int d = 0; d < domains; ++d) {
    // StrCat, not operator+: see BM_DueThrottledBacklog.
    set.EnqueueDeferred(absl::StrCat("d", d, ".example"), MakeJob(static_cast<uint64_t>(d)), kDay,
                        0);
  }
  std::vector<DomainQueue*> due;
  for (auto _ : state) {
    due.clear();
    set.FlushAll(0);
    set.Due(0, due);
    for (DomainQueue* q : due) {
      std::vector<Job> jobs = q->DrainAll();
      q->EnqueueDeferred(std::move(jobs[0]), kDay);
      set.Reschedule(*q, 0);
    }
  }
  state.SetItemsProcessed(state.iterations() * domains);
}
BENCHMARK(BM_DueAndRescheduleAll)->Arg(1000);

}  // namespace
}  // namespace sluice::queue
