// What the pickup ingester (pickup/ingester.h) needs from the shard that
// runs it, and no more: the pickup module does not know the shard, its
// connections or its spool writer, only this interface, which the shard
// implements (server/shard_pickup.cc). Every method is called on the shard
// thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "sluice/base/queue_id.h"
#include "sluice/config/config.h"
#include "sluice/io/helper_pool.h"
#include "sluice/io/loop.h"
#include "sluice/log/accounting_log.h"
#include "sluice/spool/message_file.h"

namespace sluice::pickup {

// The facts of a pickup message's trace headers (Received:, and Date: and
// Message-ID: when it lacks them); the shard adds its host name.
struct TraceRequest {
  std::string_view queue_id;
  const std::vector<std::string>* recipients = nullptr;  // "for <r>" when exactly one
  uint64_t arrival_micros = 0;
  bool has_date = false;
  bool has_message_id = false;
};

class IngestHost {
 public:
  using CommitDone = std::function<void(const absl::Status&)>;
  virtual ~IngestHost() = default;

  // The shard's configuration (a reload replaces it between loop turns).
  virtual const config::Config& config() const = 0;
  virtual uint64_t now_ms() const = 0;
  virtual base::QueueId NextQueueId() = 0;
  // False while the spool is short of space (or the shard's outbox is
  // full): take no new file.
  virtual bool spool_available() const = 0;
  // The shard's loop, for the inotify read (io_uring waits, the shard not).
  virtual io::Loop& loop() = 0;
  // Runs `job.work` on the pickup thread, then `job.done` on this shard's
  // thread. False when the pickup thread has no free slot.
  virtual bool RunOnPickupThread(io::HelperPool::Job job) = 0;

  virtual std::string PickupTraceHeaders(const TraceRequest& facts) = 0;
  // Writes message `id` (body and envelope) into the spool; `done` runs on
  // this thread once it is durable, or with the error.
  virtual void CommitPickup(base::QueueId id, std::string body, spool::Envelope envelope,
                            CommitDone done) = 0;
  // A durable message whose pickup file is gone: counts it, writes its
  // Reception record and hands its recipients to delivery.
  virtual void PickupQueued(const log::ReceptionRecord& record, base::QueueId id,
                            const std::vector<std::string>& recipients) = 0;
  virtual void PickupQueued(const log::ReceptionRecord& record, base::QueueId id,
                            const std::vector<std::string_view>& recipients) = 0;
  // A commit failed (counted; the file is tried again).
  virtual void PickupCommitFailed() = 0;
  // A file or batch was moved to bad/: its Rejection record.
  virtual void PickupRejected(const log::RejectionRecord& record) = 0;
};

}  // namespace sluice::pickup
