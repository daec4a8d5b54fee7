// The Prometheus text exposition (format 0.0.4) that GET /metrics returns
// (server/http_listener.h), built on the thread of the shard that took the
// scrape.
//
// This is a minimal placeholder written by the `http` branch so that the
// listener has something real to serve: the `metrics` branch owns this
// header and src/server/metrics_text.cc and replaces both (same
// signature) with the full set of metrics.
#pragma once

#include <string>

namespace sluice::server {

class Shard;

// Every metric with its HELP and TYPE lines, each sample on its own line.
std::string MetricsText(Shard& shard);

}  // namespace sluice::server
