// The shard as the pickup ingester's host (shard_pickup.h): a thin adapter
// from pickup::IngestHost to the shard's spool writer, accounting log,
// counters and announcements; and Shard::InitPickup, which sets it up on
// shard 0. Shard thread only.
#include "shard_pickup.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "shard.h"
#include "sluice/base/strings.h"
#include "sluice/pickup/ingester.h"
#include "sluice/pickup/pickup_directory.h"
#include "sluice/server/trace_headers.h"

namespace sluice::server {
namespace {

class ShardPickupHost final : public pickup::IngestHost {
 public:
  ShardPickupHost(Shard& shard, io::HelperPool& pickup_thread)
      : shard_(shard), pickup_thread_(pickup_thread) {}

  const config::Config& config() const override { return shard_.config(); }
  uint64_t now_ms() const override { return shard_.now_ms(); }
  base::QueueId NextQueueId() override { return shard_.NextQueueId(); }
  bool spool_available() const override { return shard_.spool_available(); }
  io::Loop& loop() override { return shard_.loop(); }
  bool RunOnPickupThread(io::HelperPool::Job job) override {
    return pickup_thread_.Submit(shard_.index(), std::move(job));
  }

  std::string PickupTraceHeaders(const pickup::TraceRequest& facts) override {
    TraceFacts trace;
    trace.with = "local (pickup)";
    trace.hostname = shard_.config().hostname;
    trace.queue_id = facts.queue_id;
    trace.recipients = facts.recipients;
    trace.arrival_micros = facts.arrival_micros;
    trace.has_date = facts.has_date;
    trace.has_message_id = facts.has_message_id;
    return TraceHeaders(trace);
  }

  void CommitPickup(base::QueueId id, std::string body, spool::Envelope envelope,
                    CommitDone done) override {
    spool::SpoolWriter& spool = shard_.spool();
    spool::SpoolWriter::Message* m = spool.Begin(id);
    spool.AppendOwned(m, std::move(body));
    spool.Commit(m, std::move(envelope), std::move(done));
  }

  void PickupQueued(const log::ReceptionRecord& record, base::QueueId id,
                    const std::vector<std::string>& recipients) override {
    ++shard_.stats().messages_queued;
    shard_.accounting().Reception(record);
    shard_.AnnounceQueued(id, recipients);
  }
  void PickupQueued(const log::ReceptionRecord& record, base::QueueId id,
                    const std::vector<std::string_view>& recipients) override {
    ++shard_.stats().messages_queued;
    shard_.accounting().Reception(record);
    shard_.AnnounceQueued(id, recipients);
  }
  void PickupCommitFailed() override { ++shard_.stats().messages_failed; }
  void PickupRejected(const log::RejectionRecord& record) override {
    shard_.accounting().Rejection(record);
  }

 private:
  Shard& shard_;
  io::HelperPool& pickup_thread_;
};

}  // namespace

absl::Status Shard::InitPickup() {
  if (index_ != 0 || config_.pickup_dir.empty()) return absl::OkStatus();
  if (pickup_thread_ == nullptr) return absl::InternalError("pickup: no pickup thread");
  pickup_host_ = MakePickupHost(*this, *pickup_thread_);
  pickup_ = std::make_unique<pickup::Ingester>(
      *pickup_host_, config_.pickup_dir,
      absl::StrCat(config_.spool_dir, "/", index_, "/", base::Av(pickup::kClaimedDir)));
  if (auto s = pickup_->Init(); !s.ok()) return s;
  pickup_->AdoptClaimed(std::move(claimed_));
  claimed_.clear();
  return absl::OkStatus();
}

void Shard::DropPickup() {
  // An inotify read or a pickup-thread job still in flight would write into
  // the ingester: keep it and its host (only possible when the stop deadline
  // cut the wait short).
  if (pickup_ && !pickup_->idle()) {
    (void)pickup_.release();
    (void)pickup_host_.release();
  }
  pickup_.reset();
  pickup_host_.reset();
}

std::unique_ptr<pickup::IngestHost> MakePickupHost(Shard& shard, io::HelperPool& pickup_thread) {
  return std::make_unique<ShardPickupHost>(shard, pickup_thread);
}

}  // namespace sluice::server
