// Renders shard snapshots (metrics/snapshot.h) as the Prometheus text
// exposition format, version 0.0.4: every family once, with its # HELP and
// # TYPE, its samples together; label values escaped (\\, \", \n);
// histograms as cumulative _bucket{le="..."} series ending in le="+Inf",
// then _sum and _count. Latencies in seconds, sizes in bytes, counters end
// in _total. docs/METRICS.md lists every family.
//
// Pure: no I/O, no clock (`now_us` is the scrape's wall-clock time, for the
// snapshot and queue ages). Trusts the snapshots; a domain name may hold
// any byte and is escaped. Null entries (a shard that has not published
// yet) are skipped.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "sluice/metrics/snapshot.h"

namespace sluice::metrics {

// The media type a scrape answers with.
inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

std::string RenderMetrics(std::span<const ShardSnapshot* const> shards, uint64_t now_us);

// Helpers, public for tests.
// A label value with \, " and newline escaped.
void AppendLabelValue(std::string& out, std::string_view value);
// Microseconds as decimal seconds, exactly: 1500 -> "0.0015", 2000000 -> "2".
void AppendMicrosAsSeconds(std::string& out, uint64_t us);

}  // namespace sluice::metrics
