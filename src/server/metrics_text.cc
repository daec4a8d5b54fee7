// GET /metrics: a minimal Prometheus text exposition; see
// sluice/server/metrics_text.h. The `metrics` branch replaces this file
// with the full set (per-shard and per-destination counters, histograms).
// Runs on the shard's thread; reads only that shard's counters.
#include "sluice/server/metrics_text.h"

#include "absl/strings/str_cat.h"
#include "sluice/server/shard.h"

namespace sluice::server {

std::string MetricsText(Shard& shard) {
  const std::string labels = absl::StrCat("{shard=\"", shard.index(), "\"}");
  std::string out;
  absl::StrAppend(&out, "# HELP sluice_up 1 while the relay serves.\n", "# TYPE sluice_up gauge\n",
                  "sluice_up 1\n");
  absl::StrAppend(&out,
                  "# HELP sluice_shard_connections_accepted_total SMTP connections this shard "
                  "accepted.\n",
                  "# TYPE sluice_shard_connections_accepted_total counter\n",
                  "sluice_shard_connections_accepted_total", labels, " ",
                  shard.stats().connections_accepted, "\n");
  return out;
}

}  // namespace sluice::server
