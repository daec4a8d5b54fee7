// Builds a shard's metrics snapshot (metrics/snapshot.h) from the counters
// its parts keep: ShardStats, the engine's EngineStats and queues, the
// resolver, the spool writer, the ledger and the accounting log.
//
// Runs on the shard's own thread (every metrics::kSnapshotIntervalMs from
// its tick, and on a scrape the shard itself answers), so it reads
// everything without locks. Cost: one pass over the shard's domain queues
// (O(1) each, plus a pass over a queue's jobs when its oldest job has left
// since the last snapshot: DomainQueue::OldestQueued) and a partial top-K
// selection; measured in bench/metrics_bench.cc.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "sluice/metrics/snapshot.h"
#include "sluice/metrics/top_destinations.h"

namespace sluice::server {

class Shard;

// Everything: the counters of `shard` and its engine, and the destinations
// (metrics::CollectDestinations over the engine's queues).
std::shared_ptr<const metrics::ShardSnapshot> CollectSnapshot(
    Shard& shard, uint64_t now_us, std::vector<metrics::DestinationSample>& scratch);

}  // namespace sluice::server
