// The shard's side of the pickup ingester's interface (pickup/ingest_host.h),
// private to server/: shard 0 commits what the pickup thread read through
// its own spool writer, writes the records and announces the messages.
#pragma once

#include <memory>

#include "sluice/io/helper_pool.h"
#include "sluice/pickup/ingest_host.h"

namespace sluice::server {

class Shard;

// `pickup_thread`: the pickup's own one-thread pool (server.cc), shared by
// no one else; not owned.
std::unique_ptr<pickup::IngestHost> MakePickupHost(Shard& shard, io::HelperPool& pickup_thread);

}  // namespace sluice::server
