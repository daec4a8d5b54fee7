// metrics/: what a scrape costs with 10,000 destination domains queued
// (issue 14's target: under 1 ms). Three parts, measured apart:
//   BM_MetricsCollect10k   one shard's snapshot of its destinations: a pass
//                          over 10,000 domain queues and the top-K pick
//                          (what each shard pays every second, and the
//                          answering shard again on a scrape);
//   BM_MetricsCollect10kStale  the same when every domain's oldest job left
//                          since the last snapshot (each queue is scanned);
//   BM_MetricsRender       rendering `shards` snapshots with full top lists;
//   BM_MetricsScrape10k    collect + render: one scrape on a one-shard relay.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "sluice/metrics/render.h"
#include "sluice/metrics/snapshot.h"
#include "sluice/metrics/top_destinations.h"
#include "sluice/queue/queue_set.h"

namespace sluice::metrics {
namespace {

using queue::Job;
using queue::Micros;

constexpr Micros kNow = 1'700'000'000'000'000;

Job MakeJob(Micros queued, uint64_t n) {
  Job j;
  j.message = base::QueueId((queued << 8) | (n & 0xff));
  j.recipients.push_back(0);
  return j;
}

// 10,000 domains; domain d holds 1 + d % 50 jobs (about 255,000 in all),
// a third of them deferred.
std::unique_ptr<queue::QueueSet> TenThousandDomains() {
  auto set = std::make_unique<queue::QueueSet>(queue::ShapingPolicy(), queue::RetrySchedule());
  for (uint64_t d = 0; d < 10'000; ++d) {
    const std::string domain = absl::StrCat("d", d, ".example");
    for (uint64_t i = 0; i <= d % 50; ++i) {
      const Micros at = kNow - (d * 7919 + i * 104729) % 3'600'000'000;
      if (i % 3 == 2) {
        set->EnqueueDeferred(domain, MakeJob(at, i), kNow + 600'000'000, kNow);
      } else {
        set->Enqueue(domain, MakeJob(at, i), kNow);
      }
    }
  }
  return set;
}

void Collect(queue::QueueSet& set, std::vector<DestinationSample>& scratch, ShardSnapshot& s) {
  CollectDestinations([&](absl::FunctionRef<void(queue::DomainQueue&)> f) { set.ForEach(f); }, kNow,
                      kTopDestinations, scratch, s);
}

void BM_MetricsCollect10k(benchmark::State& state) {
  auto set = TenThousandDomains();
  std::vector<DestinationSample> scratch;
  for (auto _ : state) {
    ShardSnapshot s;
    Collect(*set, scratch, s);
    benchmark::DoNotOptimize(s.top.data());
  }
}
BENCHMARK(BM_MetricsCollect10k)->Unit(benchmark::kMicrosecond);

void BM_MetricsCollect10kStale(benchmark::State& state) {
  auto set = TenThousandDomains();
  std::vector<DestinationSample> scratch;
  for (auto _ : state) {
    state.PauseTiming();
    // Every domain's ready jobs leave (the oldest among them) and come
    // back: the next snapshot must scan each queue once (OldestQueued).
    set->ForEach([&](queue::DomainQueue& q) {
      std::vector<Job> one = q.TakeAllReady();  // in flight now
      for (Job& j : one) {
        q.Report(queue::kNoConnection, Job{j.message, 0, 0, {}}, {250, "ok"}, kNow);
        q.Enqueue(std::move(j));  // back, but the oldest was seen leaving
      }
    });
    state.ResumeTiming();
    ShardSnapshot s;
    Collect(*set, scratch, s);
    benchmark::DoNotOptimize(s.top.data());
  }
}
BENCHMARK(BM_MetricsCollect10kStale)->Unit(benchmark::kMicrosecond);

ShardSnapshot FullSnapshot(int shard) {
  ShardSnapshot s;
  s.shard = shard;
  s.delivery = true;
  s.taken_at_us = kNow;
  for (size_t i = 0; i < 2 * kTopDestinations; ++i) {
    s.top.push_back(DestinationRow{.domain = absl::StrCat("destination-", i, ".example.com"),
                                   .recipients = 1000 - i,
                                   .messages = 900 - i,
                                   .deferred = i,
                                   .oldest_us = kNow - i * 1'000'000,
                                   .connections = 3});
  }
  s.other = DestinationRow{.domain = "other", .recipients = 123456, .oldest_us = kNow - 1};
  for (uint64_t v = 1; v < 100'000'000; v = v * 3 + 1) {
    s.commit_latency.Record(v);
    s.delivery_latency.Record(v);
    s.dns_latency.Record(v);
  }
  return s;
}

void BM_MetricsRender(benchmark::State& state) {
  std::vector<ShardSnapshot> snaps;
  for (int i = 0; i < state.range(0); ++i) snaps.push_back(FullSnapshot(i));
  std::vector<const ShardSnapshot*> views;
  for (const ShardSnapshot& s : snaps) views.push_back(&s);
  size_t bytes = 0;
  for (auto _ : state) {
    const std::string text = RenderMetrics(views, kNow + 500'000);
    bytes = text.size();
    benchmark::DoNotOptimize(text.data());
  }
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_MetricsRender)->Arg(1)->Arg(2)->Arg(8)->Unit(benchmark::kMicrosecond);

void BM_MetricsScrape10k(benchmark::State& state) {
  auto set = TenThousandDomains();
  std::vector<DestinationSample> scratch;
  for (auto _ : state) {
    auto s = std::make_shared<ShardSnapshot>(FullSnapshot(0));
    Collect(*set, scratch, *s);
    const ShardSnapshot* one[] = {s.get()};
    const std::string text = RenderMetrics(one, kNow);
    benchmark::DoNotOptimize(text.data());
  }
}
BENCHMARK(BM_MetricsScrape10k)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace sluice::metrics
