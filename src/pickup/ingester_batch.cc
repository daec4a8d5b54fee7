// The pickup ingester's shard side for batch directories (ingester.h): one
// batch at a time, its steps (open, then a chunk of recipients per step)
// handed to the pickup thread one after another, then the commit of its one
// spool record on the shard, the release on the pickup thread, and the
// announcement. The file work is batch_work.cc.
#include <cstring>

#include "absl/strings/str_cat.h"
#include "batch_work.h"
#include "file_work.h"
#include "sluice/base/clock.h"
#include "sluice/diag/diag.h"
#include "sluice/pickup/config_limits.h"
#include "sluice/pickup/ingester.h"

namespace sluice::pickup {

using internal::BatchProgress;
using internal::BatchReleased;
using internal::BatchState;
using internal::Item;

void Ingester::PumpBatch() {
  if (!batch_ && !batches_waiting_.empty()) {
    Item next = std::move(batches_waiting_.front());
    batches_waiting_.pop_front();
    StartBatch(std::move(next));
  } else if (batch_ && batch_phase_ == BatchPhase::kReady) {
    SubmitBatchStep();
  }
}

void Ingester::StartBatch(Item item) {
  batch_ = std::make_unique<BatchState>();
  batch_->item = std::move(item);
  batch_->limits = BatchLimitsFor(host_.config());
  batch_phase_ = BatchPhase::kOpening;
  SubmitBatchStep();
}

void Ingester::SubmitBatchStep() {
  auto progress = std::make_shared<BatchProgress>();
  io::HelperPool::Job job;
  const bool opening = batch_phase_ == BatchPhase::kOpening;
  // The shard leaves the state alone until `done` (one step in flight).
  job.work = [progress, files = files_.get(), b = batch_.get(), opening] {
    *progress = opening ? internal::OpenBatch(*files, *b)
                        : internal::ReadBatchChunk(*files, *b, kBatchBytesPerStep);
  };
  job.done = [this, progress] {
    --jobs_in_flight_;
    OnBatchStep(*progress);
  };
  batch_phase_ = BatchPhase::kReading;
  Submit(std::move(job));
}

void Ingester::OnBatchStep(const BatchProgress& p) {
  BatchState& b = *batch_;
  switch (p.kind) {
    case BatchProgress::Kind::kMore:
      // Stopping: left claimed, read again at the next start.
      if (stopping_) return EndBatch();
      batch_phase_ = BatchPhase::kReady;  // the next Pump hands out the next step
      return;
    case BatchProgress::Kind::kRejected:
    case BatchProgress::Kind::kUnmovable:
      LogRejected(b.item, p.reason, p.error, p.kind == BatchProgress::Kind::kRejected);
      return EndBatch();
    case BatchProgress::Kind::kFailed:
      if (p.open_failed) {
        SLUICE_LOG(kWarning, "pickup.batch_open_failed", "cannot open a batch; will retry",
                   {{"batch", b.item.claimed_path}, {"error", p.error}});
      } else if (!p.file.empty()) {
        SLUICE_LOG(kWarning, "pickup.batch_read_failed", "cannot read a batch; will retry",
                   {{"batch", b.item.name}, {"file", p.file}, {"error", p.error}});
      } else {
        SLUICE_LOG(kWarning, "pickup.batch_read_failed", "cannot read a batch; will retry",
                   {{"batch", b.item.name}, {"error", p.error}});
      }
      retry_.push_back(std::move(b.item));
      return EndBatch();
    case BatchProgress::Kind::kReady:
      if (!p.report_error.empty()) {
        // The valid recipients are not held back for a report: it goes to
        // the diagnostics instead.
        SLUICE_LOG(kError, "pickup.batch_report_not_written",
                   "cannot write the skipped-rows report; it is in this line",
                   {{"batch", b.item.name},
                    {"file", p.report_path},
                    {"error", p.report_error},
                    {"skipped_rows", p.report}});
      }
      if (stopping_) return EndBatch();
      return CommitBatch();
  }
}

void Ingester::CommitBatch() {
  BatchState& b = *batch_;
  const config::Config& config = host_.config();
  BatchBuilder& builder = *b.builder;
  const std::string id = b.item.id.ToString();
  const uint64_t now = base::WallMicros();
  TraceRequest trace;
  trace.queue_id = id;
  trace.arrival_micros = now;
  trace.has_date = b.tmpl.has_date;
  // A merged message is one message per recipient, so each needs its own
  // Message-ID; delivery adds it (spool::Envelope::message_id_host).
  const bool per_recipient_id = !b.tmpl.has_message_id && b.tmpl.compiled.has_placeholders();
  trace.has_message_id = b.tmpl.has_message_id || per_recipient_id;

  spool::Envelope env;
  env.arrival_micros = now;
  env.protocol = "pickup";
  env.sender = b.manifest.sender;
  env.eight_bit = b.tmpl.eight_bit || builder.eight_bit();
  env.smtputf8 = b.manifest.smtputf8 || builder.smtputf8();
  env.added_headers = host_.PickupTraceHeaders(trace);
  env.origin = b.item.claimed_name;
  env.campaign = b.manifest.campaign;
  env.tenant = b.manifest.tenant;
  if (b.tmpl.compiled.has_placeholders()) env.merge_fields = b.tmpl.compiled.fields;
  if (per_recipient_id) env.message_id_host = config.hostname;
  env.packed_count = builder.accepted();
  env.packed_recipients = builder.TakePacked();
  b.size = b.tmpl.stored.size();

  batch_phase_ = BatchPhase::kCommitting;
  ++commits_in_flight_;
  host_.CommitPickup(b.item.id, std::move(b.tmpl.stored), std::move(env),
                     [this](const absl::Status& status) { OnBatchCommitted(status); });
}

void Ingester::OnBatchCommitted(const absl::Status& status) {
  --commits_in_flight_;
  BatchState& b = *batch_;
  if (!status.ok()) {
    host_.PickupCommitFailed();
    SLUICE_LOG(kError, "pickup.commit_failed", "spool commit of a batch failed; will retry",
               {{"batch", b.item.claimed_name}, {"error", status.message()}});
    retry_.push_back(std::move(b.item));
    return EndBatch();
  }
  files_->MaybeAbort("after-commit");
  // Released (renamed .done, removed) on the pickup thread, then announced:
  // once renamed, recovery removes it without looking for its record.
  auto released = std::make_shared<BatchReleased>();
  io::HelperPool::Job job;
  job.work = [released, files = files_.get(), item = b.item] {
    *released = internal::ReleaseBatch(*files, item);
  };
  job.done = [this, released] {
    --jobs_in_flight_;
    OnBatchReleased(*released);
  };
  batch_phase_ = BatchPhase::kReleasing;
  Submit(std::move(job));
}

void Ingester::OnBatchReleased(const BatchReleased& released) {
  BatchState& b = *batch_;
  if (!released.rename_error.empty()) {
    SLUICE_LOG(kWarning, "pickup.rename_failed",
               "cannot rename a finished batch; removed at the next start",
               {{"file", b.item.claimed_path}, {"error", released.rename_error}});
  } else if (!released.remove_error.empty()) {
    SLUICE_LOG(kWarning, "pickup.remove_failed",
               "cannot remove a finished batch; removed at the next start",
               {{"file", released.done_path}, {"error", released.remove_error}});
  }
  const std::string id = b.item.id.ToString();
  const std::vector<std::string_view> addresses = b.builder->Addresses();
  log::ReceptionRecord r;
  r.ts_micros = base::WallMicros();
  r.id = id;
  r.sender = b.manifest.sender;
  r.recipient_views = &addresses;
  r.size = b.size;
  r.client = "";
  r.helo = "";
  r.protocol = "pickup";
  r.campaign = b.manifest.campaign;
  r.tenant = b.manifest.tenant;
  r.skipped = b.builder->skipped();
  host_.PickupQueued(r, b.item.id, addresses);
  SLUICE_LOG(kInfo, "pickup.batch_queued", "batch queued",
             {{"batch", b.item.name},
              {"id", id},
              {"recipients", b.builder->accepted()},
              {"rows_skipped", b.builder->skipped()}});
  EndBatch();
}

void Ingester::EndBatch() { batch_.reset(); }

}  // namespace sluice::pickup
