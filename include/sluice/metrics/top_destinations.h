// Samples a shard's destination queues and picks the ones a metrics
// snapshot names: the kTopDestinations
// deepest queues, then the kTopDestinations with the most deferred
// messages among the rest; everything else is summed into one "other" row.
//
// Pure: a partial selection (std::nth_element, O(n)) over the samples, a
// sort of the few chosen, and one pass for the sum; it allocates only the
// chosen rows (their names are copied). 10,000 destinations cost tens of
// microseconds (bench/metrics_bench.cc), never a sort of all of them.
//
// Ties are broken by name, so a scrape after a scrape names the same
// destinations while their numbers stand still.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "sluice/metrics/snapshot.h"
#include "sluice/queue/domain_queue.h"

namespace sluice::metrics {

// One queued destination as a collector samples it. `domain` points into
// the caller's queue (valid while the caller does not change it); only the
// chosen ones are copied into the snapshot.
struct DestinationSample {
  const std::string* domain = nullptr;
  uint64_t recipients = 0;
  uint64_t messages = 0;
  uint64_t deferred = 0;
  uint64_t oldest_us = 0;  // 0: nothing queued
  uint32_t connections = 0;
  uint32_t limit_permille = 1000;
  bool suspended = false;
  bool held = false;
};

// Reorders `samples`, fills `top` (cleared first; deepest first, then the
// deferral picks, each group in descending order) and `other` (domain
// "other"). A destination enters the depth list only with queued
// recipients, the deferral list only with deferred messages.
void SelectTopDestinations(std::vector<DestinationSample>& samples, size_t k,
                           std::vector<DestinationRow>& top, DestinationRow& other);

// Samples every domain queue `for_each_queue` visits (into `scratch`,
// reused between calls), counts the shaping states into `out`'s domains_*
// totals and names the top ones (out.top, out.other). `now_us`: the
// queues' clock (the engine's: wall-clock µs). One pass, O(1) per queue
// except DomainQueue::OldestQueued's occasional pass over a queue's jobs.
using ForEachQueue = absl::FunctionRef<void(absl::FunctionRef<void(queue::DomainQueue&)>)>;
// `k`: server.metrics_top_destinations (kTopDestinations by default).
void CollectDestinations(ForEachQueue for_each_queue, uint64_t now_us, size_t k,
                         std::vector<DestinationSample>& scratch, ShardSnapshot& out);

}  // namespace sluice::metrics
