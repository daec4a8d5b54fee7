// The body of a Prometheus scrape (GET /metrics, the control socket's
// `metrics`, `sluice metrics`): every shard's latest metrics snapshot,
// rendered as the text exposition format 0.0.4 (metrics/render.h).
//
// Called on the thread of the shard that took the request. That shard's
// own snapshot is built afresh; the others are read from the shared
// MetricsBoard (at most metrics::kSnapshotIntervalMs old, no lock, no
// message to them). Cost per scrape: bench/metrics_bench.cc.
#pragma once

#include <string>

namespace sluice::server {

class Shard;

std::string MetricsText(Shard& shard);

}  // namespace sluice::server
