// What `serve` recovers from the spool before any shard starts (server.cc
// calls these in this order): the queue (spool/spool_directory.h), the
// pickup claims a crash interrupted, the administrator's holds and
// suspensions, then the queue handed to the shards with the journal's final
// recipients and the last stop's retry state.
//
// Trusts the spool (its own files, verified by CRC on the way in: what does
// not verify is set aside, never dropped). Limits: runs on the main thread
// before the shards; the whole queue's envelopes (addresses, not merge
// values) are in memory at once.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "shard.h"
#include "sluice/config/config.h"
#include "sluice/delivery/admin_state.h"
#include "sluice/spool/spool_directory.h"

namespace sluice::server {

// Recovery: unfinished writes go, corrupt files are set aside, the rest is
// the queue this process starts with. Logs what it found.
absl::StatusOr<spool::RecoveryReport> RecoverSpool(const config::Config& config);

// The pickup claims to process again (see the .cc); the committed ones go.
absl::StatusOr<std::vector<std::string>> RecoverClaimed(const config::Config& config,
                                                        const spool::RecoveryReport& report);

// Loads the holds and suspensions `sluice queue` saved, and prunes holds of
// messages no longer queued. An error stops the start.
absl::Status LoadAdminStore(delivery::AdminStore& store, const spool::RecoveryReport& recovered);

// Hands the recovered queue (emptied) to the shards and the claimed pickup
// files to shard 0.
absl::Status AdoptRecovered(const config::Config& config, spool::RecoveryReport& recovered,
                            std::vector<std::string> claimed,
                            std::vector<std::unique_ptr<Shard>>& shard_objects);

}  // namespace sluice::server
