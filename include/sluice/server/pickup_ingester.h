// Takes single-message files and batch directories (NAME.batch/, mail merge)
// from the pickup directory (docs/PICKUP.md) into the spool. Runs inside
// shard 0's loop; one per process.
//
// Noticing files: an inotify descriptor watching DIR/new (IN_MOVED_TO |
// IN_CLOSE_WRITE) is read through the shard's io_uring; besides, DIR/new is
// listed at start-up and every pickup.scan_interval_s (and after an inotify
// queue overflow), so files dropped while Sluice was down, or missed, are
// taken too.
//
// Claim protocol, per file NAME (exactly once across crashes and across
// processes sharing DIR):
//   1. rename DIR/new/NAME -> <spool>/0/claimed/<id>.pickup   (atomic; ENOENT:
//      another process took it, skip)
//   2. read and validate it (pickup::ParseMessage)
//   3a. valid: commit a spool record whose envelope says origin=<id>.pickup
//       (SpoolWriter: durable before the callback), then unlink the claimed
//       file (through io_uring), then log and announce the message
//   3b. invalid: write DIR/bad/NAME.error, rename the claimed file to
//       DIR/bad/NAME, fsync DIR/bad, log a Rejection record
// Start-up recovery (server.cc) finishes what a crash interrupted: a claimed
// file whose name is the origin of a recovered record is unlinked, any other
// is processed again.
//
// A batch directory is claimed the same way (one rename), then read over
// several loop turns: manifest and template at once (pickup::ParseManifest,
// PrepareTemplate), the recipients file kBatchBytesPerTurn at a time through
// pickup::BatchBuilder, so shard 0 keeps serving SMTP meanwhile. One batch
// is read at a time; more wait, claimed. Its record is one spool record (the
// template once, packed recipients, origin=<id>.pickup); skipped rows go to
// DIR/bad/NAME.error before the commit. Once durable, the claimed directory
// is renamed <id>.pickup.done and removed; start-up recovery removes any
// *.pickup.done left by a crash and, like a file, a claimed directory whose
// record exists.
//
// The renames and the read (at most max_message_size bytes, plain read(2))
// are plain syscalls on the shard thread: each costs
// microseconds, and at most kClaimsPerTurn files are taken per loop turn so
// SMTP clients on shard 0 are not starved. inotify and the spool commit go
// through io_uring.
//
// Test hook: SLUICE_TEST_ABORT_AT=<point> makes the process abort() at a
// named point, so tests can crash it there (tests/integration/test_pickup*.py):
//   after-claim        right after step 1 (files and batches)
//   after-commit       right after the commit succeeded, before the release
//   batch-mid-csv      a batch: after its first chunk of recipients was read
//   batch-mid-release  a batch: renamed .done, one file removed, the rest not
// Always compiled in; read once at start, only when set.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "sluice/base/queue_id.h"
#include "sluice/config/config.h"
#include "sluice/io/ring.h"
#include "sluice/pickup/batch.h"
#include "sluice/pickup/message_parser.h"

namespace sluice::server {

// What a dropped file and a batch are checked against, from the
// configuration; `sluice inject` checks the same before it drops anything.
pickup::Limits MessageLimitsFor(const config::Config& config);
pickup::BatchLimits BatchLimitsFor(const config::Config& config);

class Shard;

class PickupIngester {
 public:
  PickupIngester(Shard& shard, std::string dir);
  ~PickupIngester();

  // Opens the directories and the inotify watch. Shard thread.
  absl::Status Init();
  // Claimed files left by a crash (absolute paths) to process again.
  void AdoptClaimed(std::vector<std::string> paths);
  // Arms inotify and runs the first scan.
  void Start();
  // The 250 ms tick: rescans when the interval passed.
  void Tick(uint64_t now_ms);
  // End of a loop turn: claims and processes up to kClaimsPerTurn files.
  void Pump();
  // More files are waiting and could be taken now, or a batch is being read
  // (the loop should not sleep).
  bool has_work() const;
  // Stop taking files; cancels the inotify read.
  void Stop();
  // Nothing in flight (commits, inotify read): the shard may exit.
  bool idle() const { return commits_in_flight_ == 0 && releases_in_flight_ == 0 && !read_armed_; }

  static constexpr size_t kClaimsPerTurn = 64;
  // Files read and waiting for their commit: enough to keep group commits
  // large when an fdatasync takes tens of milliseconds (a busy journal: the
  // producers' renames share it), bounded in count and in bytes held.
  static constexpr size_t kMaxCommitsInFlight = 4096;
  static constexpr uint64_t kMaxBytesInFlight = 64ull << 20;
  // Recipients-file bytes a batch reads and checks per loop turn: about
  // 20,000 rows, a few milliseconds of shard 0.
  static constexpr size_t kBatchBytesPerTurn = 1 << 20;

 private:
  struct Item {
    std::string name;          // the name it had in new/ (for bad/)
    std::string claimed_path;  // <spool>/<n>/claimed/<id>.pickup
    std::string claimed_name;  // <id>.pickup: the envelope's origin
    base::QueueId id;          // the message's queue id
  };
  struct Batch;    // a batch directory being read or committed
  struct Release;  // a committed file's claimed copy being unlinked

  // Names or reclaimed items wait and a commit slot is free.
  bool can_claim() const;
  void Scan();
  void Enqueue(std::string name);
  void ArmRead();
  void OnRead(int result, uint32_t flags);
  bool Claim(const std::string& name, Item& item);
  void Process(Item item);
  void Reject(const Item& item, const std::string& reason);
  void OnCommitted(const Item& item, const absl::Status& status, std::string sender,
                   std::vector<std::string> recipients, uint64_t size);
  void OnReleased(Release* release, int result);
  void MaybeAbort(const char* point) const;
  // Batches.
  void StartBatch(Item item);
  void ContinueBatch();
  void CommitBatch();
  void OnBatchCommitted(const absl::Status& status);
  void ReleaseBatch(const Item& item);
  void EndBatch();
  // bad/NAME, or bad/NAME.<id> when NAME or NAME.error is taken.
  std::string BadName(const Item& item) const;

  Shard& shard_;
  const std::string dir_;
  const std::string new_dir_;
  const std::string bad_dir_;
  const std::string claimed_dir_;
  int bad_fd_ = -1;
  int inotify_fd_ = -1;
  std::string abort_at_;

  std::deque<std::string> queue_;  // names in new/ to claim
  absl::flat_hash_set<std::string> queued_;
  std::deque<Item> reclaim_;          // already claimed: process again
  std::vector<Item> retry_;           // commit or read failed: again at the next scan
  std::unique_ptr<Batch> batch_;      // the batch being read or committed
  std::deque<Item> batches_waiting_;  // claimed batches, read one after another
  size_t commits_in_flight_ = 0;
  uint64_t bytes_in_flight_ = 0;  // message bytes of single files not yet committed
  size_t releases_in_flight_ = 0;
  bool stopping_ = false;
  bool read_armed_ = false;
  uint64_t next_scan_ms_ = 0;
  alignas(8) char events_[16 * 1024];
  io::MemberCompletion<PickupIngester, &PickupIngester::OnRead> read_done_{this};
};

}  // namespace sluice::server
