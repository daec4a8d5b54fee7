// The pickup ingester's shard side for single files (ingester.h): which
// names wait, the claim and release jobs handed to the pickup thread, the
// commits and the records. Batches are in ingester_batch.cc, the file work
// itself in file_work.cc.
#include "sluice/pickup/ingester.h"

#include <fcntl.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "batch_work.h"
#include "file_work.h"
#include "sluice/base/check.h"
#include "sluice/base/clock.h"
#include "sluice/diag/diag.h"
#include "sluice/pickup/config_limits.h"
#include "sluice/pickup/pickup_directory.h"

namespace sluice::pickup {

using internal::Item;
using internal::Release;
using internal::Taken;

namespace {

absl::Status Errno(std::string_view what, const std::string& path) {
  return absl::Status(absl::ErrnoToStatusCode(errno),
                      absl::StrCat(std::string(what), " ", path, ": ", std::strerror(errno)));
}

}  // namespace

// Every kind of job is bounded; together they fit the pickup thread's lane.
static_assert(Ingester::kClaimJobsInFlight + 1 /* scan */ + 1 /* batch step */ +
                  1 /* batch release */
              <= Ingester::kJobSlots);

// The unlink of a committed file's claimed copy, in flight on io_uring.
struct Ingester::ReleaseOp final : io::Completion {
  Ingester* self = nullptr;
  Release release;
  void OnComplete(int result, uint32_t) override { self->OnReleased(this, result); }
};

Ingester::Ingester(IngestHost& host, std::string dir, std::string claimed_dir)
    : host_(host),
      new_dir_(dir + "/new"),
      files_(std::make_unique<internal::PickupFiles>(std::move(dir), std::move(claimed_dir))) {}

Ingester::~Ingester() {
  if (inotify_fd_ >= 0) close(inotify_fd_);
}

absl::Status Ingester::Init() {
  // A blocking descriptor: io_uring waits for readiness itself (poll-armed
  // read), so the shard thread never blocks on it.
  inotify_fd_ = inotify_init1(IN_CLOEXEC);
  if (inotify_fd_ < 0) return Errno("inotify_init1 for", new_dir_);
  if (inotify_add_watch(inotify_fd_, new_dir_.c_str(), IN_MOVED_TO | IN_CLOSE_WRITE | IN_ONLYDIR) <
      0) {
    return Errno("inotify_add_watch", new_dir_);
  }
  return files_->Open();
}

void Ingester::AdoptClaimed(std::vector<std::string> paths) {
  for (std::string& p : paths) {
    Item item;
    const size_t slash = p.rfind('/');
    item.claimed_name = p.substr(slash == std::string::npos ? 0 : slash + 1);
    item.name = item.claimed_name;  // the original name did not survive the crash
    item.claimed_path = std::move(p);
    reclaim_.push_back(std::move(item));
  }
}

void Ingester::Start() {
  ArmRead();
  Scan();
  next_scan_ms_ = host_.now_ms() + uint64_t{host_.config().pickup_scan_interval_s} * 1000;
}

void Ingester::Stop() {
  stopping_ = true;
  if (read_armed_) {
    host_.loop().Cancel(nullptr, &read_done_);
  }
}

void Ingester::Tick(uint64_t now_ms) {
  if (stopping_ || now_ms < next_scan_ms_) return;
  next_scan_ms_ = now_ms + uint64_t{host_.config().pickup_scan_interval_s} * 1000;
  Scan();
}

bool Ingester::Submit(io::HelperPool::Job job) {
  // The lane is sized for every job kind's bound (the static_assert above);
  // a refusal means a bound is broken.
  const bool ok = host_.RunOnPickupThread(std::move(job));
  SLUICE_CHECK(ok);
  ++jobs_in_flight_;
  return ok;
}

void Ingester::Scan() {
  for (Item& item : retry_) reclaim_.push_back(std::move(item));
  retry_.clear();
  if (scan_in_flight_ || stopping_) return;  // the listing under way will do
  struct Listing {
    bool ok = false;
    std::vector<std::string> names;
    std::string error;
  };
  auto listing = std::make_shared<Listing>();
  io::HelperPool::Job job;
  job.work = [listing, files = files_.get()] {
    listing->ok = files->ListNew(listing->names, listing->error);
  };
  job.done = [this, listing] {
    --jobs_in_flight_;
    scan_in_flight_ = false;
    OnScanned(listing->ok, listing->names, listing->error);
  };
  scan_in_flight_ = Submit(std::move(job));
}

void Ingester::OnScanned(bool ok, std::vector<std::string>& names, const std::string& error) {
  if (!ok) {
    SLUICE_LOG(kError, "pickup.list_failed", "cannot list the pickup directory",
               {{"dir", new_dir_}, {"error", error}});
    return;
  }
  if (stopping_) return;
  for (std::string& n : names) Enqueue(std::move(n));
}

void Ingester::Enqueue(std::string name) {
  if (!internal::Takeable(name) || queued_.contains(name)) return;
  queued_.insert(name);
  queue_.push_back(std::move(name));
}

void Ingester::ArmRead() {
  if (read_armed_ || stopping_ || inotify_fd_ < 0) return;
  host_.loop().Read(&read_done_, inotify_fd_, events_, sizeof events_, 0);
  read_armed_ = true;
}

void Ingester::OnRead(int result, uint32_t) {
  read_armed_ = false;
  if (result > 0) {
    size_t pos = 0;
    const size_t size = static_cast<size_t>(result);
    while (pos + sizeof(inotify_event) <= size) {
      inotify_event ev;
      std::memcpy(&ev, events_ + pos, sizeof ev);
      const size_t total = sizeof(inotify_event) + ev.len;
      if (pos + total > size) break;
      if (ev.mask & IN_Q_OVERFLOW) {
        Scan();  // events were lost: list the directory instead
      } else if (ev.len > 0) {
        const char* name = events_ + pos + sizeof(inotify_event);
        std::string n(name, strnlen(name, ev.len));
        // A batch directory arrives by rename (IN_MOVED_TO | IN_ISDIR).
        if (!(ev.mask & IN_ISDIR) || internal::IsBatchName(n)) Enqueue(std::move(n));
      }
      pos += total;
    }
  } else if (result < 0 && result != -ECANCELED && result != -EINTR && result != -EAGAIN) {
    // The periodic scan keeps working without inotify.
    SLUICE_LOG(kWarning, "pickup.inotify_failed", "inotify read failed; relying on scans",
               {{"error", std::strerror(-result)}});
    return;
  }
  ArmRead();
}

bool Ingester::can_claim() const {
  if (stopping_ || !host_.spool_available()) return false;
  return (!queue_.empty() || !reclaim_.empty()) && claim_jobs_ < kClaimJobsInFlight &&
         commits_in_flight_ + claiming_ < kMaxCommitsInFlight &&
         bytes_in_flight_ < kMaxBytesInFlight;
}

bool Ingester::has_work() const {
  if (stopping_ || !host_.spool_available()) return false;
  if (batch_ ? batch_phase_ == BatchPhase::kReady : !batches_waiting_.empty()) return true;
  return can_claim();
}

void Ingester::Pump() {
  if (!stopping_ && host_.spool_available()) PumpBatch();
  while (can_claim()) SubmitClaims();
}

void Ingester::SubmitClaims() {
  const size_t room = std::min(kClaimsPerJob, kMaxCommitsInFlight - commits_in_flight_ - claiming_);
  std::vector<Item> items;
  while (items.size() < room && (!reclaim_.empty() || !queue_.empty())) {
    Item item;
    if (!reclaim_.empty()) {
      item = std::move(reclaim_.front());
      reclaim_.pop_front();
    } else {
      item.name = std::move(queue_.front());
      queue_.pop_front();
      queued_.erase(item.name);
      item.fresh = true;
    }
    item.id = host_.NextQueueId();
    if (item.fresh) {
      item.claimed_name = item.id.ToString() + std::string(kClaimedSuffix);
      item.claimed_path = absl::StrCat(files_->claimed_dir(), "/", item.claimed_name);
    }
    items.push_back(std::move(item));
  }
  // Each job may fill its share of the bytes still free.
  const uint64_t budget = (kMaxBytesInFlight - bytes_in_flight_) / kClaimJobsInFlight + 1;
  auto taken = std::make_shared<std::vector<Taken>>();
  const size_t count = items.size();
  io::HelperPool::Job job;
  job.work = [taken, files = files_.get(), items = std::move(items),
              limits = MessageLimitsFor(host_.config()), budget]() mutable {
    *taken = internal::TakeFiles(*files, std::move(items), limits, budget);
  };
  job.done = [this, taken, count] {
    --jobs_in_flight_;
    --claim_jobs_;
    claiming_ -= count;
    OnTaken(*taken);
  };
  ++claim_jobs_;
  claiming_ += count;
  Submit(std::move(job));
}

void Ingester::OnTaken(std::vector<Taken>& taken) {
  std::vector<Item> back;
  for (Taken& t : taken) {
    switch (t.kind) {
      case Taken::Kind::kNotTried:
        back.push_back(std::move(t.item));
        break;
      case Taken::Kind::kLost:
        break;
      case Taken::Kind::kClaimFailed:
        SLUICE_LOG(kWarning, "pickup.claim_failed", "cannot claim a pickup file",
                   {{"file", absl::StrCat(new_dir_, "/", t.item.name)}, {"error", t.reason}});
        break;
      case Taken::Kind::kBatch:
        batches_waiting_.push_back(std::move(t.item));
        break;
      case Taken::Kind::kRejected:
      case Taken::Kind::kUnmovable:
        LogRejected(t.item, t.reason, t.error, t.kind == Taken::Kind::kRejected);
        break;
      case Taken::Kind::kReadFailed:
        SLUICE_LOG(kWarning, "pickup.read_failed", "cannot read a claimed file; will retry",
                   {{"error", t.reason}});
        retry_.push_back(std::move(t.item));
        break;
      case Taken::Kind::kMessage:
        // Stopping: left claimed, processed again at the next start.
        if (!stopping_) CommitMessage(std::move(t.item), std::move(t.message));
        break;
    }
  }
  GiveBack(back);
}

void Ingester::GiveBack(std::vector<Item>& items) {
  for (auto it = items.rbegin(); it != items.rend(); ++it) {
    if (!it->fresh) {
      reclaim_.push_front(std::move(*it));
    } else if (!queued_.contains(it->name)) {
      queued_.insert(it->name);
      queue_.push_front(std::move(it->name));
    }
  }
}

void Ingester::LogRejected(const Item& item, const std::string& reason, const std::string& error,
                           bool moved) {
  if (!moved) {
    // Nothing is lost: the file stays in claimed/ and is processed again
    // at the next start.
    SLUICE_LOG(kError, "pickup.bad_file_unmovable",
               "rejected a file but cannot move it to the bad directory; left claimed",
               {{"file", item.name},
                {"reason", reason},
                {"bad_dir", files_->bad_dir()},
                {"error", error},
                {"left_as", item.claimed_path}});
    return;
  }
  SLUICE_LOG(kWarning, "pickup.bad_file", "rejected a pickup file; moved to the bad directory",
             {{"file", item.name}, {"reason", reason}});
  log::RejectionRecord r;
  r.ts_micros = base::WallMicros();
  r.source = "pickup";
  r.file = item.name;
  r.reason = reason;
  host_.PickupRejected(r);
}

void Ingester::CommitMessage(Item item, Message msg) {
  const uint64_t now = base::WallMicros();
  const std::string id = item.id.ToString();
  TraceRequest trace;
  trace.queue_id = id;
  trace.recipients = &msg.recipients;
  trace.arrival_micros = now;
  trace.has_date = msg.has_date;
  trace.has_message_id = msg.has_message_id;

  spool::Envelope env;
  env.arrival_micros = now;
  env.protocol = "pickup";
  env.sender = msg.sender;
  env.eight_bit = msg.eight_bit;
  env.smtputf8 = msg.smtputf8;
  env.added_headers = host_.PickupTraceHeaders(trace);
  env.origin = item.claimed_name;
  env.recipients.reserve(msg.recipients.size());
  for (const std::string& r : msg.recipients) env.recipients.push_back(spool::Recipient{r});
  const uint64_t size = msg.body.size();

  ++commits_in_flight_;
  bytes_in_flight_ += size;
  const base::QueueId queue_id = item.id;
  host_.CommitPickup(
      queue_id, std::move(msg.body), std::move(env),
      [this, item = std::move(item), sender = std::move(msg.sender),
       recipients = std::move(msg.recipients), size](const absl::Status& status) mutable {
        OnCommitted(item, status, std::move(sender), std::move(recipients), size);
      });
}

void Ingester::OnCommitted(const Item& item, const absl::Status& status, std::string sender,
                           std::vector<std::string> recipients, uint64_t size) {
  --commits_in_flight_;
  bytes_in_flight_ -= size;
  if (!status.ok()) {
    host_.PickupCommitFailed();
    SLUICE_LOG(kError, "pickup.commit_failed", "spool commit failed; will retry",
               {{"file", item.claimed_name}, {"error", status.message()}});
    retry_.push_back(item);
    return;
  }
  files_->MaybeAbort("after-commit");
  // Durable now: the claimed copy can go. The unlink runs on io_uring's
  // workers, many at once: on a busy journal one costs milliseconds, which
  // capped the pickup thread near 400 files/s when it unlinked them one by
  // one. The message is announced only once it completed, so delivery can
  // never retire the record while its claimed file still exists. If the
  // unlink is lost in a crash, recovery finds the origin in the spool and
  // removes the file.
  auto* op = new ReleaseOp();
  op->self = this;
  op->release.item = item;
  op->release.sender = std::move(sender);
  op->release.recipients = std::move(recipients);
  op->release.size = size;
  host_.loop().Unlinkat(op, AT_FDCWD, op->release.item.claimed_path.c_str(), 0);
  ++releases_in_flight_;
}

void Ingester::OnReleased(ReleaseOp* op, int result) {
  std::unique_ptr<ReleaseOp> owned(op);
  --releases_in_flight_;
  const Release& release = op->release;
  const Item& item = release.item;
  if (result < 0 && result != -ENOENT) {
    SLUICE_LOG(kWarning, "pickup.remove_failed", "cannot remove a queued claimed file",
               {{"file", item.claimed_path}, {"error", std::strerror(-result)}});
  }
  const std::string id = item.id.ToString();
  log::ReceptionRecord r;
  r.ts_micros = base::WallMicros();
  r.id = id;
  r.sender = release.sender;
  r.recipients = &release.recipients;
  r.size = release.size;
  r.client = "";
  r.helo = "";
  r.protocol = "pickup";
  host_.PickupQueued(r, item.id, release.recipients);
}

}  // namespace sluice::pickup
