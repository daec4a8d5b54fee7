// The `sluice serve` process: recovers the spool, starts one shard thread per
// core, waits for SIGTERM/SIGINT and stops the shards within the grace
// period. Signals are blocked in every thread and taken with sigwait() by
// the main thread alone, so no handler ever runs inside a shard's loop.
#pragma once

#include "absl/status/status.h"
#include "sluice/config/config.h"
#include "sluice/server/config_reload.h"

namespace sluice::server {

// Runs until a stop signal; returns OK after a clean stop. `loader` loads
// the configuration again for SIGHUP (config_reload.h); empty: SIGHUP
// reports that there is nothing to reload from.
absl::Status Serve(const config::Config& config, ConfigLoader loader = {});

}  // namespace sluice::server
